"""`megaplane controller-manager`: the catalog's controllers in a process of their own, over HTTP.

kube-controller-manager's shape: one `Client` from a kubeconfig with
`--kube-api-qps` / `--kube-api-burst` (20 / 30, upstream's defaults) shared
by every controller `--controllers` chose (megaplane.controllers.catalog
builds them), and /healthz, /livez, /readyz, /metrics on --bind-address and
--port (megaplane.serving).

Built only on megaplane.client, so it manages any Kubernetes API server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

from megaplane.client import Client
from megaplane.client.component import ClientComponent
from megaplane.runtime import Component, run_forever
from megaplane.serving import EndpointServer

from .catalog import build_controllers, parse_controllers

__all__ = ["ManagerOptions", "build", "run"]


@dataclass
class ManagerOptions:
    kubeconfig: str
    context: str = ""
    #: kube-controller-manager's --kube-api-qps / --kube-api-burst defaults.
    qps: float = 20.0
    burst: int = 30
    bind_address: str = "0.0.0.0"
    #: Plain HTTP port of /healthz, /readyz, /metrics (0: off).
    port: int = 0
    controllers: List[str] = field(default_factory=lambda: parse_controllers("*"))
    #: The controllers' own flags (catalog: dest -> value; absent: upstream's default).
    controller_options: Dict[str, Any] = field(default_factory=dict)
    max_connections: int = 8


def build(options: ManagerOptions) -> List[Component]:
    """The process's components in start order: the client (closed last), the controllers, the endpoints."""
    client = Client.from_kubeconfig(options.kubeconfig, options.context or None, qps=options.qps,
                                    burst=options.burst, max_connections=options.max_connections)
    parts: List[Component] = [ClientComponent(client)]
    controllers = build_controllers(options.controllers, client, options.controller_options)
    parts.extend(controllers)
    if options.port:
        parts.append(EndpointServer(options.bind_address or "0.0.0.0", options.port, [],
                                    lambda: all(c.ready() for c in controllers)))
    return parts


def run(options: ManagerOptions) -> int:
    """Run until SIGINT / SIGTERM; the process's exit status."""
    def started() -> None:
        where = f"; /healthz and /metrics on http://{options.bind_address}:{options.port}" if options.port else ""
        print(f"megaplane controller-manager: controllers {', '.join(options.controllers) or '(none)'}{where}",
              flush=True)

    run_forever(lambda: build(options), on_started=started)
    return 0
