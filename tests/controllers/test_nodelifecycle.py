"""node-lifecycle-controller: unit tests of the zone machinery and the sight rule, then `megaplane up` with the fleet.

The process tests run `megaplane up` with simulated nodes renewing 1 s
Leases, a 0.5 s monitor period and a 3 s grace period, and drive faults
with the fleet's `fleet.megaplane.io/fault` annotation. Every wait polls
for a state with a deadline.
"""

from __future__ import annotations

import asyncio
import datetime
import shutil
import tempfile
import time
from typing import Any, Dict, Iterator, List, Optional

import kubernetes
import pytest

from megaplane.client import Client
from megaplane.controllers.nodelifecycle import (
    NodeLifecycleConfig,
    NodeLifecycleController,
    RateLimitedTimedQueue,
    Sight,
    TokenBucket,
    ZoneRates,
    compute_zone_state,
)
from megaplane.controllers.nodelifecycle.records import (
    Condition,
    Lease,
    LeaseMeta,
    LeaseSpec,
    Meta,
    Node,
    NodeSpec,
    NodeStatus,
)
from megaplane.controllers.nodelifecycle.zones import zone_key
from megaplane.testing import FakeClock
from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, start_server

FAULT = "fleet.megaplane.io/fault"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"

# -- units: zone states, rates, the tainting queue ----------------------------------------------------


def test_zone_state_as_upstream_compute_zone_state() -> None:
    assert compute_zone_state(5, 0, 0.55) == "Normal"
    assert compute_zone_state(0, 1, 0.55) == "FullDisruption"
    assert compute_zone_state(0, 0, 0.55) == "Normal"  # an empty zone is not disrupted
    assert compute_zone_state(1, 2, 0.55) == "Normal"  # 2 not Ready is never partial, whatever the fraction
    assert compute_zone_state(2, 3, 0.55) == "PartialDisruption"  # 3 of 5 = 0.6 >= 0.55
    assert compute_zone_state(3, 3, 0.55) == "Normal"  # 0.5 < 0.55
    assert compute_zone_state(45, 55, 0.55) == "PartialDisruption"  # exactly the threshold counts


def test_zone_rates_secondary_only_for_large_zones() -> None:
    rates = ZoneRates(0.1, 0.01, 50)
    assert rates.rate("Normal", 10) == 0.1
    assert rates.rate("FullDisruption", 10) == 0.1
    assert rates.rate("PartialDisruption", 51) == 0.01
    assert rates.rate("PartialDisruption", 50) == 0.0  # not larger than the threshold: tainting stops


def test_zone_key_as_get_zone_key() -> None:
    assert zone_key({}) == ""
    assert zone_key({"topology.kubernetes.io/region": "r", "topology.kubernetes.io/zone": "z"}) == "r:\x00:z"
    assert zone_key({"failure-domain.beta.kubernetes.io/zone": "z"}) == ":\x00:z"


def test_token_bucket_burst_one_then_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock=clock)
    assert bucket.try_accept()
    assert not bucket.try_accept()
    clock.advance(1.9)
    assert not bucket.try_accept()
    clock.advance(0.1)
    assert bucket.try_accept()
    clock.advance(100)
    assert bucket.try_accept() and not bucket.try_accept()  # burst 1: nothing saved up
    assert not TokenBucket(0.0, clock=clock).try_accept()  # rate 0 never accepts


