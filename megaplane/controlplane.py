"""`megaplane up` / `megaplane apiserver`: the control plane in one process, as a list of components.

The embedded store, the API server (plain and TLS ports), optionally the
etcd v3 endpoint over the same store, what kube-apiserver keeps in place
itself (system namespaces, the `kubernetes` Service), and for `up` the
built-in controllers, all on one uvloop loop: the API server calls the
store without locks or copies, and the controllers reach the registry
through `megaplane.client` over the loopback transport, the same client
they would use over HTTP in a process of their own. The admin kubeconfig
is written once every component has started.
"""

from __future__ import annotations

import gc
import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from megaplane.apimachinery.user import (
    ADMIN_USER,
    ALL_AUTHENTICATED,
    FLEET_GROUP,
    FLEET_USER,
    KUBE_CONTROLLER_MANAGER_USER,
    KUBE_SCHEDULER_USER,
    NODES_GROUP,
    SYSTEM_MASTERS,
    UserInfo,
)
from megaplane.apiserver.authn.flags import DEFAULT_ISSUER
from megaplane.apiserver.http.tls import (
    ensure_certs,
    ensure_service_account_key,
    issue_client_cert,
    server_ssl_context,
    write_kubeconfig,
)
from megaplane.apiserver.loopback import LoopbackTransport
from megaplane.apiserver.registry.services import family_of, parse_service_cidrs
from megaplane.apiserver.server import APIServer, APIServerConfig
from megaplane.client import Client
from megaplane.client.leaderelection import (
    LeaderElected,
    LeaderElectionConfig,
    LeaderElectionMetrics,
    LeaderElector,
    leader_only_client,
)
from megaplane.controllers.bootstrap import SystemBootstrap
from megaplane.controllers.catalog import build_controllers, parse_controllers
from megaplane.fleet import Fleet, FleetConfig
from megaplane.runtime import Component, Runner, die_with_parent, run_forever
from megaplane.storage import EmbeddedStorage, Storage
from megaplane.storage.etcd3 import BackendConfig, build_storage
from megaplane.store import Store, StoreConfig
from megaplane.store.component import StoreComponent

__all__ = ["ControlPlaneConfig", "ControlPlane", "run", "CLIENT_IDENTITIES"]

log = logging.getLogger("megaplane")

#: The client certificates the PKI issues, (file name, CN = user, O = groups), and so <data-dir>/<name>.kubeconfig:
#: the admin's (also written to --kubeconfig) and one per component that can run as a process of its own.
CLIENT_IDENTITIES: List[Tuple[str, str, Tuple[str, ...]]] = [
    ("admin", ADMIN_USER, (SYSTEM_MASTERS,)),
    ("scheduler", KUBE_SCHEDULER_USER, ()),
    ("controller-manager", KUBE_CONTROLLER_MANAGER_USER, ()),
    ("fleet", FLEET_USER, (FLEET_GROUP, NODES_GROUP)),
]

@dataclass
class ControlPlaneConfig:
    data_dir: Optional[str] = None
    store: StoreConfig = field(default_factory=StoreConfig)
    api: APIServerConfig = field(default_factory=APIServerConfig)
    bind_address: str = "127.0.0.1"
    #: A second address the same ports listen on: the loopback (or wildcard) of the other IP family, when the
    #: advertised address needs it (see resolve_advertise_address); "" for none.
    also_bind_address: str = ""
    #: Plain HTTP port (0: off).
    port: int = 0
    #: HTTPS port (0: off).
    secure_port: int = 6443
    kubeconfig: Optional[str] = None
    tls_sans: List[str] = field(default_factory=list)
    #: Also serve the etcd v3 API over the same store (e.g. http://127.0.0.1:2379).
    etcd_client_urls: List[str] = field(default_factory=list)
    #: Controllers run in this process over the loopback client (`megaplane up`; none for `megaplane apiserver`).
    controllers: List[str] = field(default_factory=lambda: parse_controllers("*"))
    #: The controllers' own flags (megaplane.controllers.catalog: dest -> value; absent: upstream's default).
    controller_options: Dict[str, Any] = field(default_factory=dict)
    #: Run the controllers only while holding this Lease (`megaplane up`'s --leader-elect*; None: always).
    leader_election: Optional[LeaderElectionConfig] = None
    #: Simulated nodes run in this process over the loopback client (`megaplane up --nodes N`; None: none).
    fleet: Optional[FleetConfig] = None
    #: Run the scheduler in this process over the loopback client (`megaplane up`; off for `megaplane apiserver`).
    scheduler: bool = False
    #: `megaplane up --scheduler-shards N`: that scheduler scatters each pod to N shard processes (1: none).
    scheduler_shards: int = 1
    #: Where resources are stored: --etcd-servers, --etcd-servers-overrides, ... (default: the embedded store).
    storage_backends: BackendConfig = field(default_factory=BackendConfig)
    #: `megaplane up --apiservers N`: the arguments of the N-1 more `megaplane apiserver` processes this one
    #: starts on the same storage (each its own plain port; see APIServerReplicas).
    apiserver_replicas: List[List[str]] = field(default_factory=list)


