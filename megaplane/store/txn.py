"""Transactions: the KV API's request and response shapes, etcd's checks, and running a txn.

These mirror etcdserverpb's messages field for field (snake_case names,
etcd's enum numbers) so the gRPC layer converts by name and in-process
callers build them directly. Validation here is what etcd's v3rpc layer does
before a request reaches the store (key.go: checkRangeRequest,
checkPutRequest, checkTxnRequest, checkIntervals); every failure raises the
etcd error and nothing is applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

from .errors import (
    CompactedError,
    DuplicateKeyError,
    EmptyKeyError,
    FutureRevisionError,
    InvalidArgumentError,
    KeyNotFoundError,
    LeaseNotFoundError,
    LeaseProvidedError,
    RequestTooLargeError,
    TooManyOpsError,
    ValueProvidedError,
)
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

if TYPE_CHECKING:
    from .keyspace import Partition
    from .mvcc import Store

__all__ = [
    "RangeRequest",
    "PutRequest",
    "DeleteRangeRequest",
    "TxnRequest",
    "Compare",
    "RequestOp",
    "RangeResult",
    "PutResult",
    "DeleteResult",
    "TxnResult",
    "ResponseOp",
    "CompareTarget",
    "CompareResult",
    "SortOrder",
    "SortTarget",
    "check_txn",
    "run_txn",
]


class CompareTarget:
    """etcdserverpb.Compare.CompareTarget numbers."""

    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


class CompareResult:
    """etcdserverpb.Compare.CompareResult numbers."""

    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class SortOrder:
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget:
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class RangeRequest(NamedTuple):
    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: int = SortOrder.NONE
    sort_target: int = SortTarget.KEY
    serializable: bool = False
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


class PutRequest(NamedTuple):
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


class DeleteRangeRequest(NamedTuple):
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


class Compare(NamedTuple):
    """One txn guard. `value` is bytes for VALUE, an int for the other targets."""

    key: bytes
    target: int
    result: int
    value: Union[bytes, int] = 0
    range_end: bytes = b""


class TxnRequest(NamedTuple):
    compare: Sequence[Compare] = ()
    success: Sequence["RequestOp"] = ()
    failure: Sequence["RequestOp"] = ()


# None stands for an empty RequestOp (no request set), which etcd refuses.
RequestOp = Union[RangeRequest, PutRequest, DeleteRangeRequest, TxnRequest, None]


class RangeResult(NamedTuple):
    kvs: List[KeyValue]
    count: int
    more: bool
    revision: int


class PutResult(NamedTuple):
    revision: int
    prev_kv: Optional[KeyValue] = None


class DeleteResult(NamedTuple):
    revision: int
    deleted: int
    prev_kvs: List[KeyValue]


class TxnResult(NamedTuple):
    succeeded: bool
    revision: int
    responses: List["ResponseOp"]


ResponseOp = Union[RangeResult, PutResult, DeleteResult, TxnResult]


def check_put(r: PutRequest) -> None:
    if not r.key:
        raise EmptyKeyError()
    if r.ignore_value and r.value:
        raise ValueProvidedError()
    if r.ignore_lease and r.lease:
        raise LeaseProvidedError()


def check_txn(r: TxnRequest, max_txn_ops: int) -> None:
    """etcd's request-shape checks for a txn, nested txns included."""
    _check_txn_ops(r, max_txn_ops)
    _check_intervals(r.success)
    _check_intervals(r.failure)


def _check_txn_ops(r: TxnRequest, max_txn_ops: int) -> None:
    opc = max(len(r.compare), len(r.success), len(r.failure))
    if opc > max_txn_ops:
        raise TooManyOpsError()
    for c in r.compare:
        if not c.key:
            raise EmptyKeyError()
    for ops in (r.success, r.failure):
        for op in ops:
            if isinstance(op, RangeRequest) or isinstance(op, DeleteRangeRequest):
                if not op.key:
                    raise EmptyKeyError()
            elif isinstance(op, PutRequest):
                check_put(op)
            elif isinstance(op, TxnRequest):
                _check_txn_ops(op, max_txn_ops - opc)
            else:
                raise KeyNotFoundError()


Interval = Tuple[bytes, Optional[bytes]]


def _overlaps(key: bytes, dels: List[Interval]) -> bool:
    for start, end in dels:
        if start <= key and (end is None or key < end):
            return True
    return False


def _check_intervals(ops: Sequence[RequestOp]) -> Tuple[Set[bytes], List[Interval]]:
    """Refuse a branch that writes one key twice (etcd's checkIntervals).

    Returns the keys put and the intervals deleted by this branch, for the
    enclosing level's check. Deletes may overlap deletes; a put may not
    overlap another put or a delete; the two branches of a nested txn are
    exclusive, so their puts may repeat each other.
    """
    dels: List[Interval] = []
    for op in ops:
        if isinstance(op, DeleteRangeRequest):
            dels.append(normalize_range(op.key, op.range_end))
    puts: Set[bytes] = set()
    nested: List[Tuple[Set[bytes], List[Interval]]] = []
    for op in ops:
        if not isinstance(op, TxnRequest):
            continue
        puts_then, dels_then = _check_intervals(op.success)
        puts_else, dels_else = _check_intervals(op.failure)
        for k in puts_then:
            if k in puts or _overlaps(k, dels):
                raise DuplicateKeyError()
            puts.add(k)
        for k in puts_else:
            if k in puts and k not in puts_then:
                raise DuplicateKeyError()
            if _overlaps(k, dels):
                raise DuplicateKeyError()
            puts.add(k)
        nested.append((puts_then | puts_else, dels_then + dels_else))
    # A put in one nested txn and a delete in another touch the key twice, whichever comes first
    # (etcd 3.4 only catches the delete-first order: etcd-io/etcd#16380).
    for i, (nested_puts, _) in enumerate(nested):
        for j, (_, nested_dels) in enumerate(nested):
            if i != j and any(_overlaps(k, nested_dels) for k in nested_puts):
                raise DuplicateKeyError()
    for _, nested_dels in nested:
        dels.extend(nested_dels)
    for op in ops:
        if isinstance(op, PutRequest):
            if op.key in puts or _overlaps(op.key, dels):
                raise DuplicateKeyError()
            puts.add(op.key)
    return puts, dels


