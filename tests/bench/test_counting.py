"""The bench's arithmetic without processes: Prometheus text and quantiles, and the lean trackers' counts."""

from __future__ import annotations

import math
from typing import Any, Dict

import msgspec
import pytest

from megaplane.bench import promtext
from megaplane.bench.tracking import NodeFields, NodeTracker, PodFields, PodTracker

TEXT = """# HELP apiserver_request_duration_seconds x
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{verb="GET",resource="pods",scope="resource",le="0.1"} 90
apiserver_request_duration_seconds_bucket{verb="GET",resource="pods",scope="resource",le="1.0"} 99
apiserver_request_duration_seconds_bucket{verb="GET",resource="pods",scope="resource",le="+Inf"} 100
apiserver_request_duration_seconds_count{verb="GET",resource="pods",scope="resource"} 100
apiserver_request_total{verb="PUT",resource="leases",code="200",note="a \\"quoted\\" value"} 7
"""


def test_parse_and_quantile_as_histogram_quantile() -> None:
    m = promtext.parse(TEXT)
    h = promtext.histograms(m, "apiserver_request_duration_seconds", ("verb",))[("GET",)]
    assert h == {0.1: 90.0, 1.0: 99.0, math.inf: 100.0}
    assert promtext.quantile(0.5, h) == pytest.approx(0.1 * 50 / 90)
    assert promtext.quantile(0.99, h) == pytest.approx(1.0)
    # In the +Inf bucket: the highest finite bound, as PromQL answers.
    assert promtext.quantile(0.999, h) == 1.0
    assert promtext.quantile(0.5, {}) == 0.0
    labels = dict(next(iter(m["apiserver_request_total"])))
    assert labels["note"] == 'a "quoted" value'
    assert promtext.counter_total(m, "apiserver_request_total", lambda d: d["resource"] == "leases") == 7


def test_histogram_delta_is_the_window() -> None:
    before = {("GET",): {0.1: 90.0, math.inf: 100.0}}
    after = {("GET",): {0.1: 95.0, math.inf: 110.0}, ("PUT",): {0.1: 1.0, math.inf: 1.0}}
    delta = promtext.histogram_delta(before, after)
    assert delta[("GET",)] == {0.1: 5.0, math.inf: 10.0} and delta[("PUT",)] == {0.1: 1.0, math.inf: 1.0}


def node(name: str, ready: str, taints: tuple = ()) -> NodeFields:
    return msgspec.json.decode(msgspec.json.encode({
        "metadata": {"name": name, "labels": {"x": "y"}}, "spec": {"taints": [
            {"key": k, "effect": "NoExecute"} for k in taints]},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}],
                   "capacity": {"cpu": "32"}}}), type=NodeFields)


def test_node_tracker_counts_transitions_without_keeping_nodes() -> None:
    t = NodeTracker("node-", capacity=2)
    for i in range(5):
        t.on_item("ADDED", node(f"node-{i}", "True"))
    t.on_item("ADDED", node("other", "True"))  # not the fleet's naming: kept in a dict
    assert (t.nodes, t.ready, len(t.state) >= 5) == (6, 6, True)
    t.watched = {"node-1": {}}
    t.on_item("MODIFIED", node("node-1", "Unknown", ("node.kubernetes.io/unreachable",)))
    t.on_item("MODIFIED", node("node-1", "Unknown", ("node.kubernetes.io/unreachable",)))  # no new transition
    t.on_item("MODIFIED", node("other", "False"))
    assert (t.ready, t.not_ready_transitions, t.tainted) == (4, 2, 1)
    assert set(t.watched["node-1"]) == {"NotReady", "Tainted"}
    t.on_item("MODIFIED", node("node-1", "True"))
    t.on_item("DELETED", node("node-4", "True"))
    assert (t.nodes, t.ready, t.recoveries, t.tainted, t.deleted) == (5, 4, 1, 0, 1)


def pod(name: str, node_name: str = "", phase: str = "Pending", deleting: bool = False,
        disrupted: bool = False) -> PodFields:
    obj: Dict[str, Any] = {"metadata": {"name": name, "namespace": "ns"}, "spec": {"nodeName": node_name or None},
           "status": {"phase": phase, "conditions": [{"type": "DisruptionTarget", "status": "True"}] if disrupted
                      else []}}
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return msgspec.json.decode(msgspec.json.encode(obj), type=PodFields)


def test_pod_tracker_times_clusterloader2_phases() -> None:
    clock = [100.0]
    t = PodTracker()
    t.clock = lambda: clock[0]
    t.on_item("SYNC", pod("old", "n1", "Running"))  # existed before: counted, not timed
    t.timing = True
    t.on_item("ADDED", pod("p"))
    clock[0] = 101.0
    t.on_item("MODIFIED", pod("p", "n1"))
    clock[0] = 103.5
    t.on_item("MODIFIED", pod("p", "n1", "Running"))
    assert t.transitions["create_to_schedule"].tolist() == [1.0]
    assert t.transitions["schedule_to_run"].tolist() == [2.5]
    assert t.transitions["pod_startup"].tolist() == [3.5]
    assert t.transitions["run_to_watch"].tolist() == [0.0]
    assert (t.phases[2], t.scheduled_total, t.pending_times) == (2, 2, {})
    t.on_item("MODIFIED", pod("old", "n1", "Running", deleting=True, disrupted=True))
    assert (t.unexpected_deletions, t.disruption_targets, t.terminating) == (1, 1, 1)
    t.on_item("DELETED", pod("old", "n1", "Running", deleting=True))
    assert (t.unexpected_deletions, t.terminating, t.phases[2], t.deleted) == (1, 0, 1, 1)
    # Evictions in the faulted domain are expected ones; a pod deleted before it ran is not a startup.
    t.in_fault_domain = {"n9"}.__contains__
    t.on_item("ADDED", pod("q", "n9"))
    t.on_item("MODIFIED", pod("q", "n9", deleting=True))
    assert (t.evictions_in_fault_domain, t.unexpected_deletions, t.pending_times) == (1, 1, {})
