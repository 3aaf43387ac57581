"""etcdserverpb.Lease: grant, revoke, keep-alive stream, time-to-live and listing.

Unknown leases follow etcd's v3rpc layer exactly: revoke fails with
NOT_FOUND, a keep-alive answers TTL 0, time-to-live answers TTL -1.
"""

from __future__ import annotations

from typing import Any, Dict

from megaplane.store.errors import LeaseNotFoundError

from ..grpc import Method, ServerCall
from ..pb import etcd_pb2 as pb
from .member import Member
from .views import LeaseView

__all__ = ["LeaseService"]


class LeaseService:
    def __init__(self, member: Member, store: LeaseView) -> None:
        self.member = member
        self.store = store

    def methods(self) -> Dict[str, Method]:
        def m(handler: Any, req: Any, resp: Any, kind: str = "unary") -> Method:
            return Method(kind, handler, req.FromString, resp.SerializeToString)

        return {
            "/etcdserverpb.Lease/LeaseGrant": m(self.grant, pb.LeaseGrantRequest, pb.LeaseGrantResponse),
            "/etcdserverpb.Lease/LeaseRevoke": m(self.revoke, pb.LeaseRevokeRequest, pb.LeaseRevokeResponse),
            "/etcdserverpb.Lease/LeaseKeepAlive": m(
                self.keep_alive, pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse, "bidi"
            ),
            "/etcdserverpb.Lease/LeaseTimeToLive": m(
                self.time_to_live, pb.LeaseTimeToLiveRequest, pb.LeaseTimeToLiveResponse
            ),
            "/etcdserverpb.Lease/LeaseLeases": m(self.leases, pb.LeaseLeasesRequest, pb.LeaseLeasesResponse),
        }

    def _after(self, rev: int, response: Any) -> Any:
        if not self.store.needs_durability(rev):
            return response

        async def later() -> Any:
            await self.store.durable(rev)
            return response

        return later()

    def grant(self, req: pb.LeaseGrantRequest) -> Any:
        lease = self.store.lease_grant(req.TTL, req.ID)
        rev = self.store.revision
        return self._after(rev, pb.LeaseGrantResponse(header=self.member.header(rev), ID=lease.id, TTL=lease.ttl))

    def revoke(self, req: pb.LeaseRevokeRequest) -> Any:
        rev = self.store.lease_revoke(req.ID)
        return self._after(rev, pb.LeaseRevokeResponse(header=self.member.header(rev)))

    def keep_alive(self, call: ServerCall) -> None:
        store = self.store
        header = self.member.header

        def on_message(req: pb.LeaseKeepAliveRequest) -> None:
            try:
                ttl = store.lease_keepalive(req.ID)
            except LeaseNotFoundError:
                ttl = 0
            call.send(pb.LeaseKeepAliveResponse(header=header(store.revision), ID=req.ID, TTL=ttl))

        call.on_message = on_message

    def time_to_live(self, req: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse:
        remaining, granted, keys = self.store.lease_time_to_live(req.ID, keys=req.keys)
        header = self.member.header(self.store.revision)
        if remaining < 0:
            return pb.LeaseTimeToLiveResponse(header=header, ID=req.ID, TTL=-1)
        return pb.LeaseTimeToLiveResponse(header=header, ID=req.ID, TTL=remaining, grantedTTL=granted, keys=keys)

    def leases(self, req: pb.LeaseLeasesRequest) -> pb.LeaseLeasesResponse:
        ids = self.store.lease_ids()
        return pb.LeaseLeasesResponse(
            header=self.member.header(self.store.revision), leases=[pb.LeaseStatus(ID=i) for i in ids]
        )
