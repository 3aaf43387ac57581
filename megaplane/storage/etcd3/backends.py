"""Which backend stores each resource: kube-apiserver's storage flags turned into `Storage`s.

`--etcd-servers` names the default cluster (or ``embedded``: this process's
own store), `--etcd-servers-overrides` moves resources to other clusters
(``group/resource#url;url``, comma-separated; the core group is empty:
``/events#http://127.0.0.1:2389``). Each distinct server list gets one
client, one `Etcd3Storage`, one compactor (--etcd-compaction-interval) and
one object-count poller (--etcd-count-metric-poll-period); resources with
overrides are routed by `SplitStorage`. `EtcdBackends` is the
`megaplane.runtime.Component` that runs those loops and closes the clients.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ...apimachinery.resources import RESOURCES, lookup
from ...etcd.client import ClientConfig, EtcdClient, EtcdError
from ..embedded import EmbeddedStorage
from ..interface import Storage
from ..value import ResourceTransformers, load_encryption_config
from .compactor import DEFAULT_COMPACTION_INTERVAL, Compactor
from .split import SplitStorage
from .storage import DEFAULT_PREFIX, Etcd3Storage

__all__ = [
    "BackendConfig",
    "EtcdBackends",
    "EMBEDDED",
    "parse_servers",
    "parse_overrides",
    "build_storage",
    "DEFAULT_COUNT_POLL_PERIOD",
    "MEDIA_TYPE",
]

log = logging.getLogger("megaplane.storage.etcd3")

#: The `--etcd-servers` value meaning this process's own embedded store.
EMBEDDED = "embedded"
#: --etcd-count-metric-poll-period (kube-apiserver: 1m; 0 disables).
DEFAULT_COUNT_POLL_PERIOD = 60.0
#: --storage-media-type: what megaplane writes (kube-apiserver's default is protobuf).
MEDIA_TYPE = "application/json"


@dataclass
class BackendConfig:
    """kube-apiserver's etcd flags."""

    #: --etcd-servers: the default cluster's client URLs; [] or ["embedded"]: the embedded store.
    servers: List[str] = field(default_factory=list)
    #: --etcd-servers-overrides, parsed: key prefix -> server URLs.
    overrides: Dict[bytes, List[str]] = field(default_factory=dict)
    #: --etcd-prefix
    prefix: str = DEFAULT_PREFIX.decode()
    #: --etcd-cafile, --etcd-certfile, --etcd-keyfile
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    #: --etcd-compaction-interval, seconds (0: never compact).
    compaction_interval: float = DEFAULT_COMPACTION_INTERVAL
    #: --etcd-count-metric-poll-period, seconds (0: the metric counts the watch caches instead).
    count_poll_period: float = DEFAULT_COUNT_POLL_PERIOD
    #: Deadline of one etcd call, seconds.
    request_timeout: float = 10.0
    #: --storage-media-type
    media_type: str = MEDIA_TYPE
    #: --etcd-client-transport: "grpcio" (grpc.aio) or "megaplane" (megaplane.etcd.grpc's HTTP/2 client).
    transport: str = "megaplane"
    #: --encryption-provider-config: an EncryptionConfiguration file ("": values stored as written).
    encryption_provider_config: str = ""

    @property
    def uses_etcd(self) -> bool:
        return any(not _is_embedded(s) for s in [self.servers, *self.overrides.values()])


def _is_embedded(servers: List[str]) -> bool:
    return not servers or servers == [EMBEDDED]


def parse_servers(value: str) -> List[str]:
    """--etcd-servers: comma-separated URLs (or ``embedded``)."""
    servers = [s.strip() for s in value.split(",") if s.strip()]
    for s in servers:
        if s != EMBEDDED and not s.startswith(("http://", "https://")):
            raise ValueError(f"--etcd-servers: {s!r} is not an http:// or https:// URL (or {EMBEDDED!r})")
    if EMBEDDED in servers and len(servers) > 1:
        raise ValueError(f"--etcd-servers: {EMBEDDED!r} cannot be mixed with URLs")
    return servers


def parse_overrides(value: str) -> Dict[bytes, List[str]]:
    """--etcd-servers-overrides ``group/resource#url;url,...`` -> the resources' key prefixes -> URLs.

    Upstream's syntax and checks (pkg/kubeapiserver/options: "--etcd-servers-overrides invalid,
    must be of format: group/resource#servers, where servers are URLs, semicolon separated").
    """
    out: Dict[bytes, List[str]] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        tokens = entry.split("#")
        if len(tokens) != 2 or "/" not in tokens[0] or not tokens[1]:
            raise ValueError(
                "--etcd-servers-overrides invalid, must be of format: group/resource#servers, "
                "where servers are URLs, semicolon separated")
        group, _, plural = tokens[0].partition("/")
        r = lookup(group, plural)
        if r is None:
            raise ValueError(f"--etcd-servers-overrides: no resource {plural!r} in group {group!r} is served")
        if r.storage_of is not None:  # events.k8s.io Events live in core Events' storage
            base = lookup("", r.storage_of)
            assert base is not None
            r = base
        out[r.prefix] = parse_servers(tokens[1].replace(";", ","))
    return out


