"""`megaplane doctor`: a running cluster checked against the large-cluster checklist, each finding with its reason.

The checklist is the seeds' (shared/seeds 002 and 003) and the
sig-scalability thresholds: component health (/livez and /readyz, each --component-url's
/readyz, a live leader on every kube-system election Lease), object counts
against upstream's tested limits (5,000 nodes, 150,000 pods, 110 pods per
node — seed 002 says 100 —, 300,000 containers, 10,000 namespaces and
services, 1,000,000 events), the management plane's size for its node
count (seed 002's table), leader election settings found in the Leases
(seed 003: 45 s / 40 s / 10 s at very large scale; alert on > 5 leader
changes a day), node heartbeats (Leases, stale ones), whether events are
kept apart from the durable WAL and the age of the latest checkpoint (when
the API server runs on this machine and its command line says), flow
control, and the alert thresholds of deploy/prometheus/alerts.yaml
evaluated on the API server's counters since it started.

Exit status 1 when a check fails (a warning does not fail).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import msgspec

from megaplane.client import Client, KubeConfig, StatusError, load_kubeconfig

from . import promtext
from .recorder import API_GROUPING, API_LATENCY, API_REQUESTS, lease_put, sli_call
from .tracking import NodeFields, NodeTracker, Reflector

__all__ = ["Finding", "diagnose", "run", "MANAGEMENT_SIZING"]

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"

#: Seed 002's management node sizing: (most nodes, cores, GiB of memory).
MANAGEMENT_SIZING: Tuple[Tuple[float, int, int], ...] = (
    (5, 1, 4), (10, 2, 8), (100, 4, 16), (250, 8, 32), (500, 16, 64), (float("inf"), 32, 120))

# Upstream's tested thresholds (sig-scalability), seed 002's where stricter.
THRESHOLDS = {"nodes": 5000, "pods": 150_000, "namespaces": 10_000, "services": 10_000, "events": 1_000_000}
PODS_PER_NODE_UPSTREAM, PODS_PER_NODE_SEED = 110, 100
CONTAINERS = 300_000
PER_TYPE = 150_000
LEADER_CHANGES_PER_DAY = 5
LARGE_CLUSTER_NODES = 5000


@dataclass
class Finding:
    check: str
    status: str
    message: str
    reason: str = ""


class _LeaseSpec(msgspec.Struct):
    holderIdentity: Optional[str] = None
    leaseDurationSeconds: Optional[int] = None
    renewTime: Optional[str] = None
    acquireTime: Optional[str] = None
    leaseTransitions: Optional[int] = None


class _LeaseMeta(msgspec.Struct):
    name: str = ""
    creationTimestamp: Optional[str] = None


class _Lease(msgspec.Struct):
    metadata: _LeaseMeta = msgspec.field(default_factory=_LeaseMeta)
    spec: _LeaseSpec = msgspec.field(default_factory=_LeaseSpec)


class _Container(msgspec.Struct):
    name: str = ""


class _PodSpec(msgspec.Struct):
    containers: Optional[List[_Container]] = None


class _Pod(msgspec.Struct):
    spec: _PodSpec = msgspec.field(default_factory=_PodSpec)


class _ListMeta(msgspec.Struct):
    remainingItemCount: Optional[int] = None
    continue_: Optional[str] = msgspec.field(default=None, name="continue")


class _LeaseList(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: Optional[List[_Lease]] = None


class _PodList(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: Optional[List[_Pod]] = None


class _AnyList(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: Optional[List[msgspec.Raw]] = None


def _parse_time(text: Optional[str]) -> Optional[datetime.datetime]:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class _HTTP:
    """GETs of non-resource paths (/readyz, /metrics) with the kubeconfig's server, TLS and token."""

    def __init__(self, config: KubeConfig) -> None:
        self.config = config
        self.context: Optional[ssl.SSLContext] = config.ssl_context()

    def get(self, url: str, timeout: float = 10.0) -> Tuple[int, str]:
        if url.startswith("/"):
            url = self.config.server.rstrip("/") + url
        request = urllib.request.Request(url)
        if self.config.token and url.startswith(self.config.server):
            request.add_header("Authorization", f"Bearer {self.config.token}")
        try:
            context = self.context if url.startswith("https://") else None
            with urllib.request.urlopen(request, timeout=timeout, context=context) as r:
                return int(r.status), r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode("utf-8", "replace")
        except OSError as exc:
            return 0, str(exc)


