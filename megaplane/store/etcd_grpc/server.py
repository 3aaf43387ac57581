"""`megaplane store`: the embedded store served over the etcd v3 gRPC API.

One process, one member, one event loop: the HTTP/2 transport
(`transport`), the etcd services and the store all run on it, so handlers
call the store without locks; the WAL flusher and checkpoint writer are the
only other threads. `EtcdServer.start()` binds the listeners on a running
loop; `serve()` is the blocking entry point the CLI uses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import tempfile
from typing import Dict, List, Optional, Set, Tuple
from urllib.parse import urlparse

from ..mvcc import Store
from .etcdpb import etcd_pb2 as pb
from .kv import KVService
from .lease import LeaseService
from .maintenance import RAFT_TERM, AuthService, ClusterService, HealthService, MaintenanceService
from .transport import GrpcServer, Method
from .watch import WatchService

__all__ = ["EtcdServer", "grpc_address", "serve"]

log = logging.getLogger("megaplane.store.etcd_grpc")

# etcd accepts this much beyond --max-request-bytes for gRPC framing (embed/config.go).
GRPC_OVERHEAD_BYTES = 512 * 1024
# etcd's lessor checks for expired leases every 500 ms.
LEASE_EXPIRY_INTERVAL = 0.5


def grpc_address(url: str) -> str:
    """host:port from an etcd-style client URL (http://127.0.0.1:2379)."""
    if "://" not in url:
        return url
    u = urlparse(url)
    if u.scheme != "http":
        raise ValueError(f"unsupported client URL scheme {u.scheme!r} in {url!r} (only http:// is implemented)")
    return f"{u.hostname}:{u.port or 2379}"


def _identity(data_dir: Optional[str], name: str) -> Tuple[int, int]:
    """(member id, cluster id): kept in the data dir so they survive restarts, like etcd's."""
    if data_dir is not None:
        path = os.path.join(data_dir, "member.json")
        try:
            with open(path) as f:
                d = json.load(f)
            return int(d["member_id"]), int(d["cluster_id"])
        except FileNotFoundError:
            pass
    rng = random.SystemRandom()
    member_id, cluster_id = rng.getrandbits(63) or 1, rng.getrandbits(63) or 1
    if data_dir is not None:
        tmp = os.path.join(data_dir, "member.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"member_id": member_id, "cluster_id": cluster_id, "name": name}, f)
        os.replace(tmp, os.path.join(data_dir, "member.json"))
    return member_id, cluster_id


class EtcdServer:
    """A store, the etcd services over it, and its member identity."""

    def __init__(
        self,
        store: Store,
        *,
        listen_client_urls: List[str],
        advertise_client_urls: Optional[List[str]] = None,
        name: str = "default",
        progress_notify_interval: float = 600.0,
    ) -> None:
        self.store = store
        self.name = name
        self.listen_client_urls = listen_client_urls
        self.advertise_client_urls = advertise_client_urls or listen_client_urls
        self.peer_urls: List[str] = []
        self.member_id, self.cluster_id = _identity(store.data_dir, name)
        self.max_request_bytes = store.config.max_request_bytes
        self.progress_notify_interval = progress_notify_interval
        self.alarms: Set[Tuple[int, int]] = set()
        self.scratch_dir = store.data_dir or tempfile.gettempdir()
        self.ports: List[int] = []
        methods: Dict[str, Method] = {}
        for svc in (
            KVService(self),
            WatchService(self),
            LeaseService(self),
            MaintenanceService(self),
            ClusterService(self),
            AuthService(self),
            HealthService(),
        ):
            methods.update(svc.methods())
        self.grpc = GrpcServer(methods, max_receive_bytes=self.max_request_bytes + GRPC_OVERHEAD_BYTES)
        self._expiry: Optional[asyncio.Task] = None

    @property
    def nospace(self) -> bool:
        return any(a == pb.NOSPACE for _, a in self.alarms)

    def header(self, revision: int) -> pb.ResponseHeader:
        return pb.ResponseHeader(
            cluster_id=self.cluster_id, member_id=self.member_id, revision=revision, raft_term=RAFT_TERM
        )

    def db_size(self) -> int:
        """Bytes the store keeps on disk (checkpoint + WAL): etcd's "DB SIZE" for a memory store."""
        if self.store.data_dir is None:
            return 0
        total = 0
        for root, _, files in os.walk(self.store.data_dir):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
        return total

    async def start(self) -> None:
        """Serve on the running loop: attach the store, expire leases, listen."""
        self.store.attach_loop(asyncio.get_running_loop())
        self._expiry = asyncio.get_running_loop().create_task(self._expire_leases())
        for url in self.listen_client_urls:
            host, _, port = grpc_address(url).rpartition(":")
            self.ports.append(await self.grpc.listen(host.strip("[]"), int(port)))
        log.info("serving the etcd v3 API on %s", ", ".join(self.listen_client_urls))

    async def _expire_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_EXPIRY_INTERVAL)
            self.store.expire_leases()

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        await self.grpc.close()
        self.store.close()


def serve(server: EtcdServer, on_ready=None) -> None:  # type: ignore[no-untyped-def]
    """Run `server` until SIGINT/SIGTERM (uvloop when installed)."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run

    async def main() -> None:
        await server.start()
        if on_ready is not None:
            on_ready(server)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    runner(main())
