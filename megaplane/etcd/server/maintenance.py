"""etcdserverpb.Maintenance, Cluster and Auth: the member's own status, as a one-member cluster.

megaplane's store is one member with no raft (`member`): the raft index
is the revision, the member is always its own leader. Status
reports version 3.5.17 because kube-apiserver >= 1.31 trusts watch progress
notifications only from etcd >= 3.5.13, and megaplane implements them.
Defragment has nothing to do (there is no B-tree file to compact).
Snapshot streams a megaplane snapshot file (`megaplane.store.wal.snapshot`),
not a bbolt database: `megaplane snapshot restore|status` read it,
`etcdctl snapshot status|restore` cannot.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import zlib
from typing import Any, Dict, Optional

from megaplane.store.wal import snapshot

from ..grpc import Method, ServerCall
from ..pb import etcd_pb2 as pb
from .member import RAFT_TERM, Member
from .views import MaintenanceView, Revisions

__all__ = ["MaintenanceService", "ClusterService", "AuthService", "HealthService", "SERVER_VERSION", "db_size"]

SERVER_VERSION = "3.5.17"
SNAPSHOT_CHUNK = 32 * 1024


def db_size(data_dir: Optional[str]) -> int:
    """Bytes the store keeps on disk (checkpoint + WAL): etcd's "DB SIZE" for a memory store."""
    if data_dir is None:
        return 0
    total = 0
    for root, _, files in os.walk(data_dir):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


class MaintenanceService:
    def __init__(self, member: Member, store: MaintenanceView, scratch_dir: str) -> None:
        self.member = member
        self.store = store
        #: Where Snapshot writes its temporary file.
        self.scratch_dir = scratch_dir

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
        me = self.member
        member = me.member_id
        if req.action == pb.AlarmRequest.ACTIVATE and req.alarm != pb.NONE:
            me.alarms.add((req.memberID or member, req.alarm))
        elif req.action == pb.AlarmRequest.DEACTIVATE:
            me.alarms.discard((req.memberID or member, req.alarm))
        alarms = [
            pb.AlarmMember(memberID=m, alarm=a)
            for m, a in sorted(me.alarms)
            if req.action != pb.AlarmRequest.GET or req.alarm in (pb.NONE, a)
        ]
        return pb.AlarmResponse(header=me.header(self.store.revision), alarms=alarms)

    def status(self, req: pb.StatusRequest) -> pb.StatusResponse:
        me = self.member
        rev = self.store.revision
        size = db_size(self.store.data_dir)
        errors = [f"memberID:{m} alarm:{pb.AlarmType.Name(a)} " for m, a in sorted(me.alarms)]
        return pb.StatusResponse(
            header=me.header(rev),
            version=SERVER_VERSION,
            dbSize=size,
            leader=me.member_id,
            raftIndex=rev,
            raftTerm=RAFT_TERM,
            raftAppliedIndex=rev,
            errors=errors,
            dbSizeInUse=size,
            isLearner=False,
        )

    def defragment(self, req: pb.DefragmentRequest) -> pb.DefragmentResponse:
        return pb.DefragmentResponse(header=self.member.header(self.store.revision))

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
        return pb.HashResponse(header=self.member.header(self.store.revision), hash=self._state_hash(0))

    def hash_kv(self, req: pb.HashKVRequest) -> pb.HashKVResponse:
        h = self._state_hash(req.revision)
        rev = self.store.revision
        return pb.HashKVResponse(
            header=self.member.header(rev),
            hash=h,
            compact_revision=self.store.compact_revision,
            hash_revision=req.revision or rev,
        )

    async def snapshot(self, req: pb.SnapshotRequest, call: ServerCall) -> None:
        view = snapshot.capture(self.store)
        fd, path = tempfile.mkstemp(prefix="megaplane-snapshot-", dir=self.scratch_dir)
        os.close(fd)
        try:
            # Encoding a large store takes a while: do it off the event loop.
            await asyncio.to_thread(snapshot.write, path, view, etcd_trailer=True)
            size = os.path.getsize(path)
            header = self.member.header(view.revision)
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
    def __init__(self, member: Member, store: Revisions) -> None:
        self.member = member
        self.store = store

    def methods(self) -> Dict[str, Method]:
        return {
            "/etcdserverpb.Cluster/MemberList": Method(
                "unary", self.member_list, pb.MemberListRequest.FromString, pb.MemberListResponse.SerializeToString
            )
        }

    def member_list(self, req: pb.MemberListRequest) -> pb.MemberListResponse:
        m = self.member
        member = pb.Member(ID=m.member_id, name=m.name, peerURLs=m.peer_urls, clientURLs=m.client_urls)
        return pb.MemberListResponse(header=m.header(self.store.revision), members=[member])


class AuthService:
    """Authentication is not enabled in megaplane's store; AuthStatus says so."""

    def __init__(self, member: Member, store: Revisions) -> None:
        self.member = member
        self.store = store

    def methods(self) -> Dict[str, Method]:
        return {
            "/etcdserverpb.Auth/AuthStatus": Method(
                "unary", self.auth_status, pb.AuthStatusRequest.FromString, pb.AuthStatusResponse.SerializeToString
            )
        }

    def auth_status(self, req: pb.AuthStatusRequest) -> pb.AuthStatusResponse:
        return pb.AuthStatusResponse(header=self.member.header(self.store.revision), enabled=False)


class HealthService:
    """grpc.health.v1.Health/Check: SERVING while the store is up (messages hand-encoded)."""

    def methods(self) -> Dict[str, Method]:
        # HealthCheckResponse{status: SERVING(1)} is field 1, varint 1.
        return {"/grpc.health.v1.Health/Check": Method("unary", lambda req: b"\x08\x01", bytes, bytes)}
