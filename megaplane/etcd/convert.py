"""Translation between etcd's protobuf messages and the store's request and result types.

The only place that knows both vocabularies. Requests become the store's
NamedTuples (`megaplane.store.requests`), results become etcdserverpb messages;
store errors reach the client unchanged, as gRPC statuses with etcd's
code and message (the transport sends them: `EtcdServer` lists StoreError
among its status errors).
"""

from __future__ import annotations

from typing import List, Optional

from megaplane.store.kv import KeyValue
from megaplane.store.requests import (
    Compare,
    CompareTarget,
    DeleteRangeRequest,
    DeleteResult,
    PutRequest,
    PutResult,
    RangeRequest,
    RangeResult,
    RequestOp,
    ResponseOp,
    TxnRequest,
    TxnResult,
)

from .pb import etcd_pb2 as pb

__all__ = [
    "txn_writes",
    "kv_pb",
    "range_request",
    "put_request",
    "delete_request",
    "txn_request",
    "range_response",
    "put_response",
    "delete_response",
    "txn_response",
]

_KeyValue = pb.KeyValue
_RangeResponse = pb.RangeResponse


def txn_writes(r: TxnRequest) -> bool:
    """True when either branch of a txn (nested ones included) may write."""
    for op in (*r.success, *r.failure):
        if isinstance(op, (PutRequest, DeleteRangeRequest)):
            return True
        if isinstance(op, TxnRequest) and txn_writes(op):
            return True
    return False


def kv_pb(kv: KeyValue) -> pb.KeyValue:
    return _KeyValue(
        key=kv[0], create_revision=kv[1], mod_revision=kv[2], version=kv[3], value=kv[4], lease=kv[5]
    )


# -- requests ----------------------------------------------------------------------------


def range_request(r: pb.RangeRequest) -> RangeRequest:
    return RangeRequest(
        r.key,
        r.range_end,
        r.limit,
        r.revision,
        r.sort_order,
        r.sort_target,
        r.serializable,
        r.keys_only,
        r.count_only,
        r.min_mod_revision,
        r.max_mod_revision,
        r.min_create_revision,
        r.max_create_revision,
    )


def put_request(r: pb.PutRequest) -> PutRequest:
    return PutRequest(r.key, r.value, r.lease, r.prev_kv, r.ignore_value, r.ignore_lease)


def delete_request(r: pb.DeleteRangeRequest) -> DeleteRangeRequest:
    return DeleteRangeRequest(r.key, r.range_end, r.prev_kv)


def _compare(c: pb.Compare) -> Compare:
    which = c.WhichOneof("target_union")
    value: object
    if c.target == CompareTarget.VALUE:
        value = c.value if which == "value" else b""
    else:
        value = getattr(c, which) if which is not None and which != "value" else 0
    return Compare(c.key, c.target, c.result, value, c.range_end)  # type: ignore[arg-type]


def _request_op(op: pb.RequestOp) -> RequestOp:
    which = op.WhichOneof("request")
    if which == "request_range":
        return range_request(op.request_range)
    if which == "request_put":
        return put_request(op.request_put)
    if which == "request_delete_range":
        return delete_request(op.request_delete_range)
    if which == "request_txn":
        return txn_request(op.request_txn)
    return None  # etcd refuses an empty op with "key not found"


def txn_request(r: pb.TxnRequest) -> TxnRequest:
    return TxnRequest(
        [_compare(c) for c in r.compare],
        [_request_op(op) for op in r.success],
        [_request_op(op) for op in r.failure],
    )


# -- responses -----------------------------------------------------------------------------


def range_response(header: pb.ResponseHeader, res: RangeResult) -> pb.RangeResponse:
    kvs = res.kvs
    return _RangeResponse(
        header=header,
        kvs=[
            _KeyValue(key=kv[0], create_revision=kv[1], mod_revision=kv[2], version=kv[3], value=kv[4], lease=kv[5])
            for kv in kvs
        ],
        more=res.more,
        count=res.count,
    )


def put_response(header: pb.ResponseHeader, res: PutResult) -> pb.PutResponse:
    if res.prev_kv is None:
        return pb.PutResponse(header=header)
    return pb.PutResponse(header=header, prev_kv=kv_pb(res.prev_kv))


def delete_response(header: pb.ResponseHeader, res: DeleteResult) -> pb.DeleteRangeResponse:
    return pb.DeleteRangeResponse(header=header, deleted=res.deleted, prev_kvs=[kv_pb(kv) for kv in res.prev_kvs])


def _sub_header(header: pb.ResponseHeader, revision: int) -> pb.ResponseHeader:
    return pb.ResponseHeader(revision=revision)


def _response_op(header: pb.ResponseHeader, res: ResponseOp) -> pb.ResponseOp:
    if isinstance(res, RangeResult):
        return pb.ResponseOp(response_range=range_response(_sub_header(header, res.revision), res))
    if isinstance(res, PutResult):
        return pb.ResponseOp(response_put=put_response(_sub_header(header, res.revision), res))
    if isinstance(res, DeleteResult):
        return pb.ResponseOp(response_delete_range=delete_response(_sub_header(header, res.revision), res))
    return pb.ResponseOp(response_txn=txn_response(_sub_header(header, res.revision), res))


def txn_response(header: pb.ResponseHeader, res: TxnResult) -> pb.TxnResponse:
    return pb.TxnResponse(
        header=header, succeeded=res.succeeded, responses=[_response_op(header, r) for r in res.responses]
    )


def event_pb(kv: KeyValue, prev: Optional[KeyValue], with_prev: bool) -> pb.Event:
    if kv[3] == 0:
        ev = pb.Event(type=pb.Event.DELETE, kv=_KeyValue(key=kv[0], mod_revision=kv[2]))
    else:
        ev = pb.Event(
            type=pb.Event.PUT,
            kv=_KeyValue(
                key=kv[0], create_revision=kv[1], mod_revision=kv[2], version=kv[3], value=kv[4], lease=kv[5]
            ),
        )
    if with_prev and prev is not None:
        ev.prev_kv.CopyFrom(kv_pb(prev))
    return ev


def events_pb(events: List, with_prev: bool) -> List[pb.Event]:
    return [event_pb(kv, prev, with_prev) for kv, prev in events]
