"""The few client calls megaplane's own tools make to an etcd v3 endpoint (ours or etcd's)."""

from __future__ import annotations

import os
from typing import Dict

import grpc

from .pb import etcd_pb2 as pb
from .urls import grpc_address

__all__ = ["save_snapshot_from_endpoint"]


def save_snapshot_from_endpoint(endpoint: str, path: str, timeout: float = 300.0) -> Dict[str, object]:
    """Stream Maintenance.Snapshot from `endpoint` into `path` (atomically, fsynced)."""
    tmp = path + ".part"
    with grpc.insecure_channel(grpc_address(endpoint.split(",")[0])) as channel:
        call = channel.unary_stream(
            "/etcdserverpb.Maintenance/Snapshot",
            request_serializer=pb.SnapshotRequest.SerializeToString,
            response_deserializer=pb.SnapshotResponse.FromString,
        )
        size = 0
        revision = 0
        with open(tmp, "wb") as f:
            for resp in call(pb.SnapshotRequest(), timeout=timeout):
                if not revision:
                    revision = resp.header.revision
                f.write(resp.blob)
                size += len(resp.blob)
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    return {"revision": revision, "totalSize": size}
