"""`Fleet`: N simulated kubelets as one `megaplane.runtime.Component` over a `megaplane.client.Client`.

Start, in order: read the Nodes the cluster already has (this fleet's
own keep their UID and pod range, others' pod ranges are taken), register
the missing Nodes (create-or-get), find or create every Lease, then start
the heartbeats (first renewals spread over one renew interval, first
status reports over one report period, so N nodes do not beat in step),
the fault watch and the pod lifecycle. `start()` returns once every node
is registered and the pod informer has synced. Progress while registering
goes to `progress` (a line every second and at the end).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import random
import time
from typing import Callable, Dict, List, Optional

import orjson

from megaplane.client import AlreadyExistsError, Client, ForbiddenError, lookup
from megaplane.runtime import REAL_CLOCK, Clock

from .config import FleetConfig
from .heartbeats import KIND_LEASE, KIND_STATUS, LEASE_NAMESPACE, LEASES, NODES, Heartbeats, resource_version
from .ipam import PodAddresses
from .nodes import FAULT_STOP, NodeFactory
from .nodewatch import NodeFaultWatch
from .pods import PodLifecycle
from .wire import Endpoint

__all__ = ["Fleet"]

log = logging.getLogger("megaplane.fleet")

NAMESPACES = lookup("namespaces")
REGISTER_SYNC_TIMEOUT = 120.0


def _give_back_memory() -> None:
    """Return what start-up freed (the Node bodies, list pages) to the OS: glibc keeps freed heap
    below its top until told (malloc_trim), so an idle fleet's RSS would hold its registration peak."""
    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


