"""One `megaplane bench` run: bring the cluster up, register the nodes, drive the scenario, measure, report.

Scenarios (clusterloader2's roles, sized by flags):

- `leases`: N nodes renewing their Leases, held for --duration.
- `density`: N nodes and P pods per node through Deployments, held.
- `load`: density's pods, then Deployment churn (create, scale, delete) at
  --rate operations per second for --duration.
- `stall`: the API server process SIGSTOPped for --stall-duration in the
  middle of the hold, then SIGCONT: no node may go NotReady and no pod be
  evicted for the control plane's own outage (seed 002's first checklist
  item).
- `zone-outage`: every node of the first zone stops heartbeating (the
  fleet's `fleet.megaplane.io/fault=stop-heartbeat`); with the node
  lifecycle controller present, the time to NotReady, to the unreachable
  taint and to eviction, and the tainting rate against --node-eviction-rate;
  the other zones must stay untouched. Then the fault is cleared and the
  zone must recover.

The exit code is 0 when every SLO passed, 1 when one failed, 2 for bad
flags, 3 when the run itself could not be carried out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar

from megaplane.client import Client, ConflictError, NotFoundError, StatusError

from . import report as report_module
from .cluster import RENEW_DEADLINE, Cluster
from .config import BenchConfig
from .recorder import Recorder, Snapshot
from .slis import (
    SLO,
    api_responsiveness,
    lease_renewal,
    node_health,
    pod_startup_latency,
    resource_usage,
    scheduling_throughput,
)
from .tracking import NodeFields, NodeTracker, PodFields, PodTracker, Reflector

__all__ = ["run", "BenchError"]

log = logging.getLogger("megaplane.bench")

FAULT_ANNOTATION = "fleet.megaplane.io/fault"
T = TypeVar("T")
APP_LABEL = "megaplane.io/bench"


class BenchError(Exception):
    """The run could not be carried out (a component died, nodes never registered...)."""


def say(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", flush=True)


def deployment(name: str, namespace: str, replicas: int, toleration_seconds: int) -> Dict[str, Any]:
    labels = {APP_LABEL: "pod", "name": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {APP_LABEL: "deployment"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                                    "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}],
                    "terminationGracePeriodSeconds": 1,
                    "tolerations": [
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": toleration_seconds},
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": toleration_seconds},
                    ],
                },
            },
        },
    }


class Run:
    def __init__(self, config: BenchConfig, workdir: str) -> None:
        self.config = config
        self.workdir = workdir
        self.cluster = Cluster(
            workdir, kubeconfig=config.kubeconfig, cpu_affinity=config.cpu_affinity,
            apiserver_args=config.apiserver_args, controller_manager_args=config.controller_manager_args,
            scheduler_args=config.scheduler_args, fleet_args=config.fleet_args,
            kube_api_qps=config.kube_api_qps, kube_api_burst=config.kube_api_burst, without=config.without)
        self.nodes = NodeTracker(config.prefix, capacity=max(config.nodes, 16))
        self.pods = PodTracker()
        self.recorder = Recorder(self.cluster, self.nodes, self.pods, config.scrape_interval)
        self.client: Optional[Client] = None
        self.reflectors: List[Reflector] = []
        self.slos: List[SLO] = []
        self.measurements: Dict[str, Any] = {}
        self.problems: List[str] = []
        self.notes: List[str] = []
        self.deployments: Dict[str, int] = {}
        self.pods_total = config.nodes * config.pods_per_node_effective
        self.profiled = False
        self._serving: Set[str] = set()
        self.profiles: Dict[str, str] = {}
        self.profilers: List["subprocess.Popen[bytes]"] = []

    # -- helpers ----------------------------------------------------------------------------------

    def supervise(self) -> None:
        for problem in self.cluster.supervise():
            say(problem)
            self.problems.append(problem)
            if "restarted" not in problem:
                raise BenchError(problem)  # the API server or a fleet: nothing left to measure

    async def wait_for(self, what: str, done: Callable[[], bool], progress: Callable[[], str],
                       timeout: float, every: float = 2.0) -> float:
        """Poll `done` (the trackers' counts) with progress lines; the seconds it took; BenchError past `timeout`."""
        start = time.monotonic()
        last = 0.0
        while not done():
            now = time.monotonic()
            if now - start > timeout:
                raise BenchError(f"{what}: not done after {timeout:g}s ({progress()})")
            if now - last >= every:
                last = now
                say(f"{what}: {progress()}")
            self.supervise()
            await asyncio.sleep(0.2)
        took = time.monotonic() - start
        say(f"{what}: done in {took:.1f}s ({progress()})")
        return took

    async def hold(self, seconds: float, what: str = "holding") -> None:
        if what == "holding":
            self.start_profiles(min(seconds, self.config.profile_seconds))
        end = time.monotonic() + seconds
        last = 0.0
        while (left := end - time.monotonic()) > 0:
            if time.monotonic() - last >= max(5.0, seconds / 10):
                last = time.monotonic()
                say(f"{what}: {left:.0f}s left; {self.nodes.ready:,}/{self.nodes.nodes:,} nodes Ready, "
                    f"{self.pods.phases[2]:,} pods Running, {self.nodes.not_ready_transitions} NotReady transitions")
            self.supervise()
            await asyncio.sleep(min(0.5, left))

    def start_profiles(self, seconds: float) -> None:
        """py-spy record of each --profile component for `seconds` (where its time goes, for the report),
        once per run: from the start of pod creation, or of the hold when there are no pods."""
        c = self.config
        if not c.profile or seconds <= 0 or self.profiled:
            return
        self.profiled = True
        py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        by_name = {p.name: p for p in self.cluster.processes if p.alive()}
        for name in c.profile:
            p = by_name.get(name)
            if p is None or not os.path.exists(py_spy):
                self.notes.append(f"--profile {name}: " + ("no such process" if p is None else "py-spy not found"))
                continue
            out = os.path.join(self.workdir, f"profile-{name}.svg")
            self.profiles[name] = out
            self.profilers.append(subprocess.Popen(
                [py_spy, "record", "--pid", str(p.pid), "--duration", str(max(1, int(seconds))), "--rate", "50",
                 "--nonblocking", "--output", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            say(f"profiling {name} for {seconds:.0f}s -> {out}")

    def fleets_serving(self) -> bool:
        for p in self.cluster.fleets:
            if p.name in self._serving:
                continue
            try:
                with urllib.request.urlopen(p.metrics_url, timeout=2):
                    self._serving.add(p.name)
            except OSError:
                return False
        return True

    def node_progress(self) -> str:
        return f"{self.nodes.ready:,}/{self.config.nodes:,} nodes Ready"

    def pod_progress(self) -> str:
        p = self.pods.phases
        return (f"{p[2]:,}/{self.pods_total:,} pods Running, {self.pods.scheduled_total:,} scheduled, "
                f"{p[1]:,} Pending")

    async def gather(self, items: Sequence[T], call: Callable[[T], Awaitable[Any]], concurrency: int = 32) -> int:
        """`call(item)` for every item, `concurrency` at a time; the number that failed."""
        failed = 0
        it = iter(items)

        async def worker() -> None:
            nonlocal failed
            for item in it:
                try:
                    await call(item)
                except Exception as exc:
                    failed += 1
                    log.debug("bench request failed: %s", exc)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return failed

    # -- the cluster ------------------------------------------------------------------------------

    async def bring_up(self) -> None:
        c = self.config
        say(("attaching to " + c.kubeconfig) if c.kubeconfig else "starting the control plane (apiserver, "
            "controller-manager, scheduler as separate processes)")
        await asyncio.to_thread(self.cluster.start_control_plane, node_lifecycle_args=c.node_lifecycle_args())
        if not self.cluster.has_controller_manager:
            self.notes.append("megaplane controller-manager is absent: Deployments create no pods")
        self.notes.append("node-lifecycle-controller " + ("present" if self.cluster.has_node_lifecycle else "absent"))
        if self.cluster.has_node_lifecycle and not c.node_monitor_grace_period and c.grace_period_effective \
                and not c.kubeconfig:
            self.notes.append(f"--node-monitor-grace-period {c.grace_period_effective}: upstream's 50 s scaled with "
                              f"the {c.node_lease_duration_seconds} s Lease (50/40)")
        self.client = Client.from_kubeconfig(self.cluster.kubeconfig, qps=0, burst=0, max_connections=16)
        nodes = Reflector(self.client.resource("nodes"), NodeFields, self.nodes.on_item, page_size=1000)
        pods = Reflector(self.client.resource("pods"), PodFields, self.pods.on_item, namespace=c.namespace,
                         page_size=1000)
        self.reflectors = [nodes, pods]
        for r in self.reflectors:
            r.start()
        try:
            await self.client.resource("namespaces").create({"metadata": {"name": c.namespace}})
        except StatusError as exc:
            if exc.code != 409:
                raise
        await asyncio.wait_for(asyncio.gather(*(r.synced.wait() for r in self.reflectors)), 120)
        self.recorder.start()
        self.recorder.mark("control_plane_up")
        say(f"registering {c.nodes:,} nodes in {c.processes} fleet process(es), "
            f"Leases of {c.node_lease_duration_seconds}s (renewed every {c.node_lease_duration_seconds / 4:g}s)")
        self.cluster.start_fleets(c.nodes, c.processes, zones=c.zones,
                                  lease_duration_seconds=c.node_lease_duration_seconds, prefix=c.prefix)
        took = await self.wait_for("registering", lambda: self.nodes.ready >= c.nodes, self.node_progress,
                                   c.timeout)
        # Nodes show Ready before their fleet has created every Lease; a fleet serves /metrics once it has.
        await self.wait_for("fleets running", self.fleets_serving, lambda: "waiting for the fleets' Leases",
                            c.timeout)
        self.recorder.mark("nodes_ready")
        self.measurements["WaitForNodes"] = {"nodes": c.nodes, "seconds": round(took, 3),
                                             "nodes_per_s": c.nodes / took if took else None}
        # The first renewals after registration are spread over one renew interval: skip them.
        await self.hold(min(c.node_lease_duration_seconds / 4, 15.0), "warming up")

    async def create_pods(self, what: str = "creating pods") -> float:
        c = self.config
        if self.pods_total > 0 and not self.cluster.has_controller_manager:
            self.notes.append(f"{self.pods_total:,} pods not created: no controller-manager to turn Deployments "
                              "into pods")
            self.pods_total = 0
        if self.pods_total <= 0:
            return 0.0
        per = c.deployment_replicas or min(100, self.pods_total)
        count = math.ceil(self.pods_total / per)
        assert self.client is not None
        deployments = self.client.resource("apps/v1", "deployments")
        self.pods.timing = True
        self.recorder.mark("pods_create")
        remaining = self.pods_total
        for i in range(count):
            replicas = min(per, remaining)
            remaining -= replicas
            self.deployments[f"bench-{i}"] = replicas
        pace = f" at {c.pod_creation_rate:g} pods/s" if c.pod_creation_rate > 0 else " at once (saturation)"
        say(f"{what}: {self.pods_total:,} pods in {count} Deployments of up to {per}{pace}")
        self.start_profiles(c.profile_seconds)  # pod creation is where the controllers and scheduler work
        started = time.monotonic()
        due = 0.0  # seconds after `started` the next Deployment is due: its pods paced at the creation rate

        async def create(item: Tuple[str, int]) -> None:
            nonlocal due
            if c.pod_creation_rate > 0:
                at, due = due, due + item[1] / c.pod_creation_rate
                wait = started + at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            await deployments.create(deployment(item[0], c.namespace, item[1], c.pod_toleration_seconds))

        async def create_all() -> None:
            failed = await self.gather(sorted(self.deployments.items(), key=lambda item: _natural(item[0])), create,
                                       concurrency=16)
            if failed:
                raise BenchError(f"{failed} Deployments could not be created")
            self.measurements["PodCreation"] = {"pods": self.pods_total, "deployments": count,
                                                "rate": c.pod_creation_rate,
                                                "deployments_created_s": round(time.monotonic() - started, 3)}

        def running() -> bool:
            if not creating.done():
                return False
            creating.result()  # raises what the creation raised
            return self.pods.phases[2] >= self.pods_total

        # Created in the background, so that the progress lines go on while a paced creation takes its time.
        creating = asyncio.ensure_future(create_all())
        creation_s = self.pods_total / c.pod_creation_rate if c.pod_creation_rate > 0 else 0.0
        try:
            took = await self.wait_for(what, running, self.pod_progress, c.timeout + creation_s)
        finally:
            creating.cancel()
        self.recorder.mark("pods_running")
        return took

    async def tear_down(self) -> None:
        c = self.config
        if self.client is not None and c.kubeconfig:
            # Attached: leave the cluster as it was (the namespace and the bench's nodes go).
            self.pods.expect_deletions = True
            try:
                await self.client.resource("namespaces").delete(c.namespace)
            except StatusError:
                pass
        for r in self.reflectors:
            await r.stop()
        await self.recorder.stop()
        for profiler in self.profilers:
            try:
                await asyncio.to_thread(profiler.wait, 60)  # py-spy writes its file when its duration ends
            except subprocess.TimeoutExpired:
                profiler.kill()
        await asyncio.to_thread(self.cluster.stop)
        if self.client is not None and c.kubeconfig and c.nodes:
            nodes = self.client.resource("nodes")
            await self.gather(range(c.nodes), lambda i: nodes.delete(f"{c.prefix}{i}"))
        if self.client is not None:
            await self.client.close()

    # -- measurement ------------------------------------------------------------------------------

    def measure(self, before: Snapshot, after: Snapshot, *, api_window: Optional[Tuple[Snapshot, Snapshot]] = None,
                lease_enforced: bool = True, allowed_not_ready: int = 0, allowed_evictions: int = 0,
                health_enforced: bool = True, restarts_enforced: bool = True) -> None:
        c = self.config
        t = c.thresholds
        a0, a1 = api_window or (before, after)
        api, slos = api_responsiveness(a0, a1, t)
        self.measurements["APIResponsivenessPrometheus"] = api
        self.slos += slos
        psl, slos = pod_startup_latency(self.pods, t, expect_pods=self.pods_total > 0 or c.scenario == "load")
        self.measurements["PodStartupLatency"] = psl
        self.slos += slos
        start = self.recorder.marks.get("pods_create", before.at)
        st, slos = scheduling_throughput(self.recorder, t, start=start, end=after.at,
                                         expect_pods=self.pods_total > 0)
        self.measurements["SchedulingThroughput"] = st
        self.slos += slos
        lr, slos = lease_renewal(before, after, t, enforce=lease_enforced)
        self.measurements["LeaseRenewal"] = lr
        self.slos += slos
        nh, slos = node_health(self.nodes, self.pods, allowed_not_ready=allowed_not_ready,
                               allowed_evictions=allowed_evictions, enforce=health_enforced, t0=self.recorder.t0)
        self.measurements["NodeHealth"] = nh
        self.slos += slos
        self.measurements["ResourceUsageSummary"] = resource_usage(self.recorder, c.nodes, start=before.at,
                                                                   end=after.at)
        restarts = {p.name: p.restarts for p in self.cluster.processes if p.restarts or p.exits}
        self.measurements["ComponentRestarts"] = {"restarts": restarts, "problems": self.problems}
        if restarts_enforced:
            self.slos.append(SLO("ComponentRestarts", "component exits", len(self.problems), 0, "==",
                                 not self.problems))

    # -- scenarios --------------------------------------------------------------------------------

    async def leases(self) -> None:
        before = await self.recorder.snapshot()
        self.recorder.mark("hold")
        await self.hold(self.config.duration)
        self.measure(before, await self.recorder.snapshot())

    async def density(self) -> None:
        before = await self.recorder.snapshot()
        await self.create_pods()
        self.recorder.mark("hold")
        await self.hold(self.config.duration)
        self.measure(before, await self.recorder.snapshot())

    async def load(self) -> None:
        c = self.config
        before = await self.recorder.snapshot()
        await self.create_pods("initial pods")
        assert self.client is not None
        deployments = self.client.resource("apps/v1", "deployments")
        self.pods.expect_deletions = True
        rng = random.Random(13)
        ops = {"create": 0, "scale": 0, "delete": 0, "failed": 0}
        per = c.deployment_replicas or min(100, max(self.pods_total, 10))
        serial = len(self.deployments)
        self.recorder.mark("churn")
        say(f"churn: {c.rate:g} Deployment operations/s for {c.duration:g}s")
        end = time.monotonic() + c.duration
        next_op = time.monotonic()
        tasks: List["asyncio.Task[None]"] = []

        async def op(kind: str, name: str, replicas: int) -> None:
            try:
                if kind == "create":
                    await deployments.create(deployment(name, c.namespace, replicas, c.pod_toleration_seconds))
                elif kind == "scale":
                    await deployments.patch(name, {"spec": {"replicas": replicas}}, c.namespace, patch_type="merge")
                else:
                    await deployments.delete(name, c.namespace, propagation_policy="Background")
                ops[kind] += 1
            except (StatusError, ConflictError, NotFoundError, OSError) as exc:
                ops["failed"] += 1
                log.debug("churn %s %s: %s", kind, name, exc)

        last_line = 0.0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_op:
                next_op += 1.0 / c.rate if c.rate > 0 else c.duration
                choice = rng.random()
                names = sorted(self.deployments)
                if choice < 0.4 or len(names) < 2:
                    name = f"bench-{serial}"
                    serial += 1
                    self.deployments[name] = per
                    tasks.append(asyncio.create_task(op("create", name, per)))
                elif choice < 0.7:
                    name = rng.choice(names)
                    replicas = max(1, int(per * rng.uniform(0.5, 1.5)))
                    self.deployments[name] = replicas
                    tasks.append(asyncio.create_task(op("scale", name, replicas)))
                else:
                    name = rng.choice(names)
                    del self.deployments[name]
                    tasks.append(asyncio.create_task(op("delete", name, 0)))
            if now - last_line >= 5:
                last_line = now
                say(f"churn: {ops}, {self.pod_progress()}")
            self.supervise()
            await asyncio.sleep(min(0.05, max(0.0, next_op - time.monotonic())))
        await asyncio.gather(*tasks)
        self.recorder.mark("churn_end")
        want = sum(self.deployments.values())
        self.pods_total = want
        # Settled: every Deployment's pods Running, no pod of a deleted one left.
        await self.wait_for("settling", lambda: self.pods.phases[2] >= want and
                            sum(self.pods.phases[1:]) == want, self.pod_progress, c.timeout)
        self.measurements["Churn"] = {"operations": ops, "rate": c.rate, "deployments": len(self.deployments),
                                      "pods_desired": want}
        self.measure(before, await self.recorder.snapshot(), allowed_evictions=0)

    async def stall(self) -> None:
        c = self.config
        await self.create_pods()
        before = await self.recorder.snapshot()
        self.recorder.mark("hold")
        stall_at = c.stall_at or c.duration / 3
        await self.hold(stall_at)
        grace = self._grace_period()
        if self.cluster.has_node_lifecycle and grace is not None and c.stall_duration <= grace:
            self.notes.append(f"the stall ({c.stall_duration:g}s) is not longer than --node-monitor-grace-period "
                              f"({grace:g}s): a controller holding the outage against the nodes would pass too")
        say(f"stall: SIGSTOP the API server for {c.stall_duration:g}s")
        self.recorder.mark("stall_start")
        self.cluster.stall_apiserver()
        try:
            await asyncio.sleep(c.stall_duration)
        finally:
            self.cluster.resume_apiserver()
        self.recorder.mark("stall_end")
        say("stall: SIGCONT; watching for NotReady nodes and evictions")
        # Requests stuck in the stall finish right after it: the API SLI window starts once they have.
        settle = max(c.node_lease_duration_seconds / 4, 2.0)
        await self.hold(settle, "recovering")
        after_stall = await self.recorder.snapshot()
        self.recorder.mark("recovered")
        rest = max(c.duration - stall_at - c.stall_duration - settle, 0.0)
        # Long enough after the stall for a controller that held it against the nodes to act.
        rest = max(rest, (grace or 0.0) + 10.0 if self.cluster.has_node_lifecycle else 0.0)
        await self.hold(rest)
        end = await self.recorder.snapshot()
        # A stall past the leader election renew deadline makes the elected components exit by design
        # (client-go's 'leaderelection lost'; the bench restarts them as a kubelet would): counted, not failed.
        past_deadline = c.stall_duration >= RENEW_DEADLINE
        if past_deadline:
            self.notes.append(f"the stall ({c.stall_duration:g}s) outlasts the leader election renew deadline "
                              f"({RENEW_DEADLINE:g}s): controller-manager and scheduler restarts are expected")
        self.measure(before, end, api_window=(after_stall, end), lease_enforced=False,
                     restarts_enforced=not past_deadline)
        self.measurements["Stall"] = {"stall_seconds": c.stall_duration, "at": self.recorder.marks["stall_start"],
                                      "node_monitor_grace_period": grace,
                                      "node_lifecycle_controller": self.cluster.has_node_lifecycle}

    def _grace_period(self) -> Optional[float]:
        from megaplane.units import parse_duration

        if not self.cluster.has_node_lifecycle:
            return None
        grace = self.config.grace_period_effective
        return float(parse_duration(grace)) if grace else 50.0

    async def zone_outage(self) -> None:
        c = self.config
        await self.create_pods()
        before = await self.recorder.snapshot()
        await self.hold(c.duration / 3)
        zone_nodes = [f"{c.prefix}{i}" for i in range(c.nodes) if i % c.zones == 0]
        faulted = set(zone_nodes)
        zone_pods = await self._pods_on(faulted)
        self.nodes.watched = {n: {} for n in zone_nodes}
        self.pods.in_fault_domain = faulted.__contains__
        assert self.client is not None
        nodes = self.client.resource("nodes")
        transitions_before = self.nodes.not_ready_transitions
        say(f"zone-outage: {len(zone_nodes):,} nodes of zone a stop heartbeating ({FAULT_ANNOTATION}=stop-heartbeat)")
        self.recorder.mark("fault")
        fault_at = time.time()
        failed = await self.gather(zone_nodes, lambda n: nodes.patch(n, {"metadata": {"annotations": {
            FAULT_ANNOTATION: "stop-heartbeat"}}}, patch_type="merge"))
        if failed:
            raise BenchError(f"{failed} nodes could not be annotated")
        grace = self._grace_period()
        result: Dict[str, Any] = {"zone": "a", "zone_nodes": len(zone_nodes),
                                  "node_lifecycle_controller": self.cluster.has_node_lifecycle}
        if not self.cluster.has_node_lifecycle:
            self.notes.append("zone-outage: the node lifecycle controller is absent, so nothing marks the zone's "
                              "nodes NotReady or taints them; only the other zones' health is checked")
            await self.hold(c.duration / 3, "outage")
        else:
            rate = c.node_eviction_rate if c.node_eviction_rate is not None else 0.1
            period = 5.0
            watched = self.nodes.watched
            await self.wait_for("outage: zone a NotReady", lambda: all("NotReady" in w for w in watched.values()),
                                lambda: f"{sum('NotReady' in w for w in watched.values())}/{len(zone_nodes)} NotReady",
                                (grace or 50.0) + 3 * period + 30.0)
            # Tainting runs at the zone's rate (0.1 nodes/s by default: a 30,000-node zone takes 3.5 days);
            # past two minutes' worth the rate is measured on that many nodes, not waited out for all.
            target = min(len(zone_nodes), math.ceil(rate * 120) + 1)
            await self.wait_for("outage: zone a tainted", lambda: sum("Tainted" in w for w in watched.values())
                                >= target, lambda: f"{sum('Tainted' in w for w in watched.values())}/{target} tainted",
                                max(target / max(rate, 1e-6) + 2 * period + 30.0, c.timeout))
            if target < len(zone_nodes):
                self.notes.append(f"zone-outage: the taint rate was measured on {target:,} of {len(zone_nodes):,} "
                                  f"nodes (all would take {len(zone_nodes) / rate:,.0f}s at {rate:g} nodes/s)")
            elif zone_pods:
                result["pods_in_zone"] = zone_pods
                await self.wait_for("outage: zone a's pods evicted",
                                    lambda: self.pods.evictions_in_fault_domain >= zone_pods,
                                    lambda: f"{self.pods.evictions_in_fault_domain}/{zone_pods} evicted",
                                    c.pod_toleration_seconds + 60.0)
                result["time_to_evict_all_s"] = time.time() - fault_at
            not_ready = sorted(w["NotReady"] - fault_at for w in watched.values() if "NotReady" in w)
            tainted = sorted(w["Tainted"] - fault_at for w in watched.values() if "Tainted" in w)
            taint_rate = (len(tainted) - 1) / (tainted[-1] - tainted[0]) if len(tainted) > 1 and \
                tainted[-1] > tainted[0] else None
            result.update({
                "time_to_not_ready_s": _summary(not_ready), "time_to_taint_s": _summary(tainted),
                "tainted": len(tainted), "taint_rate_nodes_per_s": taint_rate, "node_eviction_rate": rate,
                "node_monitor_grace_period": grace, "pods_evicted_in_zone": self.pods.evictions_in_fault_domain,
            })
            self.slos.append(SLO("ZoneOutage", "zone nodes NotReady", len(not_ready), len(zone_nodes),
                                 "==", len(not_ready) == len(zone_nodes)))
            if taint_rate is not None:
                # A token bucket of the configured rate with a burst of one node, as upstream's limiter.
                allowed = rate * 1.25 + 1.0 / max(tainted[-1] - tainted[0], 1e-6)
                self.slos.append(SLO("ZoneOutage", "taint rate nodes/s", taint_rate, allowed, "<=",
                                     taint_rate <= allowed, f"--node-eviction-rate {rate:g}"))
        say("zone-outage: clearing the fault")
        self.recorder.mark("fault_cleared")
        await self.gather(zone_nodes, lambda n: nodes.patch(n, {"metadata": {"annotations": {
            FAULT_ANNOTATION: None}}}, patch_type="merge"))
        await self.wait_for("recovering", lambda: self.nodes.ready >= c.nodes and self.nodes.tainted == 0,
                            lambda: f"{self.node_progress()}, {self.nodes.tainted} tainted", c.timeout)
        self.recorder.mark("recovered")
        # The evicted pods' replacements: started (and timed) before the run ends.
        await self.wait_for("replacement pods", lambda: not self.pods.pending_times,
                            lambda: f"{len(self.pods.pending_times)} pods not yet Running", c.timeout)
        outside = self.nodes.not_ready_transitions - transitions_before - \
            sum(1 for w in self.nodes.watched.values() if "NotReady" in w)
        result["not_ready_outside_zone"] = outside
        self.measurements["ZoneOutage"] = result
        self.slos.append(SLO("ZoneOutage", "NotReady transitions outside zone a", outside, 0, "==", outside == 0))
        self.measure(before, await self.recorder.snapshot(), lease_enforced=False, health_enforced=False)
        self.slos.append(SLO("ZoneOutage", "evictions outside zone a", max(self.pods.disruption_targets,
                             self.pods.unexpected_deletions), 0, "==",
                             max(self.pods.disruption_targets, self.pods.unexpected_deletions) == 0))

    async def _pods_on(self, nodes: "set[str]") -> int:
        """How many of the bench's pods run on `nodes` (one paged list, only spec.nodeName decoded)."""
        assert self.client is not None
        counted = 0

        def count(kind: str, obj: object) -> None:
            nonlocal counted
            if isinstance(obj, PodFields) and obj.spec.nodeName in nodes and obj.metadata.deletionTimestamp is None:
                counted += 1
        lister = Reflector(self.client.resource("pods"), PodFields, count, namespace=self.config.namespace,
                           page_size=1000)
        await lister.list_once()
        return counted

    # -- the whole run ----------------------------------------------------------------------------

    async def main(self) -> int:
        c = self.config
        started = time.time()
        error = ""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        if main is not None:
            # SIGTERM (and SIGINT) end the run the same way: components stopped, a report of what was measured.
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, main.cancel)
        try:
            await self.bring_up()
            body = {"leases": self.leases, "density": self.density, "load": self.load, "stall": self.stall,
                    "zone-outage": self.zone_outage}[c.scenario]
            await body()
        except BenchError as exc:
            error = str(exc)
            say(f"error: {error}")
        except asyncio.CancelledError:
            error = "interrupted"
            say("interrupted")
            if main is not None:
                main.uncancel()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            say("stopping")
            await self.tear_down()
        passed = not error and all(s.passed for s in self.slos)
        results = {
            "scenario": c.scenario, "config": c.as_dict(), "started": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "seconds": round(time.time() - started, 3),
            "passed": passed, "error": error, "notes": self.notes,
            "measurements": self.measurements, "slos": [s.as_dict() for s in self.slos],
            "marks": self.recorder.marks, "logs": self.cluster.logs(), "profiles": self.profiles,
            "series": {"per_second": {"t": self.recorder.times, **self.recorder.columns},
                       "per_scrape": {"t": self.recorder.scrape_times, **self.recorder.scrape_columns}},
        }
        results = _clean(results)
        print(report_module.summary_table(results), flush=True)
        if c.report:
            os.makedirs(c.report, exist_ok=True)
            with open(os.path.join(c.report, "results.json"), "w") as f:
                json.dump(results, f, indent=1, default=_json_default, allow_nan=False)
            report_module.write_html(results, os.path.join(c.report, "report.html"))
            say(f"report: {os.path.join(c.report, 'report.html')}")
        if error:
            return 3
        return 0 if passed else 1


def _natural(name: str) -> Tuple[str, int]:
    """bench-9 before bench-10: Deployments are created in the order they are numbered."""
    stem, _, number = name.rpartition("-")
    return (stem, int(number)) if number.isdigit() else (name, -1)


def _summary(values: List[float]) -> Dict[str, Optional[float]]:
    if not values:
        return {"count": 0, "perc50": None, "perc99": None, "max": None}
    n = len(values)
    return {"count": n, "perc50": values[n // 2], "perc99": values[min(n - 1, math.ceil(0.99 * n) - 1)],
            "max": values[-1], "min": values[0]}


def _clean(x: Any) -> Any:
    """NaN (a sample that had nothing to measure) as null, so results.json is strict JSON."""
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item"):
        return _clean(x.item())
    return x


def _json_default(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def run(config: BenchConfig) -> int:
    """`megaplane bench`: the exit code (0 all SLOs met, 1 one failed, 3 the run failed)."""
    import uvloop

    workdir = config.report or tempfile.mkdtemp(prefix="megaplane-bench-")
    os.makedirs(workdir, exist_ok=True)
    try:
        return uvloop.run(Run(config, workdir).main())
    finally:
        if not config.report:
            shutil.rmtree(workdir, ignore_errors=True)
