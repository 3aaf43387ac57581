"""Running a txn: etcd's compare, check and apply phases, all writes at one revision.

The request shapes and their static checks are in `megaplane.store.requests`;
this module runs a checked `TxnRequest` against the keyspace and applies it
through the writer (`megaplane.store.writer`), so a txn changes records in
exactly the way a single Put or DeleteRange does.
"""

from __future__ import annotations

from typing import List, Optional, Set

from .errors import (
    CompactedError,
    FutureRevisionError,
    InvalidArgumentError,
    KeyNotFoundError,
    LeaseNotFoundError,
    RequestTooLargeError,
)
from .keyspace import Keyspace, Partition
from .kv import (
    CREATE_REVISION,
    KEY,
    LEASE,
    MOD_REVISION,
    VALUE,
    VERSION,
    KeyValue,
    normalize_range,
    partition_prefix,
)
from .ranges import read_range
from .requests import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteResult,
    PutRequest,
    PutResult,
    RangeRequest,
    ResponseOp,
    TxnRequest,
    TxnResult,
)
from .writer import Writer

__all__ = ["run_txn"]

# -- running a txn ------------------------------------------------------------------------
#
# etcd's order (server/etcdserver/txn): evaluate every compare, nested ones
# included, against the state before the txn (compareToPath); check the
# chosen ops (leases exist, ignore_* keys exist, range revisions are valid);
# only then apply, all writes at one new revision. A failed check raises
# before anything is applied.


def run_txn(w: Writer, r: TxnRequest, max_request_bytes: int) -> TxnResult:
    """Apply a txn that passed `check_txn` through the writer `w` (on the store's thread)."""
    path: List[bool] = []
    _compare_path(w.keyspace, r, path)
    _check_path(w, r, path, [0], max_request_bytes)
    _check_path(w, r, path, [0], max_request_bytes, reads=True)
    rev = w.revision + 1
    if rev > w.revision_limit:
        w.reserve(rev)
    st = _TxnState(rev)
    result = _execute(w, r, path, [0], st)
    w.txns_total += 1
    if st.changed:
        if len(st.partitions) > 1:
            w.note_write_order(rev, st.keys)
        w.commit(rev, st.fsync, st.logged)
        return result._replace(revision=rev)
    return result


class _TxnState:
    __slots__ = ("rev", "changed", "fsync", "logged", "keys", "partitions")

    def __init__(self, rev: int) -> None:
        self.rev = rev
        self.changed = False
        self.fsync = False
        self.logged = False
        self.keys: List[bytes] = []  # written, in op order
        self.partitions: Set[int] = set()

    def touch(self, p: Partition, key: bytes) -> None:
        self.changed = True
        self.keys.append(key)
        self.partitions.add(id(p))
        if p.fsync:
            self.fsync = True
        if p.wal is not None:
            self.logged = True


def _compare_path(keyspace: Keyspace, r: TxnRequest, path: List[bool]) -> None:
    ok = all(_compare(keyspace, c) for c in r.compare)
    path.append(ok)
    for op in r.success if ok else r.failure:
        if isinstance(op, TxnRequest):
            _compare_path(keyspace, op, path)


def _compare(keyspace: Keyspace, c: Compare) -> bool:
    if c.range_end:
        start, end = normalize_range(c.key, c.range_end)
        kvs = [kv for _, kv in keyspace.live_in_range(c.key, c.range_end)] if end is None or start < end else []
    else:
        kv = keyspace.get(c.key)
        kvs = [kv] if kv is not None else []
    if not kvs:
        if c.target == CompareTarget.VALUE:
            # etcd: comparing the value of a missing key always fails.
            return False
        return _compare_kv(c, None)
    return all(_compare_kv(c, kv) for kv in kvs)


_COMPARE_FIELD = {
    CompareTarget.VERSION: VERSION,
    CompareTarget.CREATE: CREATE_REVISION,
    CompareTarget.MOD: MOD_REVISION,
    CompareTarget.LEASE: LEASE,
}


def _compare_kv(c: Compare, kv: Optional[KeyValue]) -> bool:
    if c.target == CompareTarget.VALUE:
        a: object = kv[VALUE] if kv is not None else b""
        b: object = c.value if isinstance(c.value, bytes) else b""
    else:
        field = _COMPARE_FIELD.get(c.target)
        if field is None:
            raise InvalidArgumentError(f"etcdserver: unknown compare target {c.target}")
        a = kv[field] if kv is not None else 0
        b = c.value if isinstance(c.value, int) else 0
    res = c.result
    if res == CompareResult.EQUAL:
        return a == b
    if res == CompareResult.NOT_EQUAL:
        return a != b
    if res == CompareResult.GREATER:
        return a > b  # type: ignore[operator]
    if res == CompareResult.LESS:
        return a < b  # type: ignore[operator]
    raise InvalidArgumentError(f"etcdserver: unknown compare result {res}")


def _check_path(
    w: Writer, r: TxnRequest, path: List[bool], pos: List[int], max_request_bytes: int, reads: bool = False
) -> None:
    """etcd's checkRequests: every put of the chosen branches first (reads=False), then every range."""
    ok = path[pos[0]]
    pos[0] += 1
    for op in r.success if ok else r.failure:
        if isinstance(op, TxnRequest):
            _check_path(w, op, path, pos, max_request_bytes, reads)
        elif reads and isinstance(op, RangeRequest):
            if op.revision > w.revision:
                raise FutureRevisionError()
            # etcd compares against its first revision, -1 before any compaction.
            if op.revision and op.revision < (w.compact_revision or -1):
                raise CompactedError()
        elif not reads and isinstance(op, PutRequest):
            if op.ignore_value or op.ignore_lease:
                if w.keyspace.get(op.key) is None:
                    raise KeyNotFoundError()
            if op.lease and op.lease not in w.lessor.leases:
                raise LeaseNotFoundError()
            if len(op.key) + len(op.value) > max_request_bytes:
                raise RequestTooLargeError()


def _execute(w: Writer, r: TxnRequest, path: List[bool], pos: List[int], st: _TxnState) -> TxnResult:
    ok = path[pos[0]]
    pos[0] += 1
    responses: List[ResponseOp] = []
    rev = st.rev
    nested = pos[0] > 1
    for op in r.success if ok else r.failure:
        if isinstance(op, RangeRequest):
            # Reads inside a txn see its own writes (etcd's txn read view).
            current = rev if st.changed else rev - 1
            responses.append(read_range(w.keyspace, op, current, current))
        elif isinstance(op, PutRequest):
            p = w.partition(partition_prefix(op.key))
            old = p.kvs.get(op.key)
            value, lease = op.value, op.lease
            if old is not None:
                if op.ignore_value:
                    value = old[VALUE]
                if op.ignore_lease:
                    lease = old[LEASE]
            w.put_at(p, op.key, value, lease, rev, old)
            st.touch(p, op.key)
            w.puts_total += 1
            responses.append(PutResult(rev, old if op.prev_kv else None))
        elif isinstance(op, DeleteRangeRequest):
            victims = w.keyspace.live_in_range(op.key, op.range_end)
            for p, kv in victims:
                w.delete_at(p, kv, rev)
                st.touch(p, kv[KEY])
            w.deletes_total += len(victims)
            responses.append(
                DeleteResult(rev if st.changed else rev - 1, len(victims), [kv for _, kv in victims] if op.prev_kv else [])
            )
        elif isinstance(op, TxnRequest):
            responses.append(_execute(w, op, path, pos, st))
    # etcd leaves a nested txn's response header empty: revision 0.
    return TxnResult(ok, 0 if nested else rev if st.changed else rev - 1, responses)
