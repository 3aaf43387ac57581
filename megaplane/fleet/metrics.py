"""The fleet's /metrics: counters kept as plain ints by the fleet, turned into metric families at scrape time.

Names follow kubelet's where kubelet has one (`kubelet_node_name`-style
gauges do not fit N nodes, so the fleet's own are `megaplane_fleet_*`).
"""

from __future__ import annotations

from typing import Dict, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .heartbeats import LATENESS_BUCKETS, RENEW_BUCKETS, Heartbeats

__all__ = ["FleetCollector"]


def _histogram(name: str, documentation: str, bounds: Sequence[float], counts: Sequence[int],
               total: float) -> HistogramMetricFamily:
    """A histogram family from per-bucket counts (the last one past every bound)."""
    histogram = HistogramMetricFamily(name, documentation)
    cumulative = 0
    buckets = []
    for bound, count in zip(bounds, counts):
        cumulative += count
        buckets.append((repr(bound), cumulative))
    cumulative += counts[len(bounds)]
    buckets.append(("+Inf", cumulative))
    histogram.add_metric([], buckets, total)
    return histogram


class FleetCollector(Collector):
    """Reads the heartbeats' counters and the pod transitions (a phase -> count dict) at each scrape."""

    def __init__(self, heartbeats: Heartbeats, pod_transitions: Dict[str, int]) -> None:
        self.heartbeats = heartbeats
        self.pod_transitions = pod_transitions

    def collect(self) -> Iterator[Metric]:
        beats = self.heartbeats
        yield _histogram("megaplane_fleet_lease_renew_duration_seconds",
                         "Time from a Lease renewal's start to its successful answer (conflict re-reads included).",
                         RENEW_BUCKETS, beats.renew_buckets, beats.renew_seconds_sum)
        yield _histogram("megaplane_fleet_lease_renew_lateness_histogram_seconds",
                         "End of each successful renewal minus its due time (early counts as 0).",
                         LATENESS_BUCKETS, beats.lateness_buckets, beats.lateness_seconds_sum)
        late = GaugeMetricFamily("megaplane_fleet_lease_renew_lateness_seconds",
                                 "Lateness of recent renewals (end of the renewal minus its due time).",
                                 labels=["quantile"])
        for q in (0.5, 0.99):
            late.add_metric([str(q)], beats.lateness_percentile(q))
        yield late
        yield CounterMetricFamily("megaplane_fleet_lease_renew_failures_total",
                                  "Lease renewal attempts that failed (not conflicts).", beats.renew_failures)
        yield CounterMetricFamily("megaplane_fleet_lease_renew_conflicts_total",
                                  "Lease renewals answered 409 Conflict (the Lease is read again).",
                                  beats.renew_conflicts)
        yield CounterMetricFamily("megaplane_fleet_node_status_reports_total",
                                  "Node status heartbeats written.", beats.status_reports)
        yield CounterMetricFamily("megaplane_fleet_node_status_failures_total",
                                  "Node status heartbeats that failed.", beats.status_failures)
        nodes = GaugeMetricFamily("megaplane_fleet_nodes", "Nodes of this fleet by simulated state.",
                                  labels=["state"])
        for state, count in beats.nodes_by_state().items():
            nodes.add_metric([state], count)
        yield nodes
        transitions = CounterMetricFamily("megaplane_fleet_pod_transitions_total",
                                          "Pod phase changes written (and pods deleted) by the fleet.",
                                          labels=["to"])
        for phase, count in self.pod_transitions.items():
            transitions.add_metric([phase], count)
        yield transitions
