"""`megaplane up` / `megaplane apiserver`: the control plane in one process, on one event loop.

The embedded store, the API server (plain and TLS ports) and, if asked,
the etcd v3 endpoint over the same store all share one uvloop loop, so
the API server calls the store without locks or copies. The admin
kubeconfig is written once the server answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
from dataclasses import dataclass, field
from typing import List, Optional

from megaplane.apiserver.server import APIServer, APIServerConfig

from .store import Store, StoreConfig
from .store.backend import EmbeddedBackend

__all__ = ["ControlPlaneConfig", "ControlPlane", "run"]

log = logging.getLogger("megaplane")

# etcd's lessor revokes expired leases every 500 ms.
LEASE_EXPIRY_INTERVAL = 0.5


@dataclass
class ControlPlaneConfig:
    data_dir: Optional[str] = None
    store: StoreConfig = field(default_factory=StoreConfig)
    api: APIServerConfig = field(default_factory=APIServerConfig)
    bind_address: str = "127.0.0.1"
    #: Plain HTTP port (0: off).
    port: int = 0
    #: HTTPS port (0: off).
    secure_port: int = 6443
    kubeconfig: Optional[str] = None
    tls_sans: List[str] = field(default_factory=list)
    #: Also serve the etcd v3 API over the same store (e.g. http://127.0.0.1:2379).
    etcd_client_urls: List[str] = field(default_factory=list)


class ControlPlane:
    def __init__(self, config: ControlPlaneConfig) -> None:
        self.config = config
        self.store = Store(config.data_dir, config.store)
        if config.secure_port or config.port:
            config.api.endpoint_port = config.secure_port or config.port
        self.api = APIServer(EmbeddedBackend(self.store), config.api)
        self.etcd = None
        self.port = 0
        self.secure_port = 0
        self._tasks: List[asyncio.Task] = []

    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.store.attach_loop(loop)
        await self.api.start()
        host = cfg.bind_address
        if cfg.port:
            self.port = await self.api.listen(host, cfg.port)
        ca = None
        if cfg.secure_port:
            from megaplane.apiserver.http.tls import ensure_certs, server_ssl_context

            pki = os.path.join(cfg.data_dir or tempfile.mkdtemp(prefix="megaplane-pki-"), "pki")
            ca, crt, key = ensure_certs(pki, cfg.tls_sans)
            self.secure_port = await self.api.listen(host, cfg.secure_port, server_ssl_context(crt, key))
        if cfg.etcd_client_urls:
            from .etcd import EtcdServer

            self.etcd = EtcdServer(self.store, listen_client_urls=cfg.etcd_client_urls)
            await self.etcd.start()  # also expires leases
        else:
            self._tasks.append(loop.create_task(self._expire_leases()))
        if cfg.kubeconfig:
            from megaplane.apiserver.http.tls import write_kubeconfig

            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            if self.secure_port:
                server = f"https://{shown}:{self.secure_port}"
            else:
                server = f"http://{shown}:{self.port}"
            write_kubeconfig(cfg.kubeconfig, server, ca)

    async def _expire_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_EXPIRY_INTERVAL)
            self.store.expire_leases()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.api.stop()
        if self.etcd is not None:
            await self.etcd.grpc.close()
        self.store.close()

    def describe(self) -> str:
        parts = []
        host = self.config.bind_address
        if self.secure_port:
            parts.append(f"https://{host}:{self.secure_port}")
        if self.port:
            parts.append(f"http://{host}:{self.port}")
        line = "megaplane: Kubernetes API on " + ", ".join(parts)
        if self.etcd is not None:
            line += f"; etcd API on {', '.join(self.config.etcd_client_urls)}"
        line += f"; store revision {self.store.revision}, data dir {self.config.data_dir or '(memory only)'}"
        if self.config.kubeconfig:
            line += f"\nkubeconfig written to {self.config.kubeconfig}: kubectl --kubeconfig {self.config.kubeconfig} get ns"
        return line


def run(config: ControlPlaneConfig) -> None:
    """Run until SIGINT / SIGTERM, on uvloop when it is installed."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run

    async def main() -> None:
        cp = ControlPlane(config)
        await cp.start()
        print(cp.describe(), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await cp.stop()

    runner(main())