class _ListsAs:
    """A controller's transport: lists and watches as kube-controller-manager (upstream's controllers read
    through informers the manager's own client feeds), everything else as the controller itself."""

    def __init__(self, own: Any, lists: Any) -> None:
        self._own = own
        self._lists = lists

    def __getattr__(self, name: str) -> Any:
        return getattr(self._own, name)

    async def list(self, *args: Any, **kw: Any) -> Any:
        return await self._lists.list(*args, **kw)

    async def watch(self, *args: Any, **kw: Any) -> Any:
        return await self._lists.watch(*args, **kw)


class _Listeners:
    """The API server's ports, bound once the server has started (a component of their own, so order is explicit)."""

    def __init__(self, plane: "ControlPlane") -> None:
        self.plane = plane

    @property
    def name(self) -> str:
        return "listeners"

    async def start(self) -> None:
        await self.plane._listen()

    async def stop(self) -> None:
        await self.plane.api.http.close()

    def ready(self) -> bool:
        return bool(self.plane.port or self.plane.secure_port)

    def statistics(self) -> dict:
        return {"connections": float(len(self.plane.api.http.connections))}


class ControlPlane:
    def __init__(self, config: ControlPlaneConfig) -> None:
        self.config = config
        self.store = Store(config.data_dir, config.store)
        if config.secure_port or config.port:
            config.api.endpoint_port = config.secure_port or config.port
        self._embedded: Optional[EmbeddedStorage] = None
        self._prepare_pki()  # before the API server: its authenticators read the CA and the token key
        storage, self.etcd_backends = build_storage(config.storage_backends, self._embedded_storage)
        self.api = APIServer(storage, config.api)
        if self.etcd_backends is not None and config.storage_backends.count_poll_period > 0:
            self.api.metrics.storage_counts = self.etcd_backends.object_counts
        #: The loopback client: components in this process reach the registry through it.
        self.client = Client(self._loopback())
        self.etcd: Any = None
        self.port = 0
        self.secure_port = 0
        components: List[Component] = [StoreComponent(self.store)]
        if self.etcd_backends is not None:
            components.append(self.etcd_backends)  # the clusters are checked before the caches list them
        components.append(self.api)
        if config.etcd_client_urls:
            from megaplane.etcd import EtcdServer

            self.etcd = EtcdServer(self.store, listen_client_urls=config.etcd_client_urls)
            components.append(self.etcd)
        components.append(SystemBootstrap(self.client, config.api.advertise_address, config.api.endpoint_port))
        self.elector: Optional[LeaderElector] = None
        manager = self.client_as(KUBE_CONTROLLER_MANAGER_USER)
        if config.controllers and config.leader_election is not None:
            # Elected like a kube-controller-manager, so one standing by against this cluster takes over only
            # if this process stops leading; losing the lease stops these controllers and campaigns again.
            # system:kube-controller-manager may get and update only the Lease named kube-controller-manager
            # (upstream needs a Role of its own for any other --leader-elect-resource-name): another one is
            # renewed with the server's own loopback identity.
            le = config.leader_election
            elector_client = manager if (le.name, le.namespace) == ("kube-controller-manager", "kube-system") \
                else self.client
            self.elector = elector = LeaderElector(elector_client, le)
            components.append(LeaderElected(
                elector, lambda: build_controllers(
                    config.controllers, leader_only_client(manager, elector), config.controller_options,
                    client_for=lambda name: leader_only_client(self.controller_client(name), elector)),
                name="controllers", announce=log.info))
            self.api.prometheus.register(LeaderElectionMetrics([elector]))
        else:
            components.extend(build_controllers(config.controllers, manager, config.controller_options,
                                                client_for=self.controller_client))
        if config.scheduler and config.scheduler_shards > 1:
            from megaplane.scheduler.shards import ShardedScheduler

            components.append(ShardedScheduler(self.client_as(KUBE_SCHEDULER_USER), shards=config.scheduler_shards,
                                               announce=log.info))
        elif config.scheduler:
            from megaplane.scheduler import Scheduler

            components.append(Scheduler(self.client_as(KUBE_SCHEDULER_USER)))
        if config.fleet is not None and config.fleet.nodes:
            components.append(Fleet(self.client_as(FLEET_USER, (FLEET_GROUP, NODES_GROUP)), config.fleet,
                                    progress=log.info))
        components.append(_Listeners(self))
        self.replicas: Optional[APIServerReplicas] = None
        if config.apiserver_replicas:  # after the listeners: the etcd endpoint they use is up by then
            self.replicas = APIServerReplicas(config.apiserver_replicas)
            components.append(self.replicas)
        self.runner = Runner(components, name="control-plane")
        self.api.readiness = self.runner.ready

    def _loopback(self, *user_and_authorizer: Any) -> Any:
        """A loopback transport to this server's registry; audited by the server's policy when audit is on."""
        transport = LoopbackTransport(self.api.registry, *user_and_authorizer)
        if self.api.auditor is None:
            return transport
        from megaplane.apiserver.audit.loopback import AuditedTransport

        return AuditedTransport(transport, self.api.auditor)

    def client_as(self, name: str, groups: Tuple[str, ...] = ()) -> Client:
        """A loopback client for a component running as `name`: each verb authorized as over HTTP (the shared
        unchecked client when authorization is AlwaysAllow alone)."""
        if self.config.api.authorization.modes == ["AlwaysAllow"]:
            return self.client
        user = UserInfo(name, groups=(*groups, ALL_AUTHENTICATED))
        return Client(self._loopback(user, self.api.authz))

    def controller_client(self, controller: str) -> Client:
        """A controller's own client: its ServiceAccount in kube-system (--use-service-account-credentials)."""
        from megaplane.apiserver.authz.policy import controller_user

        name, groups = controller_user(controller)
        if self.config.api.authorization.modes == ["AlwaysAllow"]:
            return self.client
        own = self._loopback(UserInfo(name, groups=groups), self.api.authz)
        return Client(_ListsAs(own, self.client_as(KUBE_CONTROLLER_MANAGER_USER).transport))

    def _prepare_pki(self) -> None:
        """The cluster PKI in <data-dir>/pki (a temporary dir without one), made once and reused: the serving
        certificate, the CA that also verifies client certificates, the ServiceAccount token key, and a client
        certificate per CLIENT_IDENTITIES entry. Authentication flags left empty default to these."""
        cfg = self.config
        self._pki = pki = os.path.join(cfg.data_dir or tempfile.mkdtemp(prefix="megaplane-pki-"), "pki")
        os.makedirs(pki, mode=0o700, exist_ok=True)  # beside the store's, as private (etcd's 0700)
        sans = [*cfg.tls_sans, *_kubernetes_service_ips(cfg.api.service_cluster_ip_range)]
        self._ca, self._serving_crt, self._serving_key = ensure_certs(pki, sans)
        auth = cfg.api.authentication
        if not auth.client_ca_file:
            auth.client_ca_file = self._ca
        if not auth.service_account_signing_key_file:
            auth.service_account_signing_key_file = ensure_service_account_key(pki)[0]
        if not auth.service_account_issuers:
            auth.service_account_issuers = [DEFAULT_ISSUER]
        self._clients = {name: issue_client_cert(pki, name, user, groups) for name, user, groups in CLIENT_IDENTITIES}

    def component_kubeconfig(self, name: str) -> str:
        """Where the kubeconfig of CLIENT_IDENTITIES' `name` is written: beside the pki dir (the data dir)."""
        return os.path.join(os.path.dirname(self._pki), f"{name}.kubeconfig")

    def _embedded_storage(self) -> Storage:
        """This process's own store as storage (one instance: it shares TTL leases between writes)."""
        if self._embedded is None:
            self._embedded = EmbeddedStorage(self.store)
        return self._embedded

    async def _listen(self) -> None:
        cfg = self.config
        host = cfg.bind_address
        if cfg.port:
            self.port = await self.api.listen(host, cfg.port)
            if cfg.also_bind_address:
                await self.api.listen(cfg.also_bind_address, self.port)
        if cfg.secure_port:
            ssl = server_ssl_context(self._serving_crt, self._serving_key, cfg.api.authentication.client_ca_file)
            self.secure_port = await self.api.listen(host, cfg.secure_port, ssl)
            if cfg.also_bind_address:
                await self.api.listen(cfg.also_bind_address, self.secure_port, ssl)

    async def start(self) -> None:
        await self.runner.start()
        cfg = self.config
        host = cfg.bind_address
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if self.secure_port:
            server = f"https://{shown}:{self.secure_port}"
        else:
            server = f"http://{shown}:{self.port}"  # not authenticated: the kubeconfigs carry no credentials
        for name, user, _ in CLIENT_IDENTITIES:
            crt, key = self._clients[name]
            write_kubeconfig(self.component_kubeconfig(name), server, self._ca, crt, key, user)
        if cfg.kubeconfig:
            crt, key = self._clients["admin"]
            write_kubeconfig(cfg.kubeconfig, server, self._ca, crt, key, ADMIN_USER)

    async def stop(self) -> None:
        await self.runner.stop()

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
        if self.replicas is not None:
            line += f"; {len(self.replicas.argvs) + 1} API servers, the others on {', '.join(self.replicas.urls)}"
        if self.config.controllers:
            line += f"; controllers: {', '.join(self.config.controllers)}"
            if self.config.leader_election is not None:
                line += f" (while leading lease {self.config.leader_election.describe()})"
        if self.config.scheduler:
            line += "; scheduler"
        if self.config.fleet is not None and self.config.fleet.nodes:
            line += f"; {self.config.fleet.nodes} simulated nodes"
        if self.config.kubeconfig:
            line += f"\nkubeconfig written to {self.config.kubeconfig}: kubectl --kubeconfig {self.config.kubeconfig} get ns"
        line += (f"\ncomponent kubeconfigs (client certificates of {os.path.join(self._pki, 'ca.crt')}): "
                 + ", ".join(self.component_kubeconfig(name) for name, _, _ in CLIENT_IDENTITIES[1:]))
        return line