class _CountPoller:
    """Polls etcd for the number of objects of each resource (apiserver_storage_objects upstream)."""

    def __init__(self, storage: Etcd3Storage, prefixes: List[bytes], period: float) -> None:
        self.storage = storage
        self.prefixes = prefixes
        self.period = period
        self.counts: Dict[bytes, int] = {}
        self._task: Optional["asyncio.Task[None]"] = None

    def start(self) -> None:
        if self.period > 0 and self.prefixes and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def poll(self) -> None:
        for p in self.prefixes:
            self.counts[p] = await self.storage.count(p)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception as e:  # a failed poll keeps the last counts, as upstream
                log.warning("counting objects in etcd failed: %s", e)
            await asyncio.sleep(self.period)


class EtcdBackends:
    """The etcd clusters one API server uses, as a Component: checked at start, loops run, clients closed."""

    def __init__(self, config: BackendConfig, transformers: Optional[ResourceTransformers] = None) -> None:
        self.config = config
        self.transformers = transformers
        #: One storage per distinct server list (the default cluster first).
        self.storages: Dict[Tuple[str, ...], Etcd3Storage] = {}
        self.compactors: List[Compactor] = []
        self._pollers: List[_CountPoller] = []
        self._prefixes: Dict[Tuple[str, ...], List[bytes]] = {}
        self._started = False
        #: How long `start` waits for each cluster to answer.
        self.startup_timeout = 30.0

    def __repr__(self) -> str:
        return f"<EtcdBackends {list(self.storages)}>"

    @property
    def name(self) -> str:
        return "etcd-backends"

    def storage(self, servers: List[str], prefixes: List[bytes]) -> Etcd3Storage:
        key = tuple(servers)
        s = self.storages.get(key)
        if s is None:
            cfg = self.config
            client = EtcdClient(ClientConfig(servers, ca_file=cfg.ca_file, cert_file=cfg.cert_file,
                                             key_file=cfg.key_file, request_timeout=cfg.request_timeout,
                                             transport=cfg.transport))
            s = self.storages[key] = Etcd3Storage(client, prefix=cfg.prefix.encode(), transformers=self.transformers)
        self._prefixes.setdefault(key, []).extend(prefixes)
        return s

    def object_counts(self) -> Dict[bytes, int]:
        """The last polled count per resource prefix (empty when polling is off)."""
        out: Dict[bytes, int] = {}
        for p in self._pollers:
            out.update(p.counts)
        return out

    async def _reachable(self, servers: Tuple[str, ...], s: Etcd3Storage) -> Any:
        """The cluster's status, waiting up to `startup_timeout` for it to answer (as kube-apiserver waits)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        warned = False
        while True:
            try:
                return await s.client.status(timeout=min(self.config.request_timeout, 5.0))
            except EtcdError as e:
                if loop.time() >= deadline:
                    raise RuntimeError(f"etcd {','.join(servers)} is not reachable: {e.message}") from None
                if not warned:
                    log.warning("waiting for etcd %s (%s)", ",".join(servers), e.message)
                    warned = True
                await asyncio.sleep(0.5)

    async def start(self) -> None:
        for servers, s in self.storages.items():
            status = await self._reachable(servers, s)
            log.info("etcd %s: version %s, revision %d", ",".join(servers), status.version, status.header.revision)
            compactor = Compactor(s.client, self.config.compaction_interval)
            compactor.start()
            self.compactors.append(compactor)
            poller = _CountPoller(s, self._prefixes.get(servers, []), self.config.count_poll_period)
            poller.start()
            self._pollers.append(poller)
        self._started = True

    async def stop(self) -> None:
        for c in self.compactors:
            c.stop()
        for p in self._pollers:
            p.stop()
        self.compactors, self._pollers = [], []
        for s in self.storages.values():
            await s.close()
        self._started = False

    def ready(self) -> bool:
        if not self._started:
            return False
        # Ready while every cluster's watch stream is up (or not needed yet).
        for s in self.storages.values():
            session = s.client._watch
            if session is not None and not session.connected:
                return False
        return True

    def statistics(self) -> Dict[str, float]:
        stats: Dict[str, float] = {"clusters": float(len(self.storages))}
        stats["compactions"] = float(sum(c.compactions for c in self.compactors))
        stats["watch_reconnects"] = float(sum(s.client._watch.reconnects for s in self.storages.values()
                                              if s.client._watch is not None))
        return stats


def build_storage(
    config: BackendConfig, embedded: Callable[[], Storage]
) -> Tuple[Storage, Optional[EtcdBackends]]:
    """The API server's storage for `config`, and the component running its etcd clients (None: embedded only).

    `embedded` makes (or returns) this process's embedded storage, for ``embedded`` server lists.
    """
    if config.media_type != MEDIA_TYPE:
        raise ValueError(f"--storage-media-type {config.media_type!r}: megaplane stores {MEDIA_TYPE} only")
    transformers = load_encryption_config(config.encryption_provider_config) \
        if config.encryption_provider_config else None

    def own() -> Storage:
        s = embedded()
        if transformers is not None and isinstance(s, EmbeddedStorage):
            s.use_transformers(transformers)
        return s

    if not config.uses_etcd:
        return own(), None
    backends = EtcdBackends(config, transformers)
    overridden = set(config.overrides)
    default_prefixes = [r.prefix for r in RESOURCES if r.stored and r.storage_of is None and r.prefix not in overridden]

    def backend(servers: List[str], prefixes: List[bytes]) -> Storage:
        return own() if _is_embedded(servers) else backends.storage(servers, prefixes)

    default = backend(config.servers, default_prefixes)
    if not config.overrides:
        return default, backends
    routes = {prefix: backend(servers, [prefix]) for prefix, servers in config.overrides.items()}
    return SplitStorage(default, routes), backends
