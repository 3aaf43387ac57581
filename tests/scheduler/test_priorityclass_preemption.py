"""PriorityClasses end to end: the class a pod names decides whether the scheduler preempts for it.

On `megaplane up --nodes 1` with a 2-CPU node: a pod of the default
priority (no class: priority 0 from the Priority admission plugin) takes
1500m; a pod of a `preemptionPolicy: Never` class stays Pending with the
scheduler's "not eligible" message and preempts nothing; a pod of a high
class gets its priority from the class and preempts the first one. Nothing
sleeps: every step waits for a state with a deadline.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Optional

import pytest

from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, start_server

Obj = Dict[str, Any]


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-scheduler-pc-")
    c = start_server(root, "up", ["--nodes", "1", "--node-cpu", "2", "--node-memory", "4Gi",
                                  "--pod-startup-latency", "100ms"])
    try:
        eventually(lambda: len(c.ok("get", "nodes", "--no-headers").splitlines()) == 1, "1 node")
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def pod(name: str, cpu: str, priority_class: str = "") -> str:
    spec: Obj = {"terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": cpu}}}]}
    if priority_class:
        spec["priorityClassName"] = priority_class
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def get_pod(c: Cluster, name: str) -> Optional[Obj]:
    out = c.kubectl("get", "pod", name, "-o", "json")
    return json.loads(out.stdout) if out.returncode == 0 else None


def running(c: Cluster, name: str) -> Optional[Obj]:
    p = get_pod(c, name)
    return p if p is not None and p["status"].get("phase") == "Running" else None


def events(c: Cluster, reason: str, name: str) -> List[Obj]:
    items = json.loads(c.ok("get", "events", "-o", "json", "--field-selector",
                            f"reason={reason},involvedObject.name={name}"))["items"]
    return list(items)


def test_a_pod_of_a_high_priority_class_preempts_a_default_priority_pod(up: Cluster) -> None:
    up.ok("create", "priorityclass", "high", "--value=100000", "--description=preempts")
    up.ok("create", "priorityclass", "high-never", "--value=100000", "--preemption-policy=Never")
    up.ok("apply", "-f", "-", input=pod("low", "1500m"))
    low = eventually(lambda: running(up, "low"), "the default-priority pod Running", timeout=60)
    assert low["spec"]["priority"] == 0 and low["spec"]["preemptionPolicy"] == "PreemptLowerPriority"

    # Same priority, but its class says Never: it waits and preempts nothing.
    up.ok("apply", "-f", "-", input=pod("patient", "1500m", "high-never"))
    failed = eventually(lambda: events(up, "FailedScheduling", "patient"), "FailedScheduling for the Never pod",
                        timeout=60)
    assert failed[-1]["message"].endswith("preemption: not eligible due to preemptionPolicy=Never."), failed
    patient = get_pod(up, "patient")
    assert patient is not None and patient["spec"]["priority"] == 100000
    assert patient["spec"]["preemptionPolicy"] == "Never" and not patient["spec"].get("nodeName")
    current = get_pod(up, "low")
    assert current is not None and current["metadata"]["uid"] == low["metadata"]["uid"]
    assert not current["metadata"].get("deletionTimestamp")
    up.ok("delete", "pod", "patient", "--wait=false")
    eventually(lambda: get_pod(up, "patient") is None, "the Never pod gone")

    # The high class's pod gets priority 100000 from admission and preempts the low pod.
    up.ok("apply", "-f", "-", input=pod("urgent", "1500m", "high"))
    urgent = eventually(lambda: running(up, "urgent"), "the high-priority pod Running", timeout=90)
    assert urgent["spec"]["priority"] == 100000 and urgent["spec"]["priorityClassName"] == "high"
    node = urgent["spec"]["nodeName"]
    replaced = get_pod(up, "low")
    assert replaced is None or replaced["metadata"]["uid"] != low["metadata"]["uid"]
    preempted = events(up, "Preempted", "low")
    assert [e["message"] for e in preempted] == [f"Preempted by pod {urgent['metadata']['uid']} on node {node}"]
    up.ok("delete", "pod", "urgent", "--wait=false")