def test_rate_limited_queue_order_uniqueness_retry_and_swap() -> None:
    clock = FakeClock()
    queue = RateLimitedTimedQueue(1.0, clock=clock)
    assert queue.add("a") and queue.add("b") and not queue.add("a")
    done: List[str] = []

    async def ok(name: str) -> "tuple[bool, float]":
        done.append(name)
        return True, 0.0

    async def run() -> None:
        assert await queue.try_(ok) == 1  # one token
        assert done == ["a"]
        assert "a" in queue and not queue.waiting("a")  # processed: kept in the set, out of the queue
        assert not queue.add("a")
        clock.advance(1.0)
        await queue.try_(ok)
        assert done == ["a", "b"]
        assert queue.remove("a") and queue.add("a")  # removed from the set: may be queued again
        queue.swap_limiter(0.0)
        clock.advance(10)
        assert await queue.try_(ok) == 0  # rate 0: nothing
        queue.swap_limiter(1.0)  # the old limiter had no token: the new one starts drained
        assert await queue.try_(ok) == 0
        clock.advance(1.0)
        assert await queue.try_(ok) == 1

        failures: List[str] = []

        async def fail(name: str) -> "tuple[bool, float]":
            failures.append(name)
            return False, 5.0

        queue.add("c")
        clock.advance(1.0)
        await queue.try_(fail)
        assert failures == ["c"] and queue.waiting("c")
        clock.advance(2.0)
        await queue.try_(fail)
        assert failures == ["c"]  # not due again before its retry delay
        clock.advance(4.0)
        await queue.try_(fail)
        assert failures == ["c", "c"]
        assert queue.drop_added_before(clock.monotonic()) == 1 and "c" not in queue

    asyncio.run(run())


# -- units: the sight rule ------------------------------------------------------------------------------


def test_sight_blind_until_the_first_confirmation_then_restarts_only_after_a_real_gap() -> None:
    clock = FakeClock()
    sight = Sight(10.0, clock=clock)
    assert not sight.seeing(clock.monotonic())
    clock.advance(1)
    sight.confirm(clock.monotonic())
    start = sight.since
    assert sight.seeing(clock.monotonic()) and start == clock.monotonic()
    clock.advance(8)  # a confirmation within the threshold: no restart
    sight.confirm(clock.monotonic())
    assert sight.since == start
    clock.advance(30)  # 30 s without a confirmation: blind
    assert not sight.seeing(clock.monotonic())
    sight.confirm(clock.monotonic() - 1)  # a canary sent 1 s ago came back: sight again, restarted now
    assert sight.seeing(clock.monotonic()) and sight.since == clock.monotonic()
    assert sight.blind_seconds > 20


def test_sight_broken_watch_blinds_until_mended_and_confirmed() -> None:
    clock = FakeClock()
    sight = Sight(10.0, clock=clock)
    sight.confirm(clock.monotonic())
    since = sight.since
    sight.break_("nodes")
    assert not sight.seeing(clock.monotonic())
    clock.advance(1)
    sight.confirm(clock.monotonic())  # ignored while a watch is broken
    assert not sight.seeing(clock.monotonic())
    sight.mend("nodes")
    sight.confirm(clock.monotonic())
    assert sight.seeing(clock.monotonic()) and sight.since > since