class Doctor:
    def __init__(self, client: Client, http: _HTTP, component_urls: Sequence[str]) -> None:
        self.client = client
        self.http = http
        self.component_urls = component_urls
        self.findings: List[Finding] = []
        self.metrics: Optional[promtext.Metrics] = None
        self.counts: Dict[str, int] = {}

    def add(self, check: str, status: str, message: str, reason: str = "") -> None:
        self.findings.append(Finding(check, status, message, reason))

    # -- health -----------------------------------------------------------------------------------

    async def health(self) -> None:
        for path in ("/livez", "/readyz?verbose"):
            code, body = await asyncio.to_thread(self.http.get, path)
            failing = [line for line in body.splitlines() if line.startswith("[-]")]
            if code == 200:
                self.add("apiserver health", OK, f"{path.split('?')[0]} ok")
            else:
                self.add("apiserver health", FAIL, f"{path.split('?')[0]} answered {code or 'nothing'}: "
                         + ("; ".join(failing) or body.strip()[:200]),
                         "every kubelet heartbeat and controller goes through the API server")
        if not self.component_urls:
            self.add("component health", INFO, "no --component-url given: the controller-manager, scheduler and "
                     "fleet endpoints were not checked (their leaders are, through their Leases)")
        for item in self.component_urls:
            name, _, url = item.partition("=")
            if not url:
                name, url = url or item, item
            path = "/readyz"
            code, body = await asyncio.to_thread(self.http.get, url.rstrip("/") + path)
            if code == 404:  # a component without /readyz (the fleet): its liveness
                path = "/healthz"
                code, body = await asyncio.to_thread(self.http.get, url.rstrip("/") + path)
            if code == 200:
                self.add("component health", OK, f"{name}: {path} ok")
            else:
                self.add("component health", FAIL, f"{name}: {path} answered {code or 'nothing'}: {body.strip()[:200]}",
                         "a component that is down or congested must not hurt running workloads (seed 002); it "
                         "needs an alert and a restart")
        try:
            self.metrics = await asyncio.to_thread(promtext.parse, (await asyncio.to_thread(self.http.get, "/metrics"))[1])
        except Exception:
            self.metrics = None

    # -- counts -----------------------------------------------------------------------------------

    async def count(self, plural: str, group_version: str = "v1") -> int:
        """Objects of a resource: apiserver_storage_objects when exported, else a limit=1 list's remainingItemCount."""
        if self.metrics is not None:
            key = plural if group_version == "v1" else f"{plural}.{group_version.split('/')[0]}"
            for labels, value in self.metrics.get("apiserver_storage_objects", {}).items():
                if dict(labels).get("resource") == key:
                    return int(value)
        resource = self.client.resource(group_version, plural) if group_version != "v1" else \
            self.client.resource(plural)
        body = await resource.list_raw(None, limit=1)
        page = msgspec.json.decode(body, type=_AnyList)
        return len(page.items or ()) + (page.metadata.remainingItemCount or 0)

    async def object_counts(self) -> None:
        for plural in ("nodes", "pods", "namespaces", "services", "events"):
            try:
                self.counts[plural] = await self.count(plural)
            except StatusError as exc:
                self.add("object counts", WARN, f"{plural}: could not be counted ({exc})")
        for plural, limit in THRESHOLDS.items():
            n = self.counts.get(plural)
            if n is None:
                continue
            if n > limit:
                self.add("object counts", WARN, f"{n:,} {plural}: beyond upstream's tested {limit:,}",
                         "sig-scalability's thresholds are what upstream tests; past them LIST latency, watch "
                         "cache memory and relists after a restart grow with the count: run `megaplane bench` at "
                         "this size")
            else:
                self.add("object counts", OK, f"{n:,} {plural} (upstream threshold {limit:,})")
        nodes, pods = self.counts.get("nodes", 0), self.counts.get("pods", 0)
        if nodes:
            per = pods / nodes
            status = WARN if per > PODS_PER_NODE_SEED else OK
            self.add("pods per node", status, f"{per:.1f} pods per node on average (seed 002: <= {PODS_PER_NODE_SEED}, "
                     f"upstream: <= {PODS_PER_NODE_UPSTREAM})",
                     "kubelet's --max-pods is 110; beyond it pod churn per node outgrows what kubelet and the "
                     "node's IP range hold" if status == WARN else "")
        if pods:
            containers, sampled = await self.containers_estimate()
            how = "counted" if sampled >= pods else f"estimated from {sampled} pods"
            status = WARN if containers > CONTAINERS else OK
            self.add("object counts", status, f"{containers:,.0f} containers ({how}; seed 002: <= {CONTAINERS:,})")
        if self.metrics is not None:
            for labels, value in self.metrics.get("apiserver_storage_objects", {}).items():
                resource = dict(labels).get("resource", "")
                if resource.split(".")[0] not in THRESHOLDS and value > PER_TYPE and not resource.startswith("leases"):
                    self.add("object counts", WARN, f"{value:,.0f} {resource}: beyond upstream's {PER_TYPE:,} per type")

    async def containers_estimate(self) -> Tuple[float, int]:
        pods = self.client.resource("pods")
        page = msgspec.json.decode(await pods.list_raw(None, limit=500), type=_PodList)
        items = page.items or []
        if not items:
            return 0.0, 0
        per = sum(len(p.spec.containers or ()) for p in items) / len(items)
        return per * self.counts.get("pods", len(items)), len(items)

    # -- sizing -----------------------------------------------------------------------------------

    def sizing(self) -> None:
        nodes = self.counts.get("nodes", 0)
        cores, gib = next((c, g) for most, c, g in MANAGEMENT_SIZING if nodes <= most)
        host = urllib.parse.urlparse(self.http.config.server).hostname or ""
        need = f"seed 002: {cores} core{'s' if cores > 1 else ''} / {gib} GiB for {nodes:,} nodes"
        if host in ("127.0.0.1", "localhost", "::1"):
            have_cores = os.cpu_count() or 1
            have_gib = _mem_total_gib()
            short = have_cores < cores or have_gib < gib * 0.95
            self.add("management sizing", WARN if short else OK,
                     f"this machine has {have_cores} cores / {have_gib:.0f} GiB; {need}",
                     "the table is sized for kube-apiserver + etcd; megaplane's own figures per node are in "
                     "`megaplane bench` reports (ResourceUsageSummary)" if short else "")
        else:
            self.add("management sizing", INFO, f"{need} (the API server at {host} is not this machine: not checked)")

    # -- leader election and node heartbeats ------------------------------------------------------

    async def leases(self) -> None:
        leases = self.client.resource("coordination.k8s.io/v1", "leases")
        try:
            page = msgspec.json.decode(await leases.list_raw("kube-system", limit=500), type=_LeaseList)
        except StatusError as exc:
            self.add("leader election", WARN, f"kube-system Leases could not be read: {exc}")
            return
        nodes = self.counts.get("nodes", 0)
        found = False
        for lease in page.items or ():
            spec = lease.spec
            if spec.leaseDurationSeconds is None:
                continue
            found = True
            name = lease.metadata.name
            duration = spec.leaseDurationSeconds
            renewed = _parse_time(spec.renewTime)
            age = (_now() - renewed).total_seconds() if renewed else None
            if not spec.holderIdentity or age is None or age > duration:
                self.add("leader election", FAIL, f"{name}: no live leader (holder {spec.holderIdentity or 'none'}, "
                         f"renewed {'never' if age is None else f'{age:.0f}s ago'}, lease {duration}s)",
                         "its controllers (or the scheduler) are not running anywhere")
            else:
                self.add("leader election", OK, f"{name}: led by {spec.holderIdentity} (renewed {age:.0f}s ago)")
            recommended = 45
            if nodes > LARGE_CLUSTER_NODES and duration < recommended:
                self.add("leader election settings", WARN,
                         f"{name}: leaseDurationSeconds {duration} at {nodes:,} nodes (seed 003: 45 s, renew deadline "
                         "40 s, retry 10 s)", "a loaded API server delays renewals; a short lease turns that into "
                         "leader changes, each a relist of everything the component watches")
            else:
                self.add("leader election settings", OK, f"{name}: leaseDurationSeconds {duration}"
                         + (" (client-go default 15; seed 003 recommends 45 past 5,000 nodes)" if duration < 45 else ""))
            created = _parse_time(lease.metadata.creationTimestamp)
            transitions = spec.leaseTransitions or 0
            if created is not None and transitions:
                days = max((_now() - created).total_seconds() / 86400, 1 / 24)
                per_day = transitions / days
                status = WARN if per_day > LEADER_CHANGES_PER_DAY else OK
                self.add("leader changes", status, f"{name}: {transitions} transitions in {days:.1f} days "
                         f"({per_day:.1f}/day; alert above {LEADER_CHANGES_PER_DAY}/day, seed 003)")
        if not found:
            self.add("leader election", WARN, "no leader election Lease in kube-system",
                     "kube-controller-manager and kube-scheduler elect on kube-system Leases; without them two "
                     "copies would both act")
        try:
            page = msgspec.json.decode(await leases.list_raw("kube-node-lease", limit=500), type=_LeaseList)
        except StatusError:
            return
        items = page.items or []
        total = len(items) + (page.metadata.remainingItemCount or 0)
        if not items:
            if self.counts.get("nodes"):
                self.add("node heartbeats", WARN, "nodes but no Leases in kube-node-lease",
                         "without Leases every heartbeat is a Node status write (seed 003: lightweight heartbeats)")
            return
        stale = 0
        durations: Dict[int, int] = {}
        for lease in items:
            d = lease.spec.leaseDurationSeconds or 40
            durations[d] = durations.get(d, 0) + 1
            renewed = _parse_time(lease.spec.renewTime)
            if renewed is None or (_now() - renewed).total_seconds() > d:
                stale += 1
        shape = ", ".join(f"{n} x {d}s" for d, n in sorted(durations.items()))
        self.add("node heartbeats", WARN if stale else OK,
                 f"{total:,} node Leases (sampled {len(items)}: {shape}); {stale} of the sample not renewed within "
                 "their duration", "a stale node Lease is a node about to go NotReady" if stale else
                 "node heartbeats are Leases, status updates minutes apart (seed 003's lightweight heartbeats)")

    async def node_health(self) -> None:
        tracker = NodeTracker()
        lister = Reflector(self.client.resource("nodes"), NodeFields, tracker.on_item, page_size=1000)
        await lister.list_once()
        not_ready = tracker.nodes - tracker.ready
        self.add("node health", WARN if not_ready else OK,
                 f"{tracker.ready:,}/{tracker.nodes:,} nodes Ready, {tracker.tainted:,} with a NoExecute "
                 "not-ready/unreachable taint", "NotReady nodes' pods are evicted after their tolerationSeconds "
                 "(300 s by default)" if not_ready else "")

    # -- storage and local process flags ----------------------------------------------------------

    def storage(self) -> None:
        flags = _local_apiserver_flags(urllib.parse.urlparse(self.http.config.server).port)
        if flags is None:
            self.add("events stored apart", INFO, "not discoverable through the API (the API server's flags are not "
                     "visible from here)", "seed 002: keep events out of the main store (kube-apiserver "
                     "--etcd-servers-overrides=/events#...; megaplane up: /registry/events/ at --wal-mode none)")
            self.add("backups", INFO, "not discoverable through the API", "seed 002: schedule `megaplane snapshot "
                     "save` (or etcdctl snapshot save) and rehearse the restore")
            return
        command, args = flags
        modes = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--wal-mode"] + \
            [a.split("=", 1)[1] for a in args if a.startswith("--wal-mode=")]
        overrides = [a for a in args if a.startswith("--etcd-servers-overrides")]
        if overrides:
            self.add("events stored apart", OK, f"{' '.join(overrides)}", "events in a store of their own")
        elif command == "up" or any(m.startswith("/registry/events/=none") for m in modes):
            self.add("events stored apart", OK, "/registry/events/ is kept out of the durable WAL (--wal-mode none"
                     + (", megaplane up's default" if command == "up" and not modes else "") + ")",
                     "events are written constantly and cheap to lose (seed 002/003)")
        else:
            self.add("events stored apart", WARN, "events share the durable WAL with everything else",
                     "add --wal-mode /registry/events/=none (or an events store) so event writes do not compete "
                     "with Node and Pod writes")
        data_dir = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--data-dir"), "")
        newest = _newest_mtime(data_dir) if data_dir else None
        if not data_dir:
            self.add("backups", WARN, "the store is memory only (no --data-dir): a restart loses everything",
                     "seed 002's drill needs something to restore from")
        elif newest is None:
            self.add("backups", INFO, f"no checkpoint found in {data_dir}")
        else:
            minutes = (_now().timestamp() - newest) / 60
            self.add("backups", INFO, f"latest store file in {data_dir} written {minutes:.0f} min ago",
                     "a checkpoint on the same disk is not a backup: schedule `megaplane snapshot save` elsewhere")

    # -- flow control and alert thresholds --------------------------------------------------------

    def alerts(self) -> None:
        m = self.metrics
        if m is None:
            self.add("alert thresholds", WARN, "the API server's /metrics could not be read")
            return
        limits = m.get("apiserver_flowcontrol_request_concurrency_limit") or m.get(
            "apiserver_flowcontrol_nominal_limit_seats")
        if limits:
            self.add("flow control", OK, f"API Priority and Fairness on: {sum(limits.values()):.0f} seats over "
                     f"{len(limits)} priority levels")
        else:
            self.add("flow control", WARN, "no API Priority and Fairness metrics",
                     "seed 000: --max-requests-inflight / --max-mutating-requests-inflight bound an overload; APF "
                     "keeps node heartbeats (node-high) served under it")
        since_start = promtext.histograms(m, API_LATENCY, API_GROUPING, sli_call)
        slow = []
        for (verb, resource, subresource, scope), h in since_start.items():
            if promtext.count(h) < 20:
                continue
            p99 = promtext.quantile(0.99, h)
            limit = 1.0 if scope == "resource" else 30.0
            if p99 > limit:
                slow.append(f"{verb} {resource}{'/' + subresource if subresource else ''} ({scope}) p99 {p99:.2f}s")
        self.add("alert thresholds", WARN if slow else OK,
                 ("API latency over the SLO since the server started: " + "; ".join(slow[:5])) if slow else
                 "API p99 within 1 s (single objects) and 30 s (LIST) since the server started",
                 "MegaplaneAPIResourceLatencyHigh / MegaplaneAPIListLatencyHigh in deploy/prometheus/alerts.yaml")
        puts = promtext.counter_total(m, API_REQUESTS, lease_put)
        failed = promtext.counter_total(m, API_REQUESTS, lambda labels: lease_put(labels) and
                                        not str(labels.get("code", "")).startswith("2"))
        if puts:
            rate = failed / puts
            self.add("alert thresholds", WARN if rate > 0.001 else OK,
                     f"Lease renewals failed: {failed:,.0f} of {puts:,.0f} ({rate:.3%}; alert above 0.1 %, seed 003)",
                     "MegaplaneLeaseRenewFailures")

    async def diagnose(self) -> List[Finding]:
        await self.health()
        await self.object_counts()
        self.sizing()
        await self.leases()
        await self.node_health()
        self.storage()
        self.alerts()
        return self.findings