class Fleet:
    """Simulated kubelets for `config.nodes` nodes (see the module docstring)."""

    def __init__(self, client: Client, config: FleetConfig, *, clock: Clock = REAL_CLOCK,
                 progress: Optional[Callable[[str], None]] = None, rng: Callable[[], float] = random.random,
                 name: str = "fleet", endpoint: Optional[Endpoint] = None) -> None:
        self.client = client
        self.config = config
        self.clock = clock
        self.progress = progress
        self.rng = rng
        self._name = name
        self.addresses = PodAddresses(config)
        self.factory = NodeFactory(config, self.addresses)
        # With an endpoint (the server `client` talks to over HTTP), Lease renewals go out pipelined on
        # connections of their own (wire.Channel); without one (the loopback client), through `client`.
        self.heartbeats = Heartbeats(client.transport, config, self.factory, clock=clock, rng=rng,
                                     on_fault_change=self._fault_changed, endpoint=endpoint)
        self.watch = NodeFaultWatch(client.resource("nodes"), config, self.heartbeats.set_fault,
                                    lambda: self.heartbeats.faulted, clock=clock)
        self.pods = PodLifecycle(client.resource("pods"), config, self.addresses,
                                 lambda local: self.heartbeats.fault[local] == FAULT_STOP, clock=clock)
        self.registered = 0
        self.created = 0
        self._started = False
        self._metrics_servers: List[asyncio.AbstractServer] = []

    @property
    def name(self) -> str:
        return self._name

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)
        else:
            log.info("%s", line)

    def _fault_changed(self, local: int, old: int, new: int) -> None:
        if old == FAULT_STOP and new != FAULT_STOP:
            self.pods.node_resumed(local)

    # -- start ------------------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        transport = self.client.transport
        if cfg.nodes:
            try:
                await transport.create(NAMESPACES, None, orjson.dumps(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NAMESPACE}}))
            except (AlreadyExistsError, ForbiddenError):
                pass  # forbidden: a node identity may not create namespaces; the API server keeps this one
            await self._adopt_existing()
            await self._register()
            await self._find_leases()
        beats = self.heartbeats
        now = self.clock.monotonic()
        interval = cfg.lease_renew_interval
        frequency = cfg.node_status_report_frequency
        for local in range(cfg.nodes):
            beats.schedule(local, KIND_LEASE, now + interval * self.rng())
            first_report = 0.0 if not beats.posted_ready[local] else frequency * self.rng()
            beats.schedule(local, KIND_STATUS, now + first_report)
        beats.start(cfg.max_connections)
        await self.watch.start()
        await self.pods.start()
        if not await self.pods.informer.wait_for_sync(REGISTER_SYNC_TIMEOUT):
            raise RuntimeError(f"{self._name}: the pod informer did not sync within {REGISTER_SYNC_TIMEOUT:.0f}s")
        if cfg.metrics_bind_address:
            await self._serve_metrics(cfg.metrics_bind_address)
        self._started = True
        _give_back_memory()

    async def _adopt_existing(self) -> None:
        """Nodes already in the cluster: ours keep UID and range; the ranges of others are taken."""
        cfg = self.config
        taken: List[int] = []
        kept: Dict[int, int] = {}
        async for page in self.client.resource("nodes").list_pages(page_size=500):
            for node in page.get("items") or ():
                meta = node.get("metadata") or {}
                spec = node.get("spec") or {}
                cidr = spec.get("podCIDR") or ""
                slot = self.addresses.slot_of(cidr) if cidr else None
                local = cfg.node_index(meta.get("name") or "")
                if local >= 0:
                    self.heartbeats.node_uid[local] = (meta.get("uid") or "").encode()
                    ready = [c for c in (node.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"]
                    self.heartbeats.posted_ready[local] = bool(ready) and ready[0].get("status") == "True"
                    if slot is not None:
                        kept[local] = slot
                elif slot is not None:
                    taken.append(slot)
        self.addresses.assign(taken, kept)

    async def _register(self) -> None:
        cfg = self.config
        beats = self.heartbeats
        missing = [i for i in range(cfg.nodes) if not beats.node_uid[i]]
        self.registered = cfg.nodes - len(missing)
        if not missing:
            self._say(f"fleet: all {cfg.nodes} nodes already registered")
            return
        began = time.monotonic()
        last_said = began
        cursor = iter(missing)

        async def worker() -> None:
            nonlocal last_said
            transport = self.client.transport
            for local in cursor:
                body = orjson.dumps(self.factory.node(local, self.clock.time()))
                try:
                    answer = await transport.create(NODES, None, body)
                    self.created += 1
                except AlreadyExistsError:
                    answer = await transport.get(NODES, None, beats.names[local])
                uid = orjson.loads(answer)["metadata"]["uid"]
                beats.node_uid[local] = uid.encode()
                self.registered += 1
                now = time.monotonic()
                if now - last_said >= 1.0:
                    last_said = now
                    self._say(f"fleet: registered {self.registered}/{cfg.nodes} nodes "
                              f"({self.created / (now - began):.0f}/s)")

        await asyncio.gather(*(worker() for _ in range(min(cfg.max_connections, len(missing)))))
        took = time.monotonic() - began
        self._say(f"fleet: registered {self.registered}/{cfg.nodes} nodes ({self.created} created) in {took:.1f}s")

    async def _find_leases(self) -> None:
        cfg = self.config
        beats = self.heartbeats
        async for page in self.client.resource(LEASES).list_pages(LEASE_NAMESPACE, page_size=500):
            for lease in page.get("items") or ():
                meta = lease.get("metadata") or {}
                local = cfg.node_index(meta.get("name") or "")
                if local >= 0:
                    beats.lease_rv[local] = (meta.get("resourceVersion") or "").encode()
        missing = [i for i in range(cfg.nodes) if not beats.lease_rv[i]]
        cursor = iter(missing)

        async def worker() -> None:
            transport = self.client.transport
            for local in cursor:
                try:
                    answer = await transport.create(LEASES, LEASE_NAMESPACE,
                                                    beats.new_lease(local, self.clock.time()))
                    beats.lease_creates += 1
                    beats.lease_rv[local] = resource_version(answer)
                except AlreadyExistsError:
                    pass  # the first renewal reads it

        await asyncio.gather(*(worker() for _ in range(min(cfg.max_connections, len(missing)))))

    async def _serve_metrics(self, address: str) -> None:
        from prometheus_client import CollectorRegistry

        from megaplane.metrics import serve_metrics

        from .metrics import FleetCollector

        registry = CollectorRegistry()
        registry.register(FleetCollector(self.heartbeats, self.pods.transitions))
        self._metrics_servers = await serve_metrics(registry, [address])

    # -- Component ----------------------------------------------------------------------------------

    async def stop(self) -> None:
        self._started = False
        for server in self._metrics_servers:
            server.close()
        self._metrics_servers = []
        await self.pods.stop()
        await self.watch.stop()
        await self.heartbeats.stop()

    def ready(self) -> bool:
        return self._started and self.pods.ready()

    def statistics(self) -> Dict[str, float]:
        beats = self.heartbeats
        out: Dict[str, float] = {
            "nodes": float(self.config.nodes),
            "registered": float(self.registered),
            "renewals": float(beats.renewals),
            "renew_failures": float(beats.renew_failures),
            "renew_conflicts": float(beats.renew_conflicts),
            "status_reports": float(beats.status_reports),
            "renew_lateness_p99_seconds": beats.lateness_percentile(0.99),
        }
        out.update({f"nodes_{k.replace('-', '_')}": float(v) for k, v in beats.nodes_by_state().items()})
        out.update(self.pods.statistics())
        return out

