"""Time series of a run: what the trackers count each second, what /metrics and /proc say each scrape.

Every second: nodes and Ready nodes, pods by phase, pods scheduled, NotReady
transitions. Every scrape interval: the API server's /metrics (latency
percentiles of the interval from apiserver_request_duration_seconds
deltas, Lease writes/s from apiserver_request_total), each fleet's
/metrics, and CPU share and RSS of every component process (and of the
bench itself). Scrapes run in a thread, one at a time, so a stopped API
server delays them without stopping the clock. Only the last scrape's
aggregates are kept between intervals; full scrapes are kept only at the
marks a scenario asks for (`snapshot`), which bound the SLI windows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from . import procfs, promtext
from .cluster import Cluster
from .tracking import PHASES, NodeTracker, PodTracker

__all__ = ["Recorder", "Snapshot", "API_LATENCY", "API_REQUESTS"]

log = logging.getLogger("megaplane.bench")

API_LATENCY = "apiserver_request_duration_seconds"
API_REQUESTS = "apiserver_request_total"
API_GROUPING = ("verb", "resource", "subresource", "scope")


def sli_call(labels: Any) -> bool:
    """clusterloader2's filter: not WATCH, not the streaming subresources."""
    return bool(labels.get("verb") != "WATCH" and labels.get("subresource", "") not in
                ("log", "exec", "portforward", "attach", "proxy"))


def lease_put(labels: Any) -> bool:
    return bool(labels.get("resource") == "leases" and labels.get("verb") == "PUT")


@dataclass
class Snapshot:
    """Full scrapes at one moment: the API server's and each fleet's /metrics (None if unreachable)."""

    at: float
    api: Optional[promtext.Metrics]
    fleets: List[Optional[promtext.Metrics]]
    scheduled_total: int = 0