def _mem_total_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return 0.0


def _local_apiserver_flags(port: Optional[int]) -> Optional[Tuple[str, List[str]]]:
    """The command and flags of a megaplane API server on this machine serving `port`, if one is found."""
    if port is None:
        return None
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if not any("megaplane" in a for a in argv[:6]):  # python -m megaplane.cli, taskset ..., the script
            continue
        command = next((a for a in argv if a in ("up", "apiserver")), "")
        if not command:
            continue
        args = argv[argv.index(command) + 1:]
        ports = {args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--port", "--secure-port")}
        ports |= {a.split("=", 1)[1] for a in args if a.startswith(("--port=", "--secure-port="))}
        if str(port) in ports or (port == 6443 and not ports):
            return command, args
    return None


def _newest_mtime(directory: str) -> Optional[float]:
    newest: Optional[float] = None
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                t = os.stat(os.path.join(root, name)).st_mtime
            except OSError:
                continue
            newest = t if newest is None else max(newest, t)
    return newest


async def diagnose(kubeconfig: str, context: str = "", component_urls: Sequence[str] = ()) -> List[Finding]:
    config = load_kubeconfig(kubeconfig, context or None)
    async with Client.from_kubeconfig(kubeconfig, context or None, qps=0, burst=0) as client:
        return await Doctor(client, _HTTP(config), component_urls).diagnose()


_MARK = {OK: "[ ok ]", WARN: "[warn]", FAIL: "[FAIL]", INFO: "[info]"}


def run(kubeconfig: str, context: str = "", *, component_urls: Sequence[str] = (), as_json: bool = False) -> int:
    """Print the findings; 1 when a check failed, 0 otherwise (2 when the kubeconfig cannot be used)."""
    try:
        findings = asyncio.run(diagnose(kubeconfig, context, component_urls))
    except Exception as exc:
        print(f"Error: {exc}")
        return 2
    if as_json:
        print(json.dumps([asdict(f) for f in findings], indent=1))
    else:
        for f in findings:
            print(f"{_MARK.get(f.status, f.status)} {f.check}: {f.message}")
            if f.reason:
                print(f"       why: {f.reason}")
        counts = {s: sum(1 for f in findings if f.status == s) for s in (OK, WARN, FAIL, INFO)}
        print(f"{counts[OK]} ok, {counts[WARN]} warnings, {counts[FAIL]} failed, {counts[INFO]} for information")
    return 1 if any(f.status == FAIL for f in findings) else 0