# The loopback and wildcard addresses of one family, and their counterparts in the other.
_OTHER_FAMILY_ADDRESS = {"127.0.0.1": "::1", "::1": "127.0.0.1", "0.0.0.0": "::", "::": "0.0.0.0"}


def resolve_advertise_address(bind_address: str, advertise_address: str,
                              service_cluster_ip_range: str) -> Tuple[str, str]:
    """The address the `kubernetes` Service's endpoints advertise, and a second address to listen on ("" none).

    As kube-apiserver, the advertised address must be of the default (first) service family, or the
    `kubernetes` Service could not reach it ("service IP family ... must match public address family ...").
    Unset, it is the bind address (its loopback when that is a wildcard); when the bind address is a
    loopback or wildcard of the other family (`megaplane up`'s 127.0.0.1 on its IPv6 cluster), it is the
    loopback of the service family, and the server listens there too, so the advertised address answers.
    """
    networks = parse_service_cidrs(service_cluster_ip_range)
    family = family_of(networks[0])
    if advertise_address:
        if family_of(advertise_address) != family:
            raise ValueError(f'service IP family "{networks[0]}" must match public address family '
                             f'"{advertise_address}"')
        return advertise_address, ""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_address, bind_address)
    if family_of(shown) == family:
        return shown, ""
    other = _OTHER_FAMILY_ADDRESS.get(bind_address)
    if other is None:
        raise ValueError(f"--bind-address {bind_address} is not of the default service family ({family} from "
                         f"--service-cluster-ip-range {service_cluster_ip_range}): set --advertise-address")
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(other, other), other