@dataclass
class Recorder:
    cluster: Cluster
    nodes: NodeTracker
    pods: PodTracker
    scrape_interval: float = 5.0
    t0: float = field(default_factory=time.time)
    #: Per-second columns (same length as `times`).
    times: List[float] = field(default_factory=list)
    columns: Dict[str, List[float]] = field(default_factory=dict)
    #: Per-scrape columns (same length as `scrape_times`).
    scrape_times: List[float] = field(default_factory=list)
    scrape_columns: Dict[str, List[float]] = field(default_factory=dict)
    #: Marks: name -> time (seconds since t0).
    marks: Dict[str, float] = field(default_factory=dict)
    scrape_failures: int = 0
    _task: Optional["asyncio.Task[None]"] = None
    _scraping: bool = False
    _last_latency: Optional[Dict[Tuple[str, ...], promtext.Histogram]] = None
    _last_lease_puts: Optional[float] = None
    _last_scrape_at: float = 0.0
    _last_cpu: Dict[str, float] = field(default_factory=dict)

    def now(self) -> float:
        return time.time() - self.t0

    def mark(self, name: str) -> None:
        self.marks[name] = round(self.now(), 3)
        self.sample()  # the counts at the mark itself, so a window's ends are exact

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def _col(self, table: Dict[str, List[float]], name: str, value: float, length: int) -> None:
        col = table.setdefault(name, [])
        if len(col) < length - 1:
            col.extend([float("nan")] * (length - 1 - len(col)))
        col.append(value)

    def sample(self) -> None:
        if self._task is None:
            return  # not started: no series yet
        self.times.append(round(self.now(), 3))
        n = len(self.times)
        self._col(self.columns, "nodes", self.nodes.nodes, n)
        self._col(self.columns, "nodes_ready", self.nodes.ready, n)
        self._col(self.columns, "nodes_tainted", self.nodes.tainted, n)
        self._col(self.columns, "not_ready_transitions", self.nodes.not_ready_transitions, n)
        for i, phase in enumerate(PHASES):
            self._col(self.columns, f"pods_{phase}", self.pods.phases[i + 1], n)
        self._col(self.columns, "pods_Terminating", self.pods.terminating, n)
        self._col(self.columns, "pods_scheduled_total", self.pods.scheduled_total, n)

    async def _run(self) -> None:
        next_scrape = 0.0
        # On a deadline that advances by one second (the loop's timers may fire a little early: sleeping
        # to the next whole second from "now" sampled several times a second).
        next_sample = time.monotonic()
        while True:
            self.sample()
            if time.monotonic() >= next_scrape and not self._scraping:
                next_scrape = time.monotonic() + self.scrape_interval
                asyncio.get_running_loop().create_task(self._scrape_interval())
            next_sample += 1.0
            now = time.monotonic()
            if next_sample <= now:
                next_sample = now + 1.0  # fell behind (a busy loop): no catch-up burst
            await asyncio.sleep(next_sample - now)

    # -- scrapes ----------------------------------------------------------------------------------

    def _scrape(self, url: str) -> Optional[promtext.Metrics]:
        if not url:
            return None
        try:
            return promtext.scrape(url, timeout=10.0, context=self.cluster.api_ssl if url ==
                                   self.cluster.api_metrics_url else None)
        except Exception as exc:
            self.scrape_failures += 1
            log.debug("scrape %s: %s", url, exc)
            return None

    async def snapshot(self) -> Snapshot:
        at = self.now()
        self.sample()
        api = await asyncio.to_thread(self._scrape, self.cluster.api_metrics_url)
        fleets = [await asyncio.to_thread(self._scrape, p.metrics_url) for p in self.cluster.fleets]
        return Snapshot(at, api, fleets, self.pods.scheduled_total)

    async def _scrape_interval(self) -> None:
        self._scraping = True
        try:
            api = await asyncio.to_thread(self._scrape, self.cluster.api_metrics_url)
            now_mono = time.monotonic()
            self.scrape_times.append(round(self.now(), 3))
            n = len(self.scrape_times)
            elapsed = now_mono - self._last_scrape_at if self._last_scrape_at else 0.0
            self._last_scrape_at = now_mono
            p50 = p90 = p99 = float("nan")
            lease_rate = float("nan")
            if api is not None:
                latency = promtext.histograms(api, API_LATENCY, (), sli_call)
                puts = promtext.counter_total(api, API_REQUESTS, lease_put)
                if self._last_latency is not None and elapsed > 0:
                    delta = promtext.histogram_delta(self._last_latency, latency).get((), {})
                    if promtext.count(delta) > 0:
                        p50, p90, p99 = (promtext.quantile(q, delta) for q in (0.5, 0.9, 0.99))
                    if self._last_lease_puts is not None:
                        lease_rate = (puts - self._last_lease_puts) / elapsed
                self._last_latency, self._last_lease_puts = latency, puts
            for name, value in (("api_p50_s", p50), ("api_p90_s", p90), ("api_p99_s", p99),
                                ("lease_writes_per_s", lease_rate)):
                self._col(self.scrape_columns, name, value, n)
            usage: Dict[str, Tuple[float, float]] = {}
            for p in self.cluster.processes:
                if not p.alive():
                    continue
                group = "fleet" if p.name.startswith("fleet-") else p.name
                cpu, rss = p.cpu_seconds(), float(p.rss_bytes())
                last = self._last_cpu.get(p.name)
                self._last_cpu[p.name] = cpu
                share = (cpu - last) / elapsed if last is not None and elapsed > 0 else float("nan")
                old_share, old_rss = usage.get(group, (0.0, 0.0))
                usage[group] = (old_share + share, old_rss + rss)
            try:
                me = os.getpid()
                cpu, own_rss = procfs.cpu_seconds(me), float(procfs.rss_bytes(me))
                last = self._last_cpu.get("bench")
                self._last_cpu["bench"] = cpu
                usage["bench"] = ((cpu - last) / elapsed if last is not None and elapsed > 0 else float("nan"),
                                  own_rss)
            except OSError:
                pass
            for group, (share, total_rss) in usage.items():
                self._col(self.scrape_columns, f"cpu_{group}", share, n)
                self._col(self.scrape_columns, f"rss_{group}", total_rss, n)
        finally:
            self._scraping = False
