"""Parallel per tenant: `megaplane scheduler --tenant-label L --tenant-workers N`.

Unit tests pin down which pods a worker owns (tenant_of: a nodeSelector,
or required node affinity allowing exactly one pool; a stable hash, not
Python's per-process one) and how pods naming no tenant are kept off the
pools. The process test runs the scheduler with two workers against
`megaplane up --scheduler=false` whose fleet nodes are labelled into two
tenants' pools and a shared rest: every pod lands in its own pool, the
worker process exists and places its tenant's pods (the parent owns none
of them), and a worker killed with SIGKILL is restarted and goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from megaplane.scheduler.podspec import parse_pod
from megaplane.scheduler.tenants import TenantPartition, tenant_hash, tenant_of
from megaplane.scheduler.workers import worker_argv
from tests.api.conftest import Cluster
from tests.fleet.conftest import Fleet, eventually, start_server
from tests.scheduler.test_up import FLEET_FLAGS, get_pod

LABEL = "megaplane.io/tenant"


def pod_of(tenant: Optional[str] = None, *, affinity: Optional[List[List[str]]] = None) -> Dict[str, Any]:
    spec: Dict[str, Any] = {"containers": [{"name": "c", "image": "pause"}]}
    if tenant is not None:
        spec["nodeSelector"] = {LABEL: tenant}
    if affinity is not None:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": LABEL, "operator": "In", "values": values}]} for values in affinity]}}}
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}


def test_a_pod_names_a_tenant_by_node_selector_or_by_affinity_allowing_one_pool() -> None:
    assert tenant_of(pod_of("beta"), LABEL) == "beta"
    assert tenant_of(pod_of(affinity=[["beta"]]), LABEL) == "beta"
    assert tenant_of(pod_of(affinity=[["beta"], ["beta"]]), LABEL) == "beta"
    assert tenant_of(pod_of(affinity=[["beta", "gamma"]]), LABEL) is None  # two pools: no one tenant's
    assert tenant_of(pod_of(affinity=[["beta"], ["gamma"]]), LABEL) is None
    assert tenant_of(pod_of(), LABEL) is None


def test_workers_split_tenants_by_a_stable_hash_and_worker_0_keeps_the_rest() -> None:
    workers = [TenantPartition(LABEL, 3, i) for i in range(3)]
    for tenant in ("alpha", "beta", "gamma", "delta"):
        owners = [w.index for w in workers if w.owns(pod_of(tenant))]
        assert owners == [tenant_hash(tenant) % 3]
    assert [w.index for w in workers if w.owns(pod_of())] == [0]
    with pytest.raises(ValueError):
        TenantPartition(LABEL, 2, 2)
    with pytest.raises(ValueError):
        TenantPartition("", 2, 0)


def test_pods_naming_no_tenant_are_kept_off_the_pools() -> None:
    partition = TenantPartition(LABEL, 2, 0)
    shared = pod_of()
    info = partition.restrict(shared, parse_pod(shared))
    assert info.required_terms is not None and len(info.required_terms) == 1
    assert [(r.key, r.operator) for r in info.required_terms[0].expressions] == [(LABEL, "DoesNotExist")]
    # Own terms each get the requirement; a term with no requirements still matches nothing.
    own = {"metadata": {"name": "p"}, "spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}, {}]}}}}}
    terms = partition.restrict(own, parse_pod(own)).required_terms
    assert terms is not None
    assert [[(r.key, r.operator) for r in t.expressions] for t in terms] == [[("disk", "In"), (LABEL, "DoesNotExist")],
                                                                           []]
    tenant = pod_of("beta")
    assert partition.restrict(tenant, parse_pod(tenant)) == parse_pod(tenant)


def test_worker_command_lines_drop_the_parents_election_and_port() -> None:
    argv = ["--kubeconfig", "k", "--port", "10259", "--leader-elect", "--tenant-label", LABEL, "--tenant-workers", "2"]
    assert worker_argv(argv, 1) == ["--kubeconfig", "k", "--tenant-label", LABEL, "--tenant-workers", "2",
                                    "--leader-elect=false", "--port", "0", "--tenant-worker-index", "1"]
    assert worker_argv(["--port=1", "--leader-elect=true"], 3)[-1] == "3"


# -- the processes ---------------------------------------------------------------------------------------

TENANTS = ("alpha", "gamma")  # alpha -> worker 0 (the parent), gamma -> worker 1


@pytest.fixture(scope="module")
def tenants() -> Iterator[Tuple[Cluster, Fleet, Dict[str, str]]]:
    assert [tenant_hash(t) % 2 for t in TENANTS] == [0, 1]
    root = tempfile.mkdtemp(prefix="megaplane-tenants-")
    c = start_server(root, "up", ["--nodes", "6", "--scheduler=false", *FLEET_FLAGS])
    sched: Optional[Fleet] = None
    try:
        names = eventually(lambda: sorted(c.ok("get", "nodes", "-o", "name").split()) if len(
            c.ok("get", "nodes", "--no-headers").splitlines()) == 6 else None, "6 nodes")
        pools: Dict[str, str] = {}
        for i, name in enumerate(names):
            node = name.split("/", 1)[1]
            if i < 4:
                tenant = TENANTS[i % 2]
                c.ok("label", "node", node, f"{LABEL}={tenant}")
                pools[node] = tenant
            else:
                pools[node] = ""
        log_path = os.path.join(root, "scheduler.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "megaplane.cli", "scheduler", "--kubeconfig", c.kubeconfig,
                                     "--tenant-label", LABEL, "--tenant-workers", "2",
                                     "--leader-elect-resource-namespace", "default"],
                                    stdout=log, stderr=subprocess.STDOUT)
        sched = Fleet(proc, log_path)
        eventually(lambda: "tenant worker 1/2 started" in sched.output() or proc.poll() is not None,  # type: ignore[union-attr]
                   "the scheduler to lead and start its worker", timeout=60)
        if proc.poll() is not None:
            raise RuntimeError(f"megaplane scheduler exited with {proc.returncode}:\n{sched.output()}")
        yield c, sched, pools
    finally:
        if sched is not None:
            sched.stop()
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def _manifest(name: str, tenant: Optional[str]) -> str:
    body = pod_of(tenant)
    body["metadata"] = {"name": name}
    body.update({"apiVersion": "v1", "kind": "Pod"})
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
    return json.dumps(body)


def _worker_pids(parent: int) -> List[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"--tenant-worker-index" in cmdline:
            out.append(int(entry))
    return out


def _place(c: Cluster, pools: Dict[str, str], prefix: str, count: int) -> None:
    for i in range(count):
        for tenant in (*TENANTS, None):
            c.ok("apply", "-f", "-", input=_manifest(f"{prefix}-{tenant or 'shared'}-{i}", tenant))
    for i in range(count):
        for tenant in (*TENANTS, None):
            name = f"{prefix}-{tenant or 'shared'}-{i}"
            node = eventually(lambda name=name: get_pod(c, name)["spec"].get("nodeName"), f"{name} bound", timeout=60)
            assert pools[node] == (tenant or ""), (name, node)


def test_each_tenant_is_placed_in_its_pool_by_its_own_worker(tenants: Tuple[Cluster, Fleet, Dict[str, str]]) -> None:
    c, sched, pools = tenants
    assert len(_worker_pids(sched.proc.pid)) == 1  # gamma's pods can only be placed by it
    _place(c, pools, "first", 3)


def test_a_killed_worker_is_restarted_and_goes_on(tenants: Tuple[Cluster, Fleet, Dict[str, str]]) -> None:
    c, sched, pools = tenants
    (worker,) = _worker_pids(sched.proc.pid)
    os.kill(worker, signal.SIGKILL)
    eventually(lambda: [p for p in _worker_pids(sched.proc.pid) if p != worker] or None, "a new worker", timeout=60)
    _place(c, pools, "again", 2)
    assert "exited with -9; restarting" in sched.output()
