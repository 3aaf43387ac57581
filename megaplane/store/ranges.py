"""etcd Range over the keyspace: keys in [key, range_end) at a revision, with limit, sort and filters.

One function, `read_range`, shared by the store's Range and by the reads
inside a txn (which see the txn's own writes: they pass the txn's revision
as `current`). A range that crosses partitions merges their key-ordered
iterators, so a limited read costs O(limit), not O(keys in range).
"""

from __future__ import annotations

import heapq
from itertools import islice
from typing import Iterator, List

from .errors import CompactedError, FutureRevisionError, InvalidArgumentError
from .keyspace import Keyspace
from .kv import (
    CREATE_REVISION,
    KEY,
    MOD_REVISION,
    VALUE,
    VERSION,
    KeyValue,
    normalize_range,
    partition_prefix,
)
from .requests import RangeRequest, RangeResult, SortOrder, SortTarget

__all__ = ["read_range", "check_read_revision"]


def _key_of(kv: KeyValue) -> bytes:
    return kv[KEY]


def check_read_revision(revision: int, current: int, compact_revision: int) -> int:
    """The revision a read at `revision` sees (0: `current`); etcd's errors outside the window."""
    if revision > current:
        raise FutureRevisionError()
    if revision <= 0:
        return current
    if revision < compact_revision:
        raise CompactedError()
    return revision


def read_range(keyspace: Keyspace, r: RangeRequest, current: int, header_revision: int = 0) -> RangeResult:
    """etcd Range of a checked request against `keyspace` whose newest revision is `current`."""
    rev = check_read_revision(r.revision, current, keyspace.compact_revision)
    header = header_revision or current
    if not r.range_end:
        p = keyspace.partitions.get(partition_prefix(r.key))
        if p is None:
            return RangeResult([], 0, False, header)
        if rev < p.floor:
            raise CompactedError()
        kv = p.kvs.get(r.key) if rev >= current else p.get_at(r.key, rev)
        if kv is None:
            return RangeResult([], 0, False, header)
        if r.count_only:
            return RangeResult([], 1, False, header)
        kvs = [kv]
        kvs = _filter_kvs(kvs, r)
        if r.keys_only:
            kvs = [(k[0], k[1], k[2], k[3], b"", k[5]) for k in kvs]
        more = r.limit > 0 and len(kvs) > r.limit  # etcd: a negative limit is no limit
        return RangeResult(kvs[: r.limit] if more else kvs, 1, more, header)

    start, end = normalize_range(r.key, r.range_end)
    if end is not None and end <= start:
        return RangeResult([], 0, False, header)
    parts, _ = keyspace.partitions_for(start, end)
    iters: List[Iterator[KeyValue]] = []
    count = 0
    for p in parts:
        if rev < p.floor:
            raise CompactedError()
        if not p.kvs and not p.events:
            continue
        it, n = p.iter_range(start, end, rev, current)
        if n:
            iters.append(it)
            count += n
    if r.count_only:
        return RangeResult([], count, False, header)
    merged: Iterator[KeyValue]
    if not iters:
        merged = iter(())
    elif len(iters) == 1:
        merged = iters[0]
    else:
        merged = heapq.merge(*iters, key=_key_of)
    default_order = r.sort_order == SortOrder.NONE or (
        r.sort_target == SortTarget.KEY and r.sort_order == SortOrder.ASCEND
    )
    filtered = bool(r.min_mod_revision or r.max_mod_revision or r.min_create_revision or r.max_create_revision)
    if r.limit > 0 and default_order and not filtered:
        kvs = list(islice(merged, r.limit + 1))
    else:
        kvs = list(merged)
    if filtered:
        kvs = _filter_kvs(kvs, r)
    if not default_order or (r.sort_target != SortTarget.KEY and r.sort_order == SortOrder.NONE):
        kvs = _sort_kvs(kvs, r.sort_target, r.sort_order)
    more = r.limit > 0 and len(kvs) > r.limit
    if more:
        del kvs[r.limit :]
    if r.keys_only:
        kvs = [(k[0], k[1], k[2], k[3], b"", k[5]) for k in kvs]
    return RangeResult(kvs, count, more, header)


def _filter_kvs(kvs: List[KeyValue], r: RangeRequest) -> List[KeyValue]:
    if r.max_mod_revision:
        kvs = [kv for kv in kvs if kv[MOD_REVISION] <= r.max_mod_revision]
    if r.min_mod_revision:
        kvs = [kv for kv in kvs if kv[MOD_REVISION] >= r.min_mod_revision]
    if r.max_create_revision:
        kvs = [kv for kv in kvs if kv[CREATE_REVISION] <= r.max_create_revision]
    if r.min_create_revision:
        kvs = [kv for kv in kvs if kv[CREATE_REVISION] >= r.min_create_revision]
    return kvs


_SORT_FIELD = {
    SortTarget.KEY: KEY,
    SortTarget.VERSION: VERSION,
    SortTarget.CREATE: CREATE_REVISION,
    SortTarget.MOD: MOD_REVISION,
    SortTarget.VALUE: VALUE,
}


def _sort_kvs(kvs: List[KeyValue], target: int, order: int) -> List[KeyValue]:
    if order == SortOrder.NONE:
        order = SortOrder.ASCEND
    field = _SORT_FIELD.get(target)
    if field is None:
        raise InvalidArgumentError(f"etcdserver: unknown sort target {target}")
    if target == SortTarget.KEY:
        return kvs[::-1] if order == SortOrder.DESCEND else kvs
    # Go's sort.Sort is not stable; a stable sort is one of its valid outcomes.
    return sorted(kvs, key=lambda kv: kv[field], reverse=order == SortOrder.DESCEND)
