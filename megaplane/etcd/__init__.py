"""megaplane.etcd: the etcd v3 wire, both ways.

Owns etcd's protobuf messages (`pb`, generated from etcd.proto; the only
package that imports etcd_pb2), a gRPC server over HTTP/2 (`grpc`, generic:
it knows neither etcd nor the store), the translation between etcd
messages and the store's types (`convert`), the etcd services over the
embedded store (`server`), and the client of etcd clusters (`client`:
what storage.etcd3 and megaplane's own tools call, over megaplane.etcd.grpc's client or
grpc.aio). It builds on `megaplane.store`; the store
never imports it (.importlinter).
"""

from .server import EtcdServer, serve
from .urls import grpc_address

__all__ = ["EtcdServer", "grpc_address", "serve"]
