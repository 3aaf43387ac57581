"""megaplane.etcd.grpc: a gRPC server over HTTP/2 on asyncio, for etcd's clients.

Generic: it knows neither etcd's messages nor the store. `h2` (HTTP/2
framing, HPACK helpers), `calls` (gRPC status, trailers, `Method`),
`connection` (one client connection and its calls), `server` (listeners).
"""

from .calls import STATUS, Method, RpcError
from .server import GrpcServer
from .streams import ServerCall

__all__ = ["GrpcServer", "Method", "ServerCall", "RpcError", "STATUS"]