class APIServerReplicas:
    """`megaplane up --apiservers N`: N-1 more `megaplane apiserver` processes on this process's storage.

    Each is started with the arguments `up` worked out for it (`--etcd-servers` naming the shared store,
    its own plain `--port` and data dir), told to die with this process (PR_SET_PDEATHSIG), and waited for
    until its /readyz answers 200, so `up` reports ready with all of them serving. One that exits is not
    restarted: `up` stops being ready and logs it. A load balancer in front is the operator's (README).
    """

    def __init__(self, argvs: List[List[str]], startup_timeout: float = 60.0) -> None:
        self.argvs = argvs
        self.startup_timeout = startup_timeout
        self.processes: List[Any] = []
        self.urls = [f"http://127.0.0.1:{_flag_value(a, '--port')}" for a in argvs]

    @property
    def name(self) -> str:
        return "apiserver-replicas"

    async def start(self) -> None:
        import asyncio
        import sys


        for argv in self.argvs:
            self.processes.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "megaplane.cli", "apiserver", *argv, preexec_fn=die_with_parent))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        for proc, url in zip(self.processes, self.urls):
            while not await _ready(url):
                if proc.returncode is not None or loop.time() > deadline:
                    raise RuntimeError(f"the API server replica on {url} did not become ready")
                await asyncio.sleep(0.2)
            log.info("API server replica on %s ready (pid %d)", url, proc.pid)

    async def stop(self) -> None:
        import asyncio

        for proc in self.processes:
            if proc.returncode is None:
                proc.terminate()
        for proc in self.processes:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        self.processes = []

    def ready(self) -> bool:
        return len(self.processes) == len(self.argvs) and all(p.returncode is None for p in self.processes)

    def statistics(self) -> Dict[str, float]:
        return {"replicas": float(sum(1 for p in self.processes if p.returncode is None))}


