"""etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact over the store.

Handlers run on the store's event loop and call it directly. A write that
touched an fsync-mode partition is answered only once it is on disk:
the handler returns an awaitable, and every writer waiting at the time
shares one fsync.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from megaplane.store.errors import StoreError

from .. import convert
from ..grpc import Method
from ..pb import etcd_pb2 as pb
from .member import Member
from .views import KVView

__all__ = ["KVService", "NoSpaceError"]


class NoSpaceError(StoreError):
    """Writes refused while a NOSPACE alarm is active (etcd's ErrGRPCNoSpace)."""

    code = "RESOURCE_EXHAUSTED"
    message = "etcdserver: mvcc: database space exceeded"


class KVService:
    def __init__(self, member: Member, store: KVView) -> None:
        self.member = member
        self.store = store

    def methods(self) -> Dict[str, Method]:
        def m(handler: Callable, req: Any, resp: Any) -> Method:
            return Method("unary", handler, req.FromString, resp.SerializeToString)

        return {
            "/etcdserverpb.KV/Range": m(self.range, pb.RangeRequest, pb.RangeResponse),
            "/etcdserverpb.KV/Put": m(self.put, pb.PutRequest, pb.PutResponse),
            "/etcdserverpb.KV/DeleteRange": m(self.delete_range, pb.DeleteRangeRequest, pb.DeleteRangeResponse),
            "/etcdserverpb.KV/Txn": m(self.txn, pb.TxnRequest, pb.TxnResponse),
            "/etcdserverpb.KV/Compact": m(self.compact, pb.CompactionRequest, pb.CompactionResponse),
        }

    def _answer(self, revision: int, build: Callable[[], Any]) -> Any:
        """The response now, or once `revision` is durable if it must be."""
        store = self.store
        if not store.needs_durability(revision):
            return build()

        async def later() -> Any:
            await store.durable(revision)
            return build()

        return later()

    def range(self, req: pb.RangeRequest) -> pb.RangeResponse:
        res = self.store.range_request(convert.range_request(req))
        return convert.range_response(self.member.header(res.revision), res)

    def put(self, req: pb.PutRequest) -> Any:
        if self.member.nospace:
            raise NoSpaceError()
        res = self.store.put(
            req.key,
            req.value,
            req.lease,
            prev_kv=req.prev_kv,
            ignore_value=req.ignore_value,
            ignore_lease=req.ignore_lease,
        )
        return self._answer(res.revision, lambda: convert.put_response(self.member.header(res.revision), res))

    def delete_range(self, req: pb.DeleteRangeRequest) -> Any:
        res = self.store.delete_range(req.key, req.range_end, prev_kv=req.prev_kv)
        return self._answer(res.revision, lambda: convert.delete_response(self.member.header(res.revision), res))

    def txn(self, req: pb.TxnRequest) -> Any:
        r = convert.txn_request(req)
        if self.member.nospace and convert.txn_writes(r):
            raise NoSpaceError()
        res = self.store.txn_request(r)
        return self._answer(res.revision, lambda: convert.txn_response(self.member.header(res.revision), res))

    def compact(self, req: pb.CompactionRequest) -> Any:
        rev = self.store.compact(req.revision)
        # Compaction is applied in memory at once, so `physical` needs no wait.
        return self._answer(rev, lambda: pb.CompactionResponse(header=self.member.header(rev)))
