"""etcd client URLs: the host:port a gRPC listener binds or a client dials."""

from __future__ import annotations

from urllib.parse import urlparse

__all__ = ["grpc_address"]


def grpc_address(url: str) -> str:
    """host:port from an etcd-style client URL (http://127.0.0.1:2379)."""
    if "://" not in url:
        return url
    u = urlparse(url)
    if u.scheme != "http":
        raise ValueError(f"unsupported client URL scheme {u.scheme!r} in {url!r} (only http:// is implemented)")
    return f"{u.hostname}:{u.port or 2379}"
