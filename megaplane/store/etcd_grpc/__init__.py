"""megaplane.store.etcd_grpc: the store served over etcd's v3 gRPC API.

Owns the wire: etcd's protobuf messages (etcdpb, generated from
etcd.proto), their translation to the store's types (convert), one module
per etcd service (kv, watch, lease, maintenance), and the server process
(server). The only package that imports generated protobufs; the store
never imports it.
"""

from .server import EtcdServer, grpc_address, serve

__all__ = ["EtcdServer", "grpc_address", "serve"]
