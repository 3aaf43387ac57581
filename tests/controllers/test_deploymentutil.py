"""The Deployment arithmetic against upstream's tables (deployment_util_test.go, rolling_test.go, sync_test.go)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytest

from megaplane.controllers import deploymentutil as du
from megaplane.controllers.rollout import max_scaled_down, old_scale_down_plan

Obj = Dict[str, Any]


def deployment(replicas: int, max_surge: Any = "25%", max_unavailable: Any = "25%", *,
               strategy: str = "RollingUpdate", status_replicas: int = 0) -> Obj:
    spec: Obj = {"replicas": replicas, "strategy": {"type": strategy}}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": max_surge, "maxUnavailable": max_unavailable}
    return {"metadata": {"name": "d", "generation": 1}, "spec": spec, "status": {"replicas": status_replicas}}


def rs(name: str, replicas: int, available: int = 0, *, created: str = "2024-01-01T00:00:00Z",
       max_replicas: Optional[int] = None) -> Obj:
    annotations = {du.MAX_REPLICAS: str(max_replicas)} if max_replicas is not None else {}
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations},
            "spec": {"replicas": replicas}, "status": {"replicas": replicas, "availableReplicas": available}}


@pytest.mark.parametrize("surge, unavailable, desired, want", [
    ("0%", "0%", 0, (0, 1)),       # both round to 0: unavailable becomes 1
    ("39%", "39%", 10, (4, 3)),    # surge rounds up, unavailable down
    (1, 0, 5, (1, 0)),
    ("25%", "25%", 1, (1, 0)),
    ("25%", "25%", 4, (1, 1)),
    (0, 0, 3, (0, 1)),
    (None, None, 3, (0, 1)),
])
def test_resolve_fenceposts(surge: Any, unavailable: Any, desired: int, want: tuple) -> None:
    assert du.resolve_fenceposts(surge, unavailable, desired) == want


@pytest.mark.parametrize("surge, unavailable", [("oops", "39%"), ("55%", "urg"), ("5", "1"), (True, 1)])
def test_resolve_fenceposts_refuses_what_is_neither_an_int_nor_a_percentage(surge: Any, unavailable: Any) -> None:
    with pytest.raises(du.InvalidIntOrString):
        du.resolve_fenceposts(surge, unavailable, 10)


def test_max_unavailable_is_capped_at_replicas_and_zero_for_recreate_or_no_replicas() -> None:
    assert du.max_unavailable(deployment(10, 0, 11)) == 10
    assert du.max_unavailable(deployment(10, 0, 10)) == 10
    assert du.max_unavailable(deployment(10, "25%", "25%")) == 2
    assert du.max_unavailable(deployment(0, 1, 1)) == 0
    assert du.max_unavailable(deployment(10, strategy="Recreate")) == 0
    assert du.max_surge(deployment(10, strategy="Recreate")) == 0
    assert du.max_surge(deployment(10, "25%", "25%")) == 3


@pytest.mark.parametrize("name, strategy, d_replicas, new_replicas, surge, old_replicas, want", [
    ("can not scale up - to newRSReplicas", "RollingUpdate", 1, 5, 1, 5, 5),
    ("scale up - to depReplicas", "RollingUpdate", 6, 2, 10, 4, 6),
    ("recreate - to depReplicas", "Recreate", 3, 1, 1, 1, 3),
])
def test_new_rs_new_replicas(name: str, strategy: str, d_replicas: int, new_replicas: int, surge: int,
                             old_replicas: int, want: int) -> None:
    d = deployment(d_replicas, surge, 0, strategy=strategy)
    new, old = rs("new", new_replicas), rs("old", old_replicas)
    assert du.new_rs_new_replicas(d, [new, old], new) == want, name


def test_new_rs_new_replicas_steps_a_rollout_of_ten_within_the_surge() -> None:
    d = deployment(10, 3, 2)
    new, old = rs("new", 0), rs("old", 10, 10)
    assert du.new_rs_new_replicas(d, [old, new], new) == 3  # 13 pods at most


# rolling_test.go TestDeploymentController_reconcileOldReplicaSets
@pytest.mark.parametrize("d_replicas, max_unavailable, old_replicas, new_replicas, ready_old, ready_new, want_old", [
    (10, 0, 10, 0, 10, 0, 9),      # surge and unavailable both 0 resolve unavailable to 1
    (10, 2, 10, 0, 10, 0, 8),      # two may go
    (10, 2, 10, 0, 8, 0, 8),       # the two unhealthy ones go first
    (10, 2, 10, 0, 9, 0, 8),       # one unhealthy, one ready
    (10, 2, 8, 2, 8, 0, None),     # the new set's unavailable pods hold the old ones back
])
def test_old_replica_sets_scale_down(d_replicas: int, max_unavailable: int, old_replicas: int, new_replicas: int,
                                     ready_old: int, ready_new: int, want_old: Optional[int]) -> None:
    d = deployment(d_replicas, 0, max_unavailable)
    old = rs("old", old_replicas, ready_old, created="2024-01-01T00:00:00Z")
    new = rs("new", new_replicas, ready_new, created="2024-01-02T00:00:00Z")
    plan = old_scale_down_plan(d, [old], new)
    if want_old is None:
        assert plan == []
    else:
        assert [(r["metadata"]["name"], size) for r, size in plan] == [("old", want_old)]


def test_scale_down_takes_the_oldest_sets_first() -> None:
    d = deployment(10, 0, 3)
    older = rs("older", 2, 2, created="2024-01-01T00:00:00Z")
    old = rs("old", 8, 8, created="2024-01-02T00:00:00Z")
    new = rs("new", 0, 0, created="2024-01-03T00:00:00Z")
    assert max_scaled_down(d, [older, old, new], new) == 3
    assert [(r["metadata"]["name"], size) for r, size in old_scale_down_plan(d, [old, older], new)] == [
        ("older", 0), ("old", 7)]


# sync_test.go TestScale: proportional shares, using the max-replicas annotation
@pytest.mark.parametrize("rs_replicas, annotated, d_replicas, to_add, added, want", [
    (5, 10, 20, 10, 0, 5),     # scale up 10 -> 20: a set of 5 of 10 doubles
    (5, 10, 5, -5, 0, -3),     # scale down 10 -> 5: 5 * 5/10 = 2.5 rounds to 3, so -2... capped below
    (0, 10, 20, 10, 0, 0),     # an empty set takes nothing
    (5, 10, 20, 10, 10, 0),    # nothing left to add
])
def test_proportion(rs_replicas: int, annotated: int, d_replicas: int, to_add: int, added: int, want: int) -> None:
    d = deployment(d_replicas, 0, 1)
    share = du.proportion(rs("a", rs_replicas, max_replicas=annotated), d, to_add, added)
    if to_add < 0 and rs_replicas:
        # round(5 * 5 / 10) - 5 = -2, and a scale-down takes the larger (less negative) of it and what is left
        assert share == max(int(rs_replicas * d_replicas / annotated + 0.5) - rs_replicas, to_add - added)
    else:
        assert share == want


def test_safe_encode_string_uses_upstreams_alphabet() -> None:
    # '0'..'9' are bytes 48..57, modulo the 27-letter alphabet "bcdfghjklmnpqrstvwxz2456789"
    assert du.safe_encode_string("0123456789") == "456789bcdf"
    assert du.safe_encode_string("") == ""


def test_fnv32a_matches_the_reference_vectors() -> None:
    assert du._fnv32a(b"") == 0x811C9DC5
    assert du._fnv32a(b"a") == 0xE40C292C
    assert du._fnv32a(b"foobar") == 0xBF9CF968


def test_compute_hash_is_stable_and_the_collision_count_changes_it() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    reordered = {"spec": {"containers": [{"image": "nginx", "name": "c"}]}, "metadata": {"labels": {"app": "web"}}}
    h = du.compute_hash(template, None)
    assert h == du.compute_hash(reordered, None)
    assert set(h) <= set("456789bcdf") and 1 <= len(h) <= 10
    assert len({h, du.compute_hash(template, 0), du.compute_hash(template, 1)}) == 3


def test_equal_ignore_hash() -> None:
    a = {"metadata": {"labels": {"app": "web", du.DEFAULT_UNIQUE_LABEL: "abc"}}, "spec": {"containers": []}}
    b = {"metadata": {"labels": {"app": "web"}}, "spec": {}}
    assert du.equal_ignore_hash(a, b)
    assert not du.equal_ignore_hash(a, {"metadata": {"labels": {"app": "api"}}, "spec": {}})


def test_new_rs_annotations_copy_the_deployment_and_keep_revision_history() -> None:
    d = deployment(3, 1, 0)
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "set image", du.REVISION: "9",
                                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    new: Obj = {"metadata": {}}
    assert du.set_new_rs_annotations(d, new, "1", False)
    assert new["metadata"]["annotations"] == {"kubernetes.io/change-cause": "set image", du.REVISION: "1",
                                              du.DESIRED_REPLICAS: "3", du.MAX_REPLICAS: "4"}
    assert not du.set_new_rs_annotations(d, new, "1", True)
    assert du.set_new_rs_annotations(d, new, "4", True)  # a rollback to this set
    assert new["metadata"]["annotations"][du.REVISION] == "4"
    assert new["metadata"]["annotations"][du.REVISION_HISTORY] == "1"


def test_find_active_or_latest() -> None:
    a = rs("a", 0, created="2024-01-01T00:00:00Z")
    b = rs("b", 0, created="2024-01-02T00:00:00Z")
    c = rs("c", 3, created="2024-01-03T00:00:00Z")
    assert du.find_active_or_latest(None, [a, b]) is b
    assert du.find_active_or_latest(a, [b, c]) is c
    assert du.find_active_or_latest(rs("n", 1), [c]) is None


def test_progress_conditions() -> None:
    d = deployment(2, 1, 0)
    d["spec"]["progressDeadlineSeconds"] = 600
    done = {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2, "observedGeneration": 1}
    assert du.deployment_complete(d, done)
    assert not du.deployment_complete(d, dict(done, observedGeneration=0))
    d["status"] = {"updatedReplicas": 1, "replicas": 3, "readyReplicas": 1, "availableReplicas": 1}
    assert du.deployment_progressing(d, {"updatedReplicas": 2, "replicas": 3})
    assert not du.deployment_progressing(d, dict(d["status"]))
    stale = {"conditions": [du.new_condition("Progressing", "True", "ReplicaSetUpdated", "", "2024-01-01T00:00:00Z")]}
    assert du.deployment_timed_out(d, stale, now=1704067200 + 601)
    assert not du.deployment_timed_out(d, stale, now=1704067200 + 599)
    d["spec"]["progressDeadlineSeconds"] = du.MAX_INT32
    assert not du.deployment_timed_out(d, stale, now=1704067200 + 10**6)


def test_set_condition_keeps_the_transition_time_when_only_the_reason_changes() -> None:
    status: Obj = {}
    du.set_condition(status, du.new_condition("Progressing", "True", "NewReplicaSetCreated", "m", "t1"))
    du.set_condition(status, du.new_condition("Progressing", "True", "NewReplicaSetCreated", "m2", "t2"))
    assert status["conditions"][0]["lastUpdateTime"] == "t1"  # same status and reason: no change
    du.set_condition(status, du.new_condition("Progressing", "True", "ReplicaSetUpdated", "m3", "t3"))
    assert status["conditions"][0]["lastTransitionTime"] == "t1"
    assert status["conditions"][0]["lastUpdateTime"] == "t3"