# -- running a txn ------------------------------------------------------------------------
#
# etcd's order (server/etcdserver/txn): evaluate every compare, nested ones
# included, against the state before the txn (compareToPath); check the
# chosen ops (leases exist, ignore_* keys exist, range revisions are valid);
# only then apply, all writes at one new revision. A failed check raises
# before anything is applied.


def run_txn(store: "Store", r: TxnRequest) -> TxnResult:
    """Apply a checked txn to `store` (on the store's thread)."""
    path: List[bool] = []
    _compare_path(store, r, path)
    _check_path(store, r, path, [0])
    _check_path(store, r, path, [0], reads=True)
    rev = store.revision + 1
    st = _TxnState(rev)
    result = _execute(store, r, path, [0], st)
    store.txns_total += 1
    if st.changed:
        if len(st.partitions) > 1:
            store.note_write_order(rev, st.keys)
        store._revision = rev
        store._committed(rev, st.fsync, st.logged)
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

    def touch(self, p: "Partition", key: bytes) -> None:
        self.changed = True
        self.keys.append(key)
        self.partitions.add(id(p))
        if p.fsync:
            self.fsync = True
        if p.wal is not None:
            self.logged = True


def _compare_path(store: "Store", r: TxnRequest, path: List[bool]) -> None:
    ok = all(_compare(store, c) for c in r.compare)
    path.append(ok)
    for op in r.success if ok else r.failure:
        if isinstance(op, TxnRequest):
            _compare_path(store, op, path)


def _compare(store: "Store", c: Compare) -> bool:
    if c.range_end:
        start, end = normalize_range(c.key, c.range_end)
        kvs = [kv for _, kv in store._live_in_range(c.key, c.range_end)] if end is None or start < end else []
    else:
        kv = store.get(c.key)
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


def _check_path(store: "Store", r: TxnRequest, path: List[bool], pos: List[int], reads: bool = False) -> None:
    """etcd's checkRequests: every put of the chosen branches first (reads=False), then every range."""
    ok = path[pos[0]]
    pos[0] += 1
    for op in r.success if ok else r.failure:
        if isinstance(op, TxnRequest):
            _check_path(store, op, path, pos, reads)
        elif reads and isinstance(op, RangeRequest):
            if op.revision > store.revision:
                raise FutureRevisionError()
            # etcd compares against its first revision, -1 before any compaction.
            if op.revision and op.revision < (store.compact_revision or -1):
                raise CompactedError()
        elif not reads and isinstance(op, PutRequest):
            if op.ignore_value or op.ignore_lease:
                if store.get(op.key) is None:
                    raise KeyNotFoundError()
            if op.lease and op.lease not in store.lessor.leases:
                raise LeaseNotFoundError()
            if len(op.key) + len(op.value) > store.config.max_request_bytes:
                raise RequestTooLargeError()


def _execute(store: "Store", r: TxnRequest, path: List[bool], pos: List[int], st: _TxnState) -> TxnResult:
    ok = path[pos[0]]
    pos[0] += 1
    responses: List[ResponseOp] = []
    rev = st.rev
    nested = pos[0] > 1
    for op in r.success if ok else r.failure:
        if isinstance(op, RangeRequest):
            # Reads inside a txn see its own writes (etcd's txn read view).
            current = rev if st.changed else rev - 1
            responses.append(store._range(op, current, current))
        elif isinstance(op, PutRequest):
            p = store.partition(partition_prefix(op.key))
            old = p.kvs.get(op.key)
            value, lease = op.value, op.lease
            if old is not None:
                if op.ignore_value:
                    value = old[VALUE]
                if op.ignore_lease:
                    lease = old[LEASE]
            store._put_locked(p, op.key, value, lease, rev, old)
            st.touch(p, op.key)
            store.puts_total += 1
            responses.append(PutResult(rev, old if op.prev_kv else None))
        elif isinstance(op, DeleteRangeRequest):
            victims = store._live_in_range(op.key, op.range_end)
            for p, kv in victims:
                store._delete_locked(p, kv, rev)
                st.touch(p, kv[KEY])
            store.deletes_total += len(victims)
            responses.append(
                DeleteResult(rev if st.changed else rev - 1, len(victims), [kv for _, kv in victims] if op.prev_kv else [])
            )
        elif isinstance(op, TxnRequest):
            responses.append(_execute(store, op, path, pos, st))
    # etcd leaves a nested txn's response header empty: revision 0.
    return TxnResult(ok, 0 if nested else rev if st.changed else rev - 1, responses)
