"""megaplane.etcd.grpc: gRPC over HTTP/2 on asyncio, both ways: the server for etcd's clients, and the
client megaplane.etcd.client uses to reach etcd clusters.

Generic: it knows neither etcd's messages nor the store. `h2` (HTTP/2
framing, HPACK helpers), `calls` (gRPC status, trailers, `Method`),
`connection` (one client connection and its calls), `server` (listeners),
`client` (calls to a server: unary with deadlines, bidirectional streams).
"""

from .calls import STATUS, Method, RpcError
from .server import GrpcServer
from .streams import ServerCall

__all__ = ["GrpcServer", "Method", "ServerCall", "RpcError", "STATUS"]
