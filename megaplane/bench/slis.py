"""The measurements, under clusterloader2's names, and the SLOs they are checked against.

- APIResponsivenessPrometheus: p50/p90/p99 per (verb, resource,
  subresource, scope) of apiserver_request_duration_seconds between two
  scrapes (WATCH and streaming subresources left out, as clusterloader2's
  filter); SLO p99 <= 1 s for scope=resource, <= 30 s for namespace and
  cluster scope (the official API call latency SLO).
- PodStartupLatency: clusterloader2's transitions from watch receive times;
  SLO pod_startup p99 <= 5 s.
- SchedulingThroughput: pods scheduled per 5 s window, as pods/s, perc50/
  perc90/perc99/max; an SLO only when a threshold is given.
- LeaseRenewal (megaplane's, from the fleets' /metrics): renewal lateness
  p50/p99/max and the failure rate; SLOs p99 < 1 s (issue 13's target) and
  failures <= 0.1 % (seed 003's alert).
- NodeHealth: NotReady transitions and evictions (DisruptionTarget
  conditions, pods deleted that the bench did not delete); SLO 0 unless
  the scenario injects the fault.
- ResourceUsageSummary: CPU share and RSS per component, and per node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import promtext
from .recorder import API_GROUPING, API_LATENCY, Recorder, Snapshot, sli_call
from .tracking import NodeTracker, PodTracker

__all__ = ["SLO", "Thresholds", "api_responsiveness", "lease_renewal", "node_health", "pod_startup_latency",
           "resource_usage", "scheduling_throughput"]

LATENESS = "megaplane_fleet_lease_renew_lateness_histogram_seconds"
RENEWALS = "megaplane_fleet_lease_renew_duration_seconds_count"
FAILURES = "megaplane_fleet_lease_renew_failures_total"


@dataclass
class Thresholds:
    api_resource: float = 1.0
    api_list: float = 30.0
    pod_startup: float = 5.0
    scheduling_throughput: float = 0.0
    lease_lateness: float = 1.0
    lease_failure_rate: float = 0.001


@dataclass
class SLO:
    measurement: str
    name: str
    value: float
    threshold: float
    #: "<=" or ">=" or "=="
    op: str
    passed: bool
    note: str = ""

    def as_dict(self) -> Dict[str, Any]:
        return {"measurement": self.measurement, "name": self.name, "value": _finite(self.value),
                "threshold": self.threshold, "op": self.op, "pass": self.passed, "note": self.note}


def _finite(x: float) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 6)


def _check(value: float, op: str, threshold: float) -> bool:
    if op == "<=":
        return value <= threshold
    if op == ">=":
        return value >= threshold
    return value == threshold


def api_responsiveness(before: Snapshot, after: Snapshot, t: Thresholds
                       ) -> tuple[Dict[str, Any], List[SLO]]:
    if before.api is None or after.api is None:
        return {"error": "the API server's /metrics could not be scraped at the window's ends"}, [
            SLO("APIResponsivenessPrometheus", "scraped", 0, 1, "==", False, "no /metrics")]
    delta = promtext.histogram_delta(promtext.histograms(before.api, API_LATENCY, API_GROUPING, sli_call),
                                     promtext.histograms(after.api, API_LATENCY, API_GROUPING, sli_call))
    calls = []
    slos: List[SLO] = []
    worst: Dict[str, float] = {"resource": 0.0, "list": 0.0}
    for (verb, resource, subresource, scope), h in sorted(delta.items()):
        n = promtext.count(h)
        if n <= 0:
            continue
        p50, p90, p99 = (promtext.quantile(q, h) for q in (0.5, 0.9, 0.99))
        threshold = t.api_resource if scope == "resource" else t.api_list
        ok = p99 <= threshold
        calls.append({"verb": verb, "resource": resource, "subresource": subresource, "scope": scope,
                      "count": int(n), "perc50": p50, "perc90": p90, "perc99": p99, "threshold": threshold,
                      "pass": ok})
        kind = "resource" if scope == "resource" else "list"
        worst[kind] = max(worst[kind], p99)
        if not ok:
            slos.append(SLO("APIResponsivenessPrometheus", f"{verb} {resource}"
                            f"{'/' + subresource if subresource else ''} {scope} p99", p99, threshold, "<=", False))
    slos.insert(0, SLO("APIResponsivenessPrometheus", "worst resource-scoped p99", worst["resource"],
                       t.api_resource, "<=", worst["resource"] <= t.api_resource))
    slos.insert(1, SLO("APIResponsivenessPrometheus", "worst namespace/cluster-scoped p99", worst["list"],
                       t.api_list, "<=", worst["list"] <= t.api_list))
    return {"window_s": round(after.at - before.at, 3), "calls": calls}, slos


def _percentiles(values: Sequence[float]) -> Dict[str, Any]:
    if len(values) == 0:
        return {"count": 0, "perc50": None, "perc90": None, "perc99": None, "max": None}
    a = np.asarray(values, dtype=float)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"count": int(a.size), "perc50": float(p50), "perc90": float(p90), "perc99": float(p99),
            "max": float(a.max())}


def pod_startup_latency(pods: PodTracker, t: Thresholds, *, expect_pods: bool) -> tuple[Dict[str, Any], List[SLO]]:
    out = {name: _percentiles(values) for name, values in pods.transitions.items()}
    out["not_started"] = {"count": len(pods.pending_times)}
    startup = out["pod_startup"]
    if not expect_pods and startup["count"] == 0:
        return out, []
    p99 = startup["perc99"] if startup["count"] else math.inf
    slos = [SLO("PodStartupLatency", "pod_startup p99", p99, t.pod_startup, "<=", p99 <= t.pod_startup,
                f"{startup['count']} pods started")]
    if pods.pending_times:
        slos.append(SLO("PodStartupLatency", "pods created but not Running at the end", len(pods.pending_times), 0,
                        "==", False))
    return out, slos


def scheduling_throughput(rec: Recorder, t: Thresholds, *, start: float, end: float,
                          expect_pods: bool) -> tuple[Dict[str, Any], List[SLO]]:
    """Pods scheduled per 5 s window (from the per-second samples), as pods/s; windows with none left
    out once scheduling is over, as clusterloader2 stops at the last scheduled pod."""
    times = np.asarray(rec.times, dtype=float)
    col = np.asarray(rec.columns.get("pods_scheduled_total", []), dtype=float)
    rates: List[float] = []
    scheduled = 0
    if len(times) >= 2 and end > start:
        # The count at each 5 s boundary, interpolated between the per-second samples.
        edges = np.arange(start, end + 1e-9, 5.0)
        if len(edges) >= 2:
            at = np.interp(edges, times, col)
            rates = [float(x) for x in np.diff(at) / 5.0]
        scheduled = int(round(float(np.interp(end, times, col) - np.interp(start, times, col))))
    while rates and rates[-1] == 0:
        rates.pop()
    while rates and rates[0] == 0:
        rates.pop(0)
    out = _percentiles(rates)
    out["pods_scheduled"] = scheduled
    slos: List[SLO] = []
    if t.scheduling_throughput > 0 and expect_pods:
        value = out["perc50"] or 0.0
        slos.append(SLO("SchedulingThroughput", "perc50 pods/s", value, t.scheduling_throughput, ">=",
                        value >= t.scheduling_throughput))
    return out, slos


def lease_renewal(before: Snapshot, after: Snapshot, t: Thresholds, *, enforce: bool = True
                  ) -> tuple[Dict[str, Any], List[SLO]]:
    pairs = [(b, a) for b, a in zip(before.fleets, after.fleets) if b is not None and a is not None]
    if not pairs:
        return {"error": "no fleet /metrics"}, ([SLO("LeaseRenewal", "fleet /metrics scraped", 0, 1, "==", False)]
                                                if enforce and before.fleets else [])
    merged_before = promtext.merged(promtext.histograms(b, LATENESS, ()).get((), {}) for b, _ in pairs)
    merged_after = promtext.merged(promtext.histograms(a, LATENESS, ()).get((), {}) for _, a in pairs)
    h = promtext.histogram_delta({(): merged_before}, {(): merged_after})[()]
    renewals = sum(promtext.counter_delta(b, a, RENEWALS) for b, a in pairs)
    failures = sum(promtext.counter_delta(b, a, FAILURES) for b, a in pairs)
    window = max(after.at - before.at, 1e-9)
    rate = failures / max(renewals + failures, 1.0)
    out = {"window_s": round(window, 3), "renewals": int(renewals), "renewals_per_s": renewals / window,
           "failures": int(failures), "failure_rate": rate,
           "lateness_perc50": promtext.quantile(0.5, h), "lateness_perc99": promtext.quantile(0.99, h),
           "lateness_max": promtext.quantile(1.0, h), "fleet_processes": len(pairs)}
    slos = []
    if enforce:
        p99 = out["lateness_perc99"]
        slos.append(SLO("LeaseRenewal", "lateness p99", p99, t.lease_lateness, "<=", p99 <= t.lease_lateness))
        slos.append(SLO("LeaseRenewal", "failure rate", rate, t.lease_failure_rate, "<=",
                        rate <= t.lease_failure_rate, f"{int(failures)} of {int(renewals + failures)}"))
    return out, slos


def node_health(nodes: NodeTracker, pods: PodTracker, *, allowed_not_ready: int = 0, allowed_evictions: int = 0,
                enforce: bool = True, t0: float = 0.0) -> tuple[Dict[str, Any], List[SLO]]:
    evictions = max(pods.disruption_targets, pods.unexpected_deletions)
    out = {"nodes": nodes.nodes, "ready": nodes.ready, "not_ready_transitions": nodes.not_ready_transitions,
           "recoveries": nodes.recoveries, "tainted_now": nodes.tainted, "taint_events": nodes.taint_events,
           "pods_with_disruption_target": pods.disruption_targets,
           "pods_deleted_not_by_bench": pods.unexpected_deletions, "evictions": evictions,
           # t: seconds since the run started, as the time series.
           "first_transitions": [{"t": round(t - t0, 3), "node": n, "what": w} for t, n, w in nodes.log[:50]]}
    if not enforce:
        return out, []
    return out, [
        SLO("NodeHealth", "NotReady transitions", nodes.not_ready_transitions, allowed_not_ready, "<=",
            nodes.not_ready_transitions <= allowed_not_ready),
        SLO("NodeHealth", "evictions", evictions, allowed_evictions, "<=", evictions <= allowed_evictions),
    ]


def resource_usage(rec: Recorder, nodes: int, *, start: float, end: float) -> Dict[str, Any]:
    times = np.asarray(rec.scrape_times)
    sel = (times >= start) & (times <= end)
    out: Dict[str, Any] = {}
    total_rss = 0.0
    total_cpu = 0.0
    for name, col in rec.scrape_columns.items():
        if not (name.startswith("cpu_") or name.startswith("rss_")):
            continue
        values = np.asarray(col + [math.nan] * (len(times) - len(col)), dtype=float)[sel]
        values = values[~np.isnan(values)]
        kind, component = name.split("_", 1)
        entry = out.setdefault(component, {})
        if values.size == 0:
            continue
        if kind == "cpu":
            entry["cpu_cores_avg"] = float(values.mean())
            entry["cpu_cores_max"] = float(values.max())
            if component != "bench":
                total_cpu += float(values.mean())
        else:
            entry["rss_bytes_max"] = int(values.max())
            entry["rss_bytes_last"] = int(values[-1])
            if component != "bench":
                total_rss += float(values[-1])
    summary: Dict[str, Any] = {"components": out, "rss_bytes_total": int(total_rss), "cpu_cores_total": total_cpu}
    if nodes:
        summary["rss_bytes_per_node"] = total_rss / nodes
        summary["cpu_millicores_per_node"] = total_cpu * 1000 / nodes
    return summary
