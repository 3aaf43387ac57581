"""`megaplane controller-manager`: the catalog's controllers in a process of their own, over HTTP.

kube-controller-manager's shape: one `Client` from a kubeconfig with
`--kube-api-qps` / `--kube-api-burst` (20 / 30, upstream's defaults) shared
by every controller `--controllers` chose (megaplane.controllers.catalog
builds them), and /healthz, /livez, /readyz, /metrics on --bind-address and
--port (megaplane.serving).

With leader election (the default, on the Lease
kube-system/kube-controller-manager) the controllers are built and started
only once this process leads, and they write through a client that refuses
writes once it no longer does (megaplane.client.leaderelection). A process
that loses the lease exits with status 1 ("leaderelection lost"), as
upstream's does, so its supervisor restarts it as a fresh standby; SIGTERM
stops the controllers, then releases the lease so a standby takes over at
once.

Built only on megaplane.client, so it manages any Kubernetes API server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from megaplane.client import Client
from megaplane.client.component import ClientComponent
from megaplane.client.leaderelection import (
    LeaderElected,
    LeaderElectionConfig,
    LeaderElectionMetrics,
    LeaderElector,
    exit_when_lost,
    leader_only_client,
)
from megaplane.runtime import Component, run_forever
from megaplane.serving import EndpointServer, HealthCheck

from .catalog import build_controllers, parse_controllers

__all__ = ["DEFAULT_LEASE_NAME", "ManagerOptions", "build", "run"]

#: kube-controller-manager's --leader-elect-resource-name.
DEFAULT_LEASE_NAME = "kube-controller-manager"


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
    #: None: no election, the controllers start at once (--leader-elect=false).
    leader_election: Optional[LeaderElectionConfig] = field(
        default_factory=lambda: LeaderElectionConfig(DEFAULT_LEASE_NAME, event_component=DEFAULT_LEASE_NAME))
    max_connections: int = 8
    #: --use-service-account-credentials: each controller writes as its own ServiceAccount (sacredentials).
    use_service_account_credentials: bool = False


def build(options: ManagerOptions, *, announce: Callable[[str], None] = print,
          on_lost: Callable[[], None] = exit_when_lost) -> List[Component]:
    """The process's components in start order: the client (closed last), the controllers (elected or not),
    the endpoints."""
    client = Client.from_kubeconfig(options.kubeconfig, options.context or None, qps=options.qps,
                                    burst=options.burst, max_connections=options.max_connections)
    parts: List[Component] = [ClientComponent(client)]
    client_for: Optional[Callable[[str], Client]] = None
    if options.use_service_account_credentials:
        from megaplane.client.kubeconfig import load_kubeconfig

        from .sacredentials import ServiceAccountTransport

        config = load_kubeconfig(options.kubeconfig, options.context or None)
        own: Dict[str, Client] = {}
        for name in options.controllers:
            own[name] = Client(ServiceAccountTransport(client, config, name, qps=options.qps, burst=options.burst,
                                                       max_connections=2), namespace=client.namespace)
            parts.append(ClientComponent(own[name], name=f"client-{name}"))
        client_for = own.__getitem__
    collectors: List[Any] = []
    checks: Dict[str, HealthCheck] = {}
    if options.leader_election is None:
        controllers = build_controllers(options.controllers, client, options.controller_options,
                                        client_for=client_for)
        parts.extend(controllers)

        def ready() -> bool:
            return all(c.ready() for c in controllers)
    else:
        # Its own client, as kube-controller-manager's "leader-election" one: renewals never wait behind the
        # controllers' requests in the shared --kube-api-qps token bucket or connection pool.
        election_client = Client.from_kubeconfig(options.kubeconfig, options.context or None, qps=options.qps,
                                                 burst=options.burst, max_connections=2)
        parts.append(ClientComponent(election_client, name="leader-election-client"))
        elector = LeaderElector(election_client, options.leader_election)
        fenced = leader_only_client(client, elector)
        elected = LeaderElected(
            elector, lambda: build_controllers(
                options.controllers, fenced, options.controller_options,
                client_for=None if client_for is None else lambda n: leader_only_client(client_for(n), elector)),
            name="controllers", on_lost=on_lost, announce=announce)
        parts.append(elected)
        collectors.append(LeaderElectionMetrics([elector]))
        checks["leaderElection"] = elector.check
        ready = elected.ready
    if options.port:
        parts.append(EndpointServer(options.bind_address or "0.0.0.0", options.port, collectors, ready, checks))
    return parts


def run(options: ManagerOptions) -> int:
    """Run until SIGINT / SIGTERM (exit 0) or until the lease is lost (exit 1 from inside); the exit status."""

    def say(line: str) -> None:
        print(f"megaplane controller-manager: {line}", flush=True)

    def started() -> None:
        where = f"; /healthz and /metrics on http://{options.bind_address}:{options.port}" if options.port else ""
        le = options.leader_election
        election = (f"leader election on lease {le.describe()} as {le.identity}" if le is not None
                    else "no leader election")
        say(f"controllers {', '.join(options.controllers) or '(none)'}; {election}{where}")

    run_forever(lambda: build(options, announce=say), on_started=started)
    return 0
