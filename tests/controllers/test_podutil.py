"""Pod facts, deletion ranking (upstream's ActivePodsWithRanks order), slow start and expectations."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

import pytest

from megaplane.controllers.expectations import EXPECTATIONS_TIMEOUT, ControllerExpectations
from megaplane.controllers.podutil import (
    POD_DELETION_COST,
    is_pod_available,
    pod_from_template,
    rank_for_deletion,
    slow_start_batch,
)
from megaplane.testing import FakeClock

Obj = Dict[str, Any]
NOW = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def stamp(seconds_ago: float) -> str:
    import datetime

    at = datetime.datetime.fromtimestamp(NOW - seconds_ago, datetime.timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: Optional[float] = 100.0,
        restarts: int = 0, created: float = 1000.0, cost: Optional[int] = None) -> Obj:
    conditions = []
    if ready is not None:
        conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": stamp(ready)})
    else:
        conditions.append({"type": "Ready", "status": "False", "lastTransitionTime": stamp(5)})
    meta: Obj = {"name": name, "uid": f"uid-{name}", "creationTimestamp": stamp(created)}
    if cost is not None:
        meta["annotations"] = {POD_DELETION_COST: str(cost)}
    return {"metadata": meta, "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"name": "c", "restartCount": restarts}]}}


def order(*pods: Obj, related: Optional[List[Obj]] = None) -> List[str]:
    return [p["metadata"]["name"] for p in rank_for_deletion(list(pods), related or list(pods), NOW)]


def test_unscheduled_before_scheduled() -> None:
    assert order(pod("scheduled"), pod("unscheduled", node="", phase="Pending", ready=None)) == [
        "unscheduled", "scheduled"]


def test_pending_before_unknown_before_running() -> None:
    assert order(pod("running"), pod("unknown", phase="Unknown"), pod("pending", phase="Pending")) == [
        "pending", "unknown", "running"]


def test_not_ready_before_ready() -> None:
    assert order(pod("ready"), pod("not-ready", ready=None)) == ["not-ready", "ready"]


def test_lower_deletion_cost_first() -> None:
    assert order(pod("expensive", cost=10), pod("cheap", cost=-5), pod("default")) == [
        "cheap", "default", "expensive"]


def test_pods_doubled_up_on_a_node_go_first() -> None:
    crowded, alone = pod("crowded", node="a"), pod("alone", node="b")
    sibling = pod("sibling", node="a")
    assert order(alone, crowded, related=[alone, crowded, sibling]) == ["crowded", "alone"]


def test_ready_for_less_time_first_on_a_logarithmic_scale() -> None:
    assert order(pod("old", ready=10_000), pod("young", ready=10)) == ["young", "old"]
    # 100 s and 120 s are in the same power-of-two bucket of nanoseconds: upstream orders by uid there
    assert order(pod("b", ready=100, restarts=3), pod("a", ready=120, restarts=0)) == ["a", "b"]


def test_more_restarts_first_then_newer_first() -> None:
    assert order(pod("calm", restarts=0), pod("crashy", restarts=5)) == ["crashy", "calm"]
    assert order(pod("older", created=100_000), pod("newer", created=10)) == ["newer", "older"]


def test_is_pod_available_waits_min_ready_seconds() -> None:
    p = pod("p", ready=30)
    assert is_pod_available(p, 0, NOW)
    assert is_pod_available(p, 10, NOW)
    assert not is_pod_available(p, 60, NOW)
    assert not is_pod_available(pod("q", ready=None), 0, NOW)


def test_pod_from_template_is_owned_and_named_after_its_owner() -> None:
    owner = {"metadata": {"name": "web-abc", "uid": "u1"}}
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u1", "controller": True,
           "blockOwnerDeletion": True}
    template = {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "1"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    p = pod_from_template(template, owner, ref)
    assert p["metadata"] == {"generateName": "web-abc-", "labels": {"app": "web"}, "annotations": {"a": "1"},
                             "ownerReferences": [ref]}
    assert p["spec"] == template["spec"] and p["spec"] is not template["spec"]
    with pytest.raises(ValueError, match="no labels"):
        pod_from_template({"spec": {}}, owner, ref)


def test_slow_start_batches_double_and_stop_at_the_first_failing_batch() -> None:
    calls: List[int] = []

    async def run(fail_after: int, count: int) -> tuple:
        async def fn() -> None:
            calls.append(1)
            if len(calls) > fail_after:
                raise RuntimeError("quota")
        return await slow_start_batch(count, 1, fn)

    done, err = asyncio.run(run(10**6, 10))
    assert (done, err, len(calls)) == (10, None, 10)  # batches 1, 2, 4, 3
    calls.clear()
    done, err = asyncio.run(run(3, 100))
    # batches of 1 and 2 succeed; the batch of 4 fails and nothing more is sent
    assert (done, len(calls), str(err)) == (3, 7, "quota")


def test_expectations_hold_until_observed_or_expired() -> None:
    clock = FakeClock()
    exp = ControllerExpectations(clock)
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")  # seen twice (MODIFIED with deletionTimestamp, then DELETED): once
    exp.deletion_observed("ns/rs", "ns/other")  # not ours
    assert exp.get("ns/rs") == (0, 1) and not exp.satisfied("ns/rs")
    clock.advance(EXPECTATIONS_TIMEOUT + 1)
    assert exp.satisfied("ns/rs")  # lost events do not hold the controller back forever
    exp.delete("ns/rs")
    assert exp.get("ns/rs") is None
