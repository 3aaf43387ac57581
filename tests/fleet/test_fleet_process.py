"""`megaplane fleet` processes against `megaplane apiserver` run apart: shards, independent fleets, /metrics.

The API server runs no fleet and no controllers; every node here comes
from a fleet process over HTTPS through the server's kubeconfig.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from typing import Any, Iterator, List

import kubernetes
import pytest

from tests.api.conftest import Cluster
from tests.etcd.conftest import free_port
from tests.fleet.conftest import Fleet, eventually, server_in_tmp, start_fleet

COMMON = ["--node-lease-duration-seconds", "4", "--node-status-report-frequency", "2s",
          "--pod-startup-latency", "100ms"]


@pytest.fixture(scope="module")
def apiserver() -> Iterator[Cluster]:
    with server_in_tmp("megaplane-fleet-proc-", "apiserver") as c:
        yield c


@pytest.fixture(scope="module")
def core(apiserver: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(apiserver.api_client())


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def shards(apiserver: Cluster, metrics_port: int) -> Iterator[List[Fleet]]:
    started: List[Fleet] = []
    try:
        started.append(start_fleet(apiserver, "shard-0", ["--nodes", "4", "--node-index-start", "0",
                                                          "--metrics-bind-address", f"127.0.0.1:{metrics_port}",
                                                          *COMMON]))
        started.append(start_fleet(apiserver, "shard-1", ["--nodes", "4", "--node-index-start", "4", *COMMON]))
        yield started
    finally:
        for fleet in started:
            fleet.stop()


def _nodes(core: Any, selector: str = "") -> List[Any]:
    return core.list_node(label_selector=selector or None).items


def test_apiserver_alone_has_no_nodes(apiserver: Cluster) -> None:
    assert apiserver.ok("get", "nodes", "-o", "name").strip() == ""


def test_two_shards_hold_disjoint_nodes(apiserver: Cluster, core: Any, shards: List[Fleet]) -> None:
    rows = eventually(lambda: (r := apiserver.ok("get", "nodes", "--no-headers").splitlines()) and len(r) == 8
                      and all(x.split()[1] == "Ready" for x in r) and r, "8 Ready nodes from two shards")
    assert sorted(r.split()[0] for r in rows) == sorted(f"node-{i}" for i in range(8))
    assert "registered 4/4 nodes" in shards[0].output() and "registered 4/4 nodes" in shards[1].output()
    cidrs = [n.spec.pod_cidr for n in _nodes(core)]
    assert len(set(cidrs)) == 8
    nets = [ipaddress.ip_network(c) for c in cidrs]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    # The shards renew their own leases only: every lease has its node as holder and keeps being renewed.
    leases = kubernetes.client.CoordinationV1Api(apiserver.api_client()).list_namespaced_lease("kube-node-lease")
    assert sorted(lease.spec.holder_identity for lease in leases.items) == sorted(f"node-{i}" for i in range(8))


def test_pods_run_on_either_shard(core: Any, shards: List[Fleet]) -> None:
    for node in ("node-1", "node-6"):
        core.create_namespaced_pod("default", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"on-{node}", "annotations": {"fleet.megaplane.io/run-seconds": "0.5"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}})
    for node in ("node-1", "node-6"):
        eventually(lambda node=node: core.read_namespaced_pod(f"on-{node}", "default").status.phase == "Succeeded",
                   f"the pod on {node} to succeed")
        pod = core.read_namespaced_pod(f"on-{node}", "default")
        assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(core.read_node(node).spec.pod_cidr)


def test_an_independent_fleet_takes_pod_ranges_nobody_holds(apiserver: Cluster, core: Any,
                                                           shards: List[Fleet]) -> None:
    eventually(lambda: len(_nodes(core)) == 8, "the shards' nodes")
    other = start_fleet(apiserver, "other", ["--nodes", "3", "--node-name-prefix", "other-", *COMMON])
    try:
        eventually(lambda: len(_nodes(core)) == 11, "the other fleet's nodes")
        nets = [ipaddress.ip_network(n.spec.pod_cidr) for n in _nodes(core)]
        assert len(nets) == 11
        assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    finally:
        other.stop()


def test_lease_written_by_someone_else_is_reread_not_overwritten(apiserver: Cluster, shards: List[Fleet],
                                                                 metrics_port: int) -> None:
    coordination = kubernetes.client.CoordinationV1Api(apiserver.api_client())
    before = coordination.read_namespaced_lease("node-2", "kube-node-lease")
    # A foreign write moves the resourceVersion: the fleet's next PUT conflicts, re-reads, then renews.
    apiserver.ok("annotate", "lease", "-n", "kube-node-lease", "node-2", "someone/else=was-here")
    eventually(lambda: coordination.read_namespaced_lease("node-2", "kube-node-lease").spec.renew_time
               > before.spec.renew_time and int(_metric(metrics_port, "megaplane_fleet_lease_renew_conflicts_total")) >= 1,
               "a conflict counted and the lease renewed after it")


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def _metric(port: int, name: str, labels: str = "") -> float:
    want = f"{name}{{{labels}}}" if labels else name
    for line in _scrape(port).splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{want} not in /metrics")


def test_fleet_metrics(shards: List[Fleet], metrics_port: int) -> None:
    eventually(lambda: _metric(metrics_port, "megaplane_fleet_lease_renew_duration_seconds_count") > 0,
               "renewals in the histogram")
    assert _metric(metrics_port, "megaplane_fleet_nodes", 'state="ready"') == 4
    assert _metric(metrics_port, "megaplane_fleet_nodes", 'state="stopped"') == 0
    assert _metric(metrics_port, "megaplane_fleet_lease_renew_failures_total") == 0
    assert _metric(metrics_port, "megaplane_fleet_pod_transitions_total", 'to="Succeeded"') >= 1
    text = _scrape(metrics_port)
    assert 'megaplane_fleet_lease_renew_duration_seconds_bucket{le="+Inf"}' in text
    # Every successful renewal is also in the lateness histogram, so a window's percentiles come from two scrapes.
    eventually(lambda: _metric(metrics_port, "megaplane_fleet_lease_renew_lateness_histogram_seconds_count") > 0,
               "renewals in the lateness histogram")
    assert 'megaplane_fleet_lease_renew_lateness_histogram_seconds_bucket{le="1.0"}' in text


def test_bad_flags_are_refused(apiserver: Cluster) -> None:
    import subprocess
    import sys

    for flags, message in ((["--nodes", "-1"], "--nodes"), (["--pod-cidr", "fd00::/120"], "--node-cidr-mask-size"),
                           (["--node-taints", "a=b:Sometimes"], "--node-taints"),
                           (["--node-extended-resource", "nic=4"], "--node-extended-resource")):
        out = subprocess.run([sys.executable, "-m", "megaplane.cli", "fleet", "--kubeconfig", apiserver.kubeconfig,
                              *flags], capture_output=True, text=True, timeout=30)
        assert out.returncode == 2 and message in out.stderr, (flags, out.stderr)
