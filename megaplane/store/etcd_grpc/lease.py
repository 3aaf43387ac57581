"""etcdserverpb.Lease: grant, revoke, keep-alive stream, time-to-live and listing.

Unknown leases follow etcd's v3rpc layer exactly: revoke fails with
NOT_FOUND, a keep-alive answers TTL 0, time-to-live answers TTL -1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import grpc

from ..errors import LeaseNotFoundError, StoreError
from . import convert
from .etcdpb import etcd_pb2 as pb

if TYPE_CHECKING:
    from .server import EtcdServer

__all__ = ["LeaseService"]


class LeaseService:
    def __init__(self, server: "EtcdServer") -> None:
        self.server = server
        self.store = server.store
        self.lock = server.store.lock

    def handlers(self) -> dict:
        u = grpc.unary_unary_rpc_method_handler
        return {
            "LeaseGrant": u(self.grant, pb.LeaseGrantRequest.FromString, pb.LeaseGrantResponse.SerializeToString),
            "LeaseRevoke": u(self.revoke, pb.LeaseRevokeRequest.FromString, pb.LeaseRevokeResponse.SerializeToString),
            "LeaseKeepAlive": grpc.stream_stream_rpc_method_handler(
                self.keep_alive, pb.LeaseKeepAliveRequest.FromString, pb.LeaseKeepAliveResponse.SerializeToString
            ),
            "LeaseTimeToLive": u(
                self.time_to_live, pb.LeaseTimeToLiveRequest.FromString, pb.LeaseTimeToLiveResponse.SerializeToString
            ),
            "LeaseLeases": u(self.leases, pb.LeaseLeasesRequest.FromString, pb.LeaseLeasesResponse.SerializeToString),
        }

    def grant(self, req: pb.LeaseGrantRequest, context: grpc.ServicerContext) -> pb.LeaseGrantResponse:
        try:
            with self.lock:
                lease = self.store.lease_grant(req.TTL, req.ID)
                rev = self.store.revision
        except StoreError as exc:
            convert.abort(context, exc)
        self.store.wait_durable(rev)
        return pb.LeaseGrantResponse(header=self.server.header(rev), ID=lease.id, TTL=lease.ttl)

    def revoke(self, req: pb.LeaseRevokeRequest, context: grpc.ServicerContext) -> pb.LeaseRevokeResponse:
        try:
            with self.lock:
                rev = self.store.lease_revoke(req.ID)
        except StoreError as exc:
            convert.abort(context, exc)
        self.store.wait_durable(rev)
        return pb.LeaseRevokeResponse(header=self.server.header(rev))

    def keep_alive(
        self, requests: Iterator[pb.LeaseKeepAliveRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.LeaseKeepAliveResponse]:
        store = self.store
        for req in requests:
            with self.lock:
                try:
                    ttl = store.lease_keepalive(req.ID)
                except LeaseNotFoundError:
                    ttl = 0
                rev = store.revision
            yield pb.LeaseKeepAliveResponse(header=self.server.header(rev), ID=req.ID, TTL=ttl)

    def time_to_live(self, req: pb.LeaseTimeToLiveRequest, context: grpc.ServicerContext) -> pb.LeaseTimeToLiveResponse:
        with self.lock:
            remaining, granted, keys = self.store.lease_time_to_live(req.ID, keys=req.keys)
            rev = self.store.revision
        if remaining < 0:
            return pb.LeaseTimeToLiveResponse(header=self.server.header(rev), ID=req.ID, TTL=-1)
        return pb.LeaseTimeToLiveResponse(
            header=self.server.header(rev), ID=req.ID, TTL=remaining, grantedTTL=granted, keys=keys
        )

    def leases(self, req: pb.LeaseLeasesRequest, context: grpc.ServicerContext) -> pb.LeaseLeasesResponse:
        with self.lock:
            ids = self.store.lease_ids()
            rev = self.store.revision
        return pb.LeaseLeasesResponse(header=self.server.header(rev), leases=[pb.LeaseStatus(ID=i) for i in ids])