def _flag_value(argv: List[str], name: str) -> str:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return ""


async def _ready(url: str) -> bool:
    """Whether `url`/readyz answers 200 (one plain HTTP/1.1 request)."""
    import asyncio
    from urllib.parse import urlsplit

    u = urlsplit(url)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(u.hostname, u.port), 2)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(f"GET /readyz HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), 5)
        return line.split(b" ")[1:2] == [b"200"]
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


def _kubernetes_service_ips(service_cluster_ip_range: str) -> List[str]:
    """The first address of each service range: where the `kubernetes` Service is (a SAN of the serving cert)."""
    return [str(n.network_address + 1) for n in parse_service_cidrs(service_cluster_ip_range)]


class _Plane:
    """The whole control plane as one component for `run_forever` (its kubeconfig is written after start)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    @property
    def name(self) -> str:
        return "control-plane"

    async def start(self) -> None:
        await self.plane.start()

    async def stop(self) -> None:
        await self.plane.stop()

    def ready(self) -> bool:
        return self.plane.runner.ready()

    def statistics(self) -> dict:
        return self.plane.runner.statistics()


def run(config: ControlPlaneConfig) -> None:
    """Run until SIGINT / SIGTERM."""
    holder: List[ControlPlane] = []

    def build() -> List[Component]:
        holder.append(ControlPlane(config))
        return [_Plane(holder[0])]

    def started() -> None:
        # Everything loaded at start (the caches' objects, schemas, tables) lives as long as the process:
        # moved out of the collector's sight, a full collection no longer rescans it. At 40K nodes those
        # scans took 190-550 ms of a stalled loop each and freed nothing (tests/fleet capacity runs).
        gc.freeze()
        print(holder[0].describe(), flush=True)

    run_forever(build, on_started=started)
