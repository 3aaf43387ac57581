"""etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact over the store.

Each handler holds the store lock only while the store works; protobuf
building happens outside it, on the immutable records the store returned.
A write that touched an fsync-mode partition is answered only once it is on
disk (`Store.wait_durable`, shared by every writer waiting at the time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from ..errors import StoreError
from . import convert
from .etcdpb import etcd_pb2 as pb

if TYPE_CHECKING:
    from .server import EtcdServer

__all__ = ["KVService"]


class NoSpaceError(StoreError):
    """Writes refused while a NOSPACE alarm is active (etcd's ErrGRPCNoSpace)."""

    code = "RESOURCE_EXHAUSTED"
    message = "etcdserver: mvcc: database space exceeded"


class KVService:
    def __init__(self, server: "EtcdServer") -> None:
        self.server = server
        self.store = server.store
        self.lock = server.store.lock

    def handlers(self) -> dict:
        u = grpc.unary_unary_rpc_method_handler
        return {
            "Range": u(self.range, pb.RangeRequest.FromString, pb.RangeResponse.SerializeToString),
            "Put": u(self.put, pb.PutRequest.FromString, pb.PutResponse.SerializeToString),
            "DeleteRange": u(
                self.delete_range, pb.DeleteRangeRequest.FromString, pb.DeleteRangeResponse.SerializeToString
            ),
            "Txn": u(self.txn, pb.TxnRequest.FromString, pb.TxnResponse.SerializeToString),
            "Compact": u(self.compact, pb.CompactionRequest.FromString, pb.CompactionResponse.SerializeToString),
        }

    def _check_space(self) -> None:
        if self.server.nospace:
            raise NoSpaceError()

    def range(self, req: pb.RangeRequest, context: grpc.ServicerContext) -> pb.RangeResponse:
        r = convert.range_request(req)
        try:
            with self.lock:
                res = self.store.range_request(r)
        except StoreError as exc:
            convert.abort(context, exc)
        return convert.range_response(self.server.header(res.revision), res)

    def put(self, req: pb.PutRequest, context: grpc.ServicerContext) -> pb.PutResponse:
        store = self.store
        try:
            self._check_space()
            with self.lock:
                res = store.put(
                    req.key,
                    req.value,
                    req.lease,
                    prev_kv=req.prev_kv,
                    ignore_value=req.ignore_value,
                    ignore_lease=req.ignore_lease,
                )
        except StoreError as exc:
            convert.abort(context, exc)
        store.wait_durable(res.revision)
        return convert.put_response(self.server.header(res.revision), res)

    def delete_range(self, req: pb.DeleteRangeRequest, context: grpc.ServicerContext) -> pb.DeleteRangeResponse:
        store = self.store
        try:
            with self.lock:
                res = store.delete_range(req.key, req.range_end, prev_kv=req.prev_kv)
        except StoreError as exc:
            convert.abort(context, exc)
        store.wait_durable(res.revision)
        return convert.delete_response(self.server.header(res.revision), res)

    def txn(self, req: pb.TxnRequest, context: grpc.ServicerContext) -> pb.TxnResponse:
        store = self.store
        r = convert.txn_request(req)
        try:
            if self.server.nospace and convert.txn_writes(r):
                raise NoSpaceError()
            with self.lock:
                res = store.txn_request(r)
        except StoreError as exc:
            convert.abort(context, exc)
        store.wait_durable(res.revision)
        return convert.txn_response(self.server.header(res.revision), res)

    def compact(self, req: pb.CompactionRequest, context: grpc.ServicerContext) -> pb.CompactionResponse:
        store = self.store
        try:
            with self.lock:
                rev = store.compact(req.revision)
        except StoreError as exc:
            convert.abort(context, exc)
        # Compaction is applied in memory at once, so `physical` needs no wait.
        store.wait_durable(rev)
        return pb.CompactionResponse(header=self.server.header(rev))
