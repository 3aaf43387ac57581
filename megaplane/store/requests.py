"""The KV API's request and result shapes, and etcd's checks of a request before it runs.

These mirror etcdserverpb's messages field for field (snake_case names,
etcd's enum numbers) so the gRPC layer converts by name and in-process
callers build them directly. Validation here is what etcd's v3rpc layer does
before a request reaches the store (key.go: checkRangeRequest,
checkPutRequest, checkTxnRequest, checkIntervals); every failure raises the
etcd error and nothing is applied.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Set, Tuple, Union

from .errors import (
    DuplicateKeyError,
    EmptyKeyError,
    KeyNotFoundError,
    LeaseProvidedError,
    TooManyOpsError,
    ValueProvidedError,
)
from .kv import KeyValue, normalize_range

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
    "check_put",
    "check_txn",
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
