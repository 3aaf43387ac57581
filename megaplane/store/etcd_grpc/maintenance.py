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

import os
import tempfile
import zlib
from typing import TYPE_CHECKING, Iterator

import grpc

from .. import snapshot
from ..errors import StoreError
from . import convert
from .etcdpb import etcd_pb2 as pb

if TYPE_CHECKING:
    from .server import EtcdServer

__all__ = ["MaintenanceService", "ClusterService", "AuthService", "SERVER_VERSION", "RAFT_TERM"]

SERVER_VERSION = "3.5.17"
RAFT_TERM = 2
SNAPSHOT_CHUNK = 32 * 1024


class MaintenanceService:
    def __init__(self, server: "EtcdServer") -> None:
        self.server = server
        self.store = server.store
        self.lock = server.store.lock

    def handlers(self) -> dict:
        u = grpc.unary_unary_rpc_method_handler
        return {
            "Alarm": u(self.alarm, pb.AlarmRequest.FromString, pb.AlarmResponse.SerializeToString),
            "Status": u(self.status, pb.StatusRequest.FromString, pb.StatusResponse.SerializeToString),
            "Defragment": u(self.defragment, pb.DefragmentRequest.FromString, pb.DefragmentResponse.SerializeToString),
            "Hash": u(self.hash, pb.HashRequest.FromString, pb.HashResponse.SerializeToString),
            "HashKV": u(self.hash_kv, pb.HashKVRequest.FromString, pb.HashKVResponse.SerializeToString),
            "Snapshot": grpc.unary_stream_rpc_method_handler(
                self.snapshot, pb.SnapshotRequest.FromString, pb.SnapshotResponse.SerializeToString
            ),
        }

    def alarm(self, req: pb.AlarmRequest, context: grpc.ServicerContext) -> pb.AlarmResponse:
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

    def status(self, req: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusResponse:
        server = self.server
        with self.lock:
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

    def defragment(self, req: pb.DefragmentRequest, context: grpc.ServicerContext) -> pb.DefragmentResponse:
        return pb.DefragmentResponse(header=self.server.header(self.store.revision))

    def _state_hash(self, revision: int) -> int:
        """crc32 of every record at `revision`, in key order."""
        with self.lock:
            res = self.store.range(b"\x00", b"\x00", revision=revision)
        h = 0
        for key, create, mod, version, value, lease in res.kvs:
            h = zlib.crc32(key, h)
            h = zlib.crc32(b"%d/%d/%d/%d" % (create, mod, version, lease), h)
            h = zlib.crc32(value, h)
        return h

    def hash(self, req: pb.HashRequest, context: grpc.ServicerContext) -> pb.HashResponse:
        return pb.HashResponse(header=self.server.header(self.store.revision), hash=self._state_hash(0))

    def hash_kv(self, req: pb.HashKVRequest, context: grpc.ServicerContext) -> pb.HashKVResponse:
        try:
            h = self._state_hash(req.revision)
        except StoreError as exc:
            convert.abort(context, exc)
        with self.lock:
            rev = self.store.revision
        return pb.HashKVResponse(
            header=self.server.header(rev),
            hash=h,
            compact_revision=self.store.compact_revision,
            hash_revision=req.revision or rev,
        )

    def snapshot(self, req: pb.SnapshotRequest, context: grpc.ServicerContext) -> Iterator[pb.SnapshotResponse]:
        with self.lock:
            view = snapshot.capture(self.store)
        fd, path = tempfile.mkstemp(prefix="megaplane-snapshot-", dir=self.server.scratch_dir)
        os.close(fd)
        try:
            snapshot.write(path, view, etcd_trailer=True)
            size = os.path.getsize(path)
            header = self.server.header(view.revision)
            sent = 0
            with open(path, "rb") as f:
                while True:
                    blob = f.read(SNAPSHOT_CHUNK)
                    if not blob:
                        break
                    sent += len(blob)
                    yield pb.SnapshotResponse(header=header, remaining_bytes=size - sent, blob=blob)
        finally:
            os.unlink(path)


class ClusterService:
    def __init__(self, server: "EtcdServer") -> None:
        self.server = server

    def handlers(self) -> dict:
        return {
            "MemberList": grpc.unary_unary_rpc_method_handler(
                self.member_list, pb.MemberListRequest.FromString, pb.MemberListResponse.SerializeToString
            )
        }

    def member_list(self, req: pb.MemberListRequest, context: grpc.ServicerContext) -> pb.MemberListResponse:
        s = self.server
        member = pb.Member(ID=s.member_id, name=s.name, peerURLs=s.peer_urls, clientURLs=s.advertise_client_urls)
        return pb.MemberListResponse(header=s.header(s.store.revision), members=[member])


class AuthService:
    """Authentication is not enabled in megaplane's store; AuthStatus says so."""

    def __init__(self, server: "EtcdServer") -> None:
        self.server = server

    def handlers(self) -> dict:
        return {
            "AuthStatus": grpc.unary_unary_rpc_method_handler(
                self.auth_status, pb.AuthStatusRequest.FromString, pb.AuthStatusResponse.SerializeToString
            )
        }

    def auth_status(self, req: pb.AuthStatusRequest, context: grpc.ServicerContext) -> pb.AuthStatusResponse:
        return pb.AuthStatusResponse(header=self.server.header(self.server.store.revision), enabled=False)
