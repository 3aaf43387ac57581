"""etcdserverpb.Maintenance, Cluster and Auth: the member's own status, as a one-member cluster.

megaplane's store is one member with no raft: the raft term is fixed, the
raft index is the revision, the member is always its own leader. Status
reports version 3.5.17 because kube-apiserver >= 1.31 trusts watch progress
notifications only from etcd >= 3.5.13, and megaplane implements them.
Defragment has nothing to do (there is no B-tree file to compact).
Snapshot streams a megaplane snapshot file (`megaplane.store.snapshot`),
not a bbolt database: `megaplane snapshot restore|status` read it,
`etcdctl snapshot status|restore` cannot.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import zlib
from typing import TYPE_CHECKING, Any, Dict

from .. import snapshot
from .etcdpb import etcd_pb2 as pb
from .transport import Method, ServerCall

if TYPE_CHECKING:
    from .server import EtcdServer

__all__ = ["MaintenanceService", "ClusterService", "AuthService", "HealthService", "SERVER_VERSION", "RAFT_TERM"]

SERVER_VERSION = "3.5.17"
RAFT_TERM = 2
SNAPSHOT_CHUNK = 32 * 1024


class MaintenanceService:
    def __init__(self, server: "EtcdServer") -> None:
        self.server = server
        self.store = server.store

    def methods(self) -> Dict[str, Method]:
        def m(handler: Any, req: Any, resp: Any, kind: str = "unary") -> Method:
            return Method(kind, handler, req.FromString, resp.SerializeToString)

        p = "/etcdserverpb.Maintenance/"
        return {
            p + "Alarm": m(self.alarm, pb.AlarmRequest, pb.AlarmResponse),
            p + "Status": m(self.status, pb.StatusRequest, pb.StatusResponse),
            p + "Defragment": m(self.defragment, pb.DefragmentRequest, pb.DefragmentResponse),
            p + "Hash": m(self.hash, pb.HashRequest, pb.HashResponse),
            p + "HashKV": m(self.hash_kv, pb.HashKVRequest, pb.HashKVResponse),
            p + "Snapshot": m(self.snapshot, pb.SnapshotRequest, pb.SnapshotResponse, "server_stream"),
        }

    def alarm(self, req: pb.AlarmRequest) -> pb.AlarmResponse:
        server = self.server
        member = server.member_id
        if req.action == pb.AlarmRequest.ACTIVATE and req.alarm != pb.NONE:
            server.alarms.add((req.memberID or member, req.alarm))
        elif req.action == pb.AlarmRequest.DEACTIVATE:
            server.alarms.discard((req.memberID or member, req.alarm))
        alarms = [
            pb.AlarmMember(memberID=m, alarm=a)
            for m, a in sorted(server.alarms)
            if req.action != pb.AlarmRequest.GET or req.alarm in (pb.NONE, a)
        ]
        return pb.AlarmResponse(header=server.header(self.store.revision), alarms=alarms)

    def status(self, req: pb.StatusRequest) -> pb.StatusResponse:
        server = self.server
        rev = self.store.revision
        size = server.db_size()
        errors = [f"memberID:{m} alarm:{pb.AlarmType.Name(a)} " for m, a in sorted(server.alarms)]
        return pb.StatusResponse(
            header=server.header(rev),
            version=SERVER_VERSION,
            dbSize=size,
            leader=server.member_id,
            raftIndex=rev,
            raftTerm=RAFT_TERM,
            raftAppliedIndex=rev,
            errors=errors,
            dbSizeInUse=size,
            isLearner=False,
        )

    def defragment(self, req: pb.DefragmentRequest) -> pb.DefragmentResponse:
        return pb.DefragmentResponse(header=self.server.header(self.store.revision))

    def _state_hash(self, revision: int) -> int:
        """crc32 of every record at `revision`, in key order."""
        res = self.store.range(b"\x00", b"\x00", revision=revision)
        h = 0
        for key, create, mod, version, value, lease in res.kvs:
            h = zlib.crc32(key, h)
            h = zlib.crc32(b"%d/%d/%d/%d" % (create, mod, version, lease), h)
            h = zlib.crc32(value, h)
        return h

    def hash(self, req: pb.HashRequest) -> pb.HashResponse:
        return pb.HashResponse(header=self.server.header(self.store.revision), hash=self._state_hash(0))

    def hash_kv(self, req: pb.HashKVRequest) -> pb.HashKVResponse:
        h = self._state_hash(req.revision)
        rev = self.store.revision
        return pb.HashKVResponse(
            header=self.server.header(rev),
            hash=h,
            compact_revision=self.store.compact_revision,
            hash_revision=req.revision or rev,
        )

    async def snapshot(self, req: pb.SnapshotRequest, call: ServerCall) -> None:
        view = snapshot.capture(self.store)
        fd, path = tempfile.mkstemp(prefix="megaplane-snapshot-", dir=self.server.scratch_dir)
        os.close(fd)
        try:
            # Encoding a large store takes a while: do it off the event loop.
            await asyncio.to_thread(snapshot.write, path, view, etcd_trailer=True)
            size = os.path.getsize(path)
            header = self.server.header(view.revision)
            sent = 0
            with open(path, "rb") as f:
                while not call.done:
                    blob = f.read(SNAPSHOT_CHUNK)
                    if not blob:
                        break
                    sent += len(blob)
                    call.send(pb.SnapshotResponse(header=header, remaining_bytes=size - sent, blob=blob))
                    await call.wait_writable()
        finally:
            os.unlink(path)


class ClusterService:
    def __init__(self, server: "EtcdServer") -> None:
        self.server = server

    def methods(self) -> Dict[str, Method]:
        return {
            "/etcdserverpb.Cluster/MemberList": Method(
                "unary", self.member_list, pb.MemberListRequest.FromString, pb.MemberListResponse.SerializeToString
            )
        }

    def member_list(self, req: pb.MemberListRequest) -> pb.MemberListResponse:
        s = self.server
        member = pb.Member(ID=s.member_id, name=s.name, peerURLs=s.peer_urls, clientURLs=s.advertise_client_urls)
        return pb.MemberListResponse(header=s.header(s.store.revision), members=[member])


class AuthService:
    """Authentication is not enabled in megaplane's store; AuthStatus says so."""

    def __init__(self, server: "EtcdServer") -> None:
        self.server = server

    def methods(self) -> Dict[str, Method]:
        return {
            "/etcdserverpb.Auth/AuthStatus": Method(
                "unary", self.auth_status, pb.AuthStatusRequest.FromString, pb.AuthStatusResponse.SerializeToString
            )
        }

    def auth_status(self, req: pb.AuthStatusRequest) -> pb.AuthStatusResponse:
        return pb.AuthStatusResponse(header=self.server.header(self.server.store.revision), enabled=False)


class HealthService:
    """grpc.health.v1.Health/Check: SERVING while the store is up (messages hand-encoded)."""

    def methods(self) -> Dict[str, Method]:
        # HealthCheckResponse{status: SERVING(1)} is field 1, varint 1.
        return {"/grpc.health.v1.Health/Check": Method("unary", lambda req: b"\x08\x01", bytes, bytes)}
