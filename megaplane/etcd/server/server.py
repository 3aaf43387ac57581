"""`megaplane store`: the embedded store served over the etcd v3 gRPC API.

One process, one member, one event loop: the HTTP/2 transport
(`megaplane.etcd.grpc`), the etcd servicers and the store all run on it, so
handlers call the store without locks; the WAL flusher and checkpoint
writer are the only other threads. `EtcdServer` is a component that binds
the listeners on a running loop; the store's own lifecycle (loop
attachment, lease expiry, close) is `megaplane.store.StoreComponent`, run
beside it.

The server composes: it builds the member and hands each servicer the
member and the narrow store view it needs (`views`). Servicers never see
the server.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any, Callable, Dict, List, Optional

from megaplane.store import Store, StoreError

from ..grpc import GrpcServer, Method
from ..pb import etcd_pb2 as pb
from ..urls import grpc_address
from .kv import KVService
from .lease import LeaseService
from .maintenance import AuthService, ClusterService, HealthService, MaintenanceService, db_size
from .member import Member
from .watch import WatchService, WatchSettings

__all__ = ["EtcdServer", "serve"]

log = logging.getLogger("megaplane.etcd.server")

# etcd accepts this much beyond --max-request-bytes for gRPC framing (embed/config.go).
GRPC_OVERHEAD_BYTES = 512 * 1024


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
        self.listen_client_urls = listen_client_urls
        self.member = Member(store.data_dir, name, advertise_client_urls or listen_client_urls)
        self.max_request_bytes = store.config.max_request_bytes
        self.ports: List[int] = []
        methods: Dict[str, Method] = {}
        member = self.member
        for svc in (
            KVService(member, store),
            WatchService(member, store, WatchSettings(progress_notify_interval, self.max_request_bytes)),
            LeaseService(member, store),
            MaintenanceService(member, store, store.data_dir or tempfile.gettempdir()),
            ClusterService(member, store),
            AuthService(member, store),
            HealthService(),
        ):
            methods.update(svc.methods())
        self.grpc = GrpcServer(
            methods, max_receive_bytes=self.max_request_bytes + GRPC_OVERHEAD_BYTES, status_errors=(StoreError,)
        )

    @property
    def member_id(self) -> int:
        return self.member.member_id

    @property
    def cluster_id(self) -> int:
        return self.member.cluster_id

    def header(self, revision: int) -> pb.ResponseHeader:
        return self.member.header(revision)

    def db_size(self) -> int:
        """Bytes the store keeps on disk (checkpoint + WAL): etcd's "DB SIZE" for a memory store."""
        return db_size(self.store.data_dir)

    @property
    def name(self) -> str:
        return "etcd"

    async def start(self) -> None:
        """Listen on --listen-client-urls (the store is started beside this component)."""
        for url in self.listen_client_urls:
            host, _, port = grpc_address(url).rpartition(":")
            self.ports.append(await self.grpc.listen(host.strip("[]"), int(port)))
        log.info("serving the etcd v3 API on %s", ", ".join(self.listen_client_urls))

    async def stop(self) -> None:
        await self.grpc.close()

    def ready(self) -> bool:
        return bool(self.ports)

    def statistics(self) -> Dict[str, float]:
        return {"revision": float(self.store.revision), "ports": float(len(self.ports))}


def serve(server: EtcdServer, on_ready: Optional[Callable[[EtcdServer], Any]] = None) -> None:
    """Run the store and `server` until SIGINT/SIGTERM: `megaplane store`."""
    from megaplane.runtime import run_forever
    from megaplane.store.component import StoreComponent

    run_forever([StoreComponent(server.store), server],
                on_started=(lambda: on_ready(server)) if on_ready is not None else None)