def _node(name: str, zone: str, ready: str = "True", *, excluded: bool = False) -> Node:
    labels = {"topology.kubernetes.io/region": "r", "topology.kubernetes.io/zone": zone}
    if excluded:
        labels["node.kubernetes.io/exclude-disruption"] = ""
    return Node(Meta(name=name, uid=name, resourceVersion="1", labels=labels), NodeSpec(),
                NodeStatus([Condition("Ready", ready, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")]))


def test_zone_state_machine_and_master_disruption_mode() -> None:
    """handleDisruption over the controller's columns: states, rates, all-zones-down and the probe reset."""
    clock = FakeClock()

    async def run() -> None:
        cfg = NodeLifecycleConfig(node_eviction_rate=0.1, secondary_node_eviction_rate=0.01,
                                  large_cluster_size_threshold=3)
        nlc = NodeLifecycleController(Client(transport=None), cfg, clock=clock)  # type: ignore[arg-type]
        for i in range(5):
            nlc._on_node(_node(f"a{i}", "a"))
        for i in range(2):
            nlc._on_node(_node(f"b{i}", "b"))
        nlc._on_node(_node("x", "b", "False", excluded=True))  # not counted: zone b stays Normal
        await nlc._handle_disruption(clock.monotonic())
        assert nlc.zone_states() == {"r:\x00:a": "Normal", "r:\x00:b": "Normal"}
        assert nlc.zone_rates() == {"r:\x00:a": 0.1, "r:\x00:b": 0.1}
        for i in range(3):
            nlc._on_node(_node(f"a{i}", "a", "Unknown"))
        await nlc._handle_disruption(clock.monotonic())
        assert nlc.zone_states()["r:\x00:a"] == "PartialDisruption"
        assert nlc.zone_rates()["r:\x00:a"] == 0.01  # 5 nodes > large-cluster-size-threshold 3
        for i in range(2):
            nlc._on_node(_node(f"b{i}", "b", "Unknown"))
        await nlc._handle_disruption(clock.monotonic())
        assert nlc.zone_states()["r:\x00:b"] == "FullDisruption"
        assert nlc.zone_rates()["r:\x00:b"] == 0.1  # a fully disrupted zone among healthy ones: normal rate
        for i in range(3, 5):
            nlc._on_node(_node(f"a{i}", "a", "Unknown"))
        await nlc._handle_disruption(clock.monotonic())
        assert nlc.zone_states() == {"r:\x00:a": "FullDisruption", "r:\x00:b": "FullDisruption"}
        assert nlc.zone_rates() == {"r:\x00:a": 0.0, "r:\x00:b": 0.0}  # master disruption: no tainting
        clock.advance(100)
        nlc._on_node(_node("a0", "a", "True"))
        await nlc._handle_disruption(clock.monotonic())
        n = len(nlc.names)
        assert (nlc.probe[:n] == clock.monotonic()).all()  # leaving it: every probe time reset
        assert nlc.zone_states() == {"r:\x00:a": "PartialDisruption", "r:\x00:b": "FullDisruption"}
        assert nlc.zone_rates() == {"r:\x00:a": 0.01, "r:\x00:b": 0.1}

    asyncio.run(run())


def _micro(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_burst_of_late_renewals_restarts_every_grace_period() -> None:
    """API server congestion: most renewals of a period arrive 40 s after they were written, so the ones still
    missing are probably as late; the node still missing is not judged on the time before the burst."""
    clock = FakeClock()

    async def run() -> None:
        nlc = NodeLifecycleController(Client(transport=None), NodeLifecycleConfig(), clock=clock)  # type: ignore[arg-type]
        for i in range(4):
            nlc._on_node(_node(f"n{i}", "a"))
        nlc._leases_synced()
        nlc.sight.confirm(clock.monotonic())

        def renew(i: int, written: float) -> None:
            nlc._on_lease(Lease(LeaseMeta(name=f"n{i}", namespace="kube-node-lease"), LeaseSpec(renewTime=_micro(written))))

        for i in range(4):
            renew(i, clock.time())
        for _ in range(9):  # 45 s in sight (the canary comes back every 5 s) but no renewal arrives
            clock.advance(5)
            nlc.sight.confirm(clock.monotonic())
        for i in range(3):  # n3's renewal is still stuck in the API server
            renew(i, clock.time() - 40)
        nlc.sight.confirm(clock.monotonic())
        await nlc._monitor()
        assert sum(nlc.sight.restarts.values()) == 2 and nlc.sight.since == clock.monotonic()  # start, then the burst
        clock.advance(10)  # n3 last seen 55 s ago, past the 50 s grace, but only 10 s since sight restarted
        nlc.sight.confirm(clock.monotonic())
        await nlc._monitor()  # a write would fail on this client-less controller: none is attempted
        assert nlc.stats["marked_unknown"] == 0 and nlc.stats["blind_passes"] == 0
        # One late renewal among punctual ones (a kubelet with a skewed clock) restarts nothing.
        restarts = sum(nlc.sight.restarts.values())
        renew(0, clock.time() - 40)
        for i in (1, 2, 3):
            renew(i, clock.time())
        await nlc._monitor()
        assert sum(nlc.sight.restarts.values()) == restarts

    asyncio.run(run())


def test_blind_controller_decides_nothing() -> None:
    clock = FakeClock()

    async def run() -> None:
        nlc = NodeLifecycleController(Client(transport=None), NodeLifecycleConfig(), clock=clock)  # type: ignore[arg-type]
        nlc._on_node(_node("n0", "a"))
        nlc.sight.confirm(clock.monotonic())
        clock.advance(120)  # no canary for 2 minutes: blind, though n0 is long past its grace period
        await nlc._monitor()
        assert nlc.stats["blind_passes"] == 1 and nlc.stats["marked_unknown"] == 0

    asyncio.run(run())


# -- megaplane up with the fleet -------------------------------------------------------------------------

FAST = ["--node-lease-duration-seconds", "4", "--node-monitor-period", "500ms", "--node-monitor-grace-period", "3s",
        "--node-startup-grace-period", "5s", "--scheduler=false", "--pod-startup-latency", "100ms",
        "--controllers", "nodelifecycle,tainteviction,podgc,namespace,serviceaccount"]


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-nodelifecycle-")
    c = start_server(root, "up", ["--nodes", "4", "--zones", "2", "--node-eviction-rate", "10",
                                  "--default-unreachable-toleration-seconds", "2",
                                  "--default-not-ready-toleration-seconds", "2", *FAST])
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def core(up: Cluster) -> kubernetes.client.CoreV1Api:
    api = kubernetes.client.CoreV1Api(up.api_client())
    eventually(lambda: len(api.list_node().items) == 4 and all(_ready(n) == "True" for n in api.list_node().items),
               "4 Ready nodes")
    return api


def _if(value: Any, ok: Any) -> Any:
    """`value` when `ok(value)`, else None (for `eventually`)."""
    return value if ok(value) else None


def _ready(node: Any) -> Optional[str]:
    for c in node.status.conditions or ():
        if c.type == "Ready":
            return str(c.status)
    return None


def _condition(node: Any, kind: str) -> Any:
    return next((c for c in node.status.conditions or () if c.type == kind), None)


def _taints(node: Any) -> Dict[tuple, Any]:
    return {(t.key, t.effect): t for t in node.spec.taints or ()}


def _fault(core: kubernetes.client.CoreV1Api, node: str, value: Optional[str]) -> None:
    core.patch_node(node, {"metadata": {"annotations": {FAULT: value}}})


def _pod(core: kubernetes.client.CoreV1Api, name: str, node: str, tolerations: Optional[List[Dict[str, Any]]] = None) -> None:
    spec: Dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def _live(core: kubernetes.client.CoreV1Api, name: str) -> bool:
    """The pod exists and is not being deleted."""
    try:
        return core.read_namespaced_pod(name, "default").metadata.deletion_timestamp is None
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def _pod_ready(pod: Any) -> Optional[str]:
    return next((str(c.status) for c in pod.status.conditions or () if c.type == "Ready"), None)


def test_stopped_node_goes_unknown_is_tainted_its_pods_evicted_and_recovers(core: kubernetes.client.CoreV1Api) -> None:
    _pod(core, "victim", "node-0")
    _pod(core, "patient", "node-0", [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                                      "tolerationSeconds": 3600}])
    eventually(lambda: all(_pod_ready(core.read_namespaced_pod(p, "default")) == "True" for p in ("victim", "patient")),
               "both pods running and Ready")
    victim = core.read_namespaced_pod("victim", "default")
    assert {(t.key, t.toleration_seconds) for t in victim.spec.tolerations} >= {(UNREACHABLE, 2), (NOT_READY, 2)}
    _fault(core, "node-0", "stop-heartbeat")
    node = eventually(lambda: _if(core.read_node("node-0"), lambda n: _ready(n) == "Unknown"),
                      "node-0 Ready=Unknown", timeout=30)
    for kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
        cond = _condition(node, kind)
        assert (cond.status, cond.reason, cond.message) == ("Unknown", "NodeStatusUnknown",
                                                              "Kubelet stopped posting node status."), kind
    node = eventually(lambda: _if(core.read_node("node-0"), lambda n: (UNREACHABLE, "NoExecute") in _taints(n)),
                      "the unreachable NoExecute taint", timeout=30)
    taints = _taints(node)
    assert (UNREACHABLE, "NoSchedule") in taints and (NOT_READY, "NoExecute") not in taints
    assert taints[(UNREACHABLE, "NoExecute")].time_added is not None
    # Its pods: Ready=False at once, the victim deleted after its 2 s toleration (the fleet's kubelet for the
    # node still finishes the graceful deletion: heartbeats stopped, not the pod worker), the patient kept.
    eventually(lambda: _pod_ready(core.read_namespaced_pod("patient", "default")) == "False", "patient Ready=False")
    eventually(lambda: not _live(core, "victim"), "the victim evicted", timeout=30)
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=victim").items
    assert any(e.reason == "TaintManagerEviction" and e.message == "Marking for deletion Pod default/victim"
               for e in events)
    assert core.read_namespaced_pod("patient", "default").metadata.deletion_timestamp is None
    # Recovery: heartbeats again -> Ready, every taint of ours gone.
    _fault(core, "node-0", None)
    eventually(lambda: _if(core.read_node("node-0"), lambda n: _ready(n) == "True" and not _taints(n)),
               "node-0 Ready, untainted", timeout=30)
    core.delete_namespaced_pod("patient", "default", grace_period_seconds=0)


def test_kubelet_reporting_not_ready_gets_the_not_ready_taints_then_unreachable_swapped_in(core: kubernetes.client.CoreV1Api) -> None:
    _fault(core, "node-1", "not-ready")
    node = eventually(lambda: _if(core.read_node("node-1"), lambda n: {(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")}
                                  <= set(_taints(n))), "node-1 not-ready taints", timeout=30)
    assert _ready(node) == "False"
    assert (UNREACHABLE, "NoExecute") not in _taints(node)  # swapped, never both
    # The kubelet then stops altogether: Unknown, and the not-ready NoExecute taint swapped for unreachable.
    _fault(core, "node-1", "stop-heartbeat")
    node = eventually(lambda: _if(core.read_node("node-1"), lambda n: (UNREACHABLE, "NoExecute") in _taints(n)),
                      "node-1's taint swapped to unreachable", timeout=30)
    assert _ready(node) == "Unknown" and (NOT_READY, "NoExecute") not in _taints(node)
    _fault(core, "node-1", None)
    eventually(lambda: not _taints(core.read_node("node-1")), "node-1 untainted", timeout=30)


def test_unschedulable_and_pressure_conditions_taint_no_schedule(core: kubernetes.client.CoreV1Api) -> None:
    core.patch_node("node-2", {"spec": {"unschedulable": True}})
    eventually(lambda: ("node.kubernetes.io/unschedulable", "NoSchedule") in _taints(core.read_node("node-2")),
               "the unschedulable taint")
    core.patch_node("node-2", {"spec": {"unschedulable": False}})
    eventually(lambda: not _taints(core.read_node("node-2")), "the unschedulable taint removed")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    core.patch_node_status("node-2", {"status": {"conditions": [
        {"type": "MemoryPressure", "status": "True", "reason": "Test", "lastHeartbeatTime": stamp,
         "lastTransitionTime": stamp}]}})
    eventually(lambda: ("node.kubernetes.io/memory-pressure", "NoSchedule") in _taints(core.read_node("node-2")),
               "the memory-pressure taint")
    core.patch_node_status("node-2", {"status": {"conditions": [
        {"type": "MemoryPressure", "status": "False", "reason": "Test", "lastHeartbeatTime": stamp,
         "lastTransitionTime": stamp}]}})
    eventually(lambda: not _taints(core.read_node("node-2")), "the memory-pressure taint removed")


# -- zones: one zone down, then every zone ------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoned() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-zones-")
    c = start_server(root, "up", ["--nodes", "8", "--zones", "2", "--node-eviction-rate", "0.5",
                                  "--default-unreachable-toleration-seconds", "10", *FAST])
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_zone_down_is_tainted_at_the_eviction_rate_and_every_zone_down_taints_nothing(zoned: Cluster) -> None:
    core = kubernetes.client.CoreV1Api(zoned.api_client())
    eventually(lambda: len(items := core.list_node().items) == 8 and all(_ready(n) == "True" for n in items),
               "8 Ready nodes")
    zone_b = [f"node-{i}" for i in range(1, 8, 2)]  # round-robin: odd nodes are in region-1b
    zone_a = [f"node-{i}" for i in range(0, 8, 2)]
    for name in zone_b:
        assert core.read_node(name).metadata.labels["topology.kubernetes.io/zone"] == "region-1b"
    # Zone b's pods tolerate unreachable for an hour: this test is about the taints, not their eviction.
    for name in zone_b:
        _pod(core, f"b-{name}", name, [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                                        "tolerationSeconds": 3600}])
    # Zone a's pods have the default 10 s toleration. Its nodes stop a few hundred ms apart (their renewals are
    # out of phase), and as upstream the first one down may be queued for a taint while its zone still looks
    # Normal, until the next pass sees every zone down and takes it away again: 10 s outlasts that.
    for name in zone_a:
        _pod(core, f"a-{name}", name)
    eventually(lambda: len([p for p in core.list_namespaced_pod("default").items if p.status.phase == "Running"]) == 8,
               "8 running pods")

    # One zone down (FullDisruption while the other is Normal): tainted at --node-eviction-rate 0.5/s, one at a
    # time (burst 1), so 4 taints span at least 6 s (timeAdded has whole seconds: >= 5).
    for name in zone_b:
        _fault(core, name, "stop-heartbeat")
    tainted = eventually(lambda: _if([_taints(core.read_node(n)).get((UNREACHABLE, "NoExecute")) for n in zone_b], all),
                         "every zone-b node tainted NoExecute", timeout=60)
    added = sorted(t.time_added for t in tainted)
    assert (added[-1] - added[0]).total_seconds() >= 5, added
    assert all((b - a).total_seconds() >= 1 for a, b in zip(added, added[1:])), added
    for name in zone_a:
        assert not _taints(core.read_node(name))

    # Every zone down: master disruption mode removes the NoExecute taints and taints nothing.
    for name in zone_a:
        _fault(core, name, "stop-heartbeat")
    eventually(lambda: all(_ready(core.read_node(n)) == "Unknown" for n in zone_a + zone_b), "every node Unknown",
               timeout=60)
    eventually(lambda: not any((UNREACHABLE, "NoExecute") in _taints(core.read_node(n)) for n in zone_b),
               "zone b's NoExecute taints removed", timeout=30)
    # From here nothing is tainted NoExecute: watched for longer than two taint intervals of 2 s.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for n in zone_a + zone_b:
            assert (UNREACHABLE, "NoExecute") not in _taints(core.read_node(n)), n
        assert len([p for p in core.list_namespaced_pod("default").items if not p.metadata.deletion_timestamp]) == 8
        time.sleep(0.5)
    # Unreachable NoSchedule stays (the condition is Unknown); the pods were marked not Ready.
    assert all((UNREACHABLE, "NoSchedule") in _taints(core.read_node(n)) for n in zone_a)
    eventually(lambda: all(_pod_ready(p) == "False" for p in core.list_namespaced_pod("default").items),
               "every pod Ready=False")
    # Recovery: every node back, every taint gone, nobody evicted.
    for name in zone_a + zone_b:
        _fault(core, name, None)
    eventually(lambda: all(_ready(n) == "True" and not _taints(n) for n in core.list_node().items),
               "every node Ready and untainted", timeout=60)
    assert len([p for p in core.list_namespaced_pod("default").items if not p.metadata.deletion_timestamp]) == 8
