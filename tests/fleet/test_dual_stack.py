"""A dual-stack cluster: `--pod-cidr` and `--service-cluster-ip-range` of both families, IPv4 first.

Each node holds a range of each family (spec.podCIDRs) and an InternalIP
in each; a pod gets an address of each family from its node's ranges,
the primary family first, as kubelet reports dual-stack pods; Services
asking for dual-stack get a cluster IP of each family.
"""

from __future__ import annotations

import ipaddress
import shutil
import tempfile
from typing import Any, Iterator

import kubernetes
import pytest

from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, start_server

POD_V4, POD_V6 = ipaddress.ip_network("10.244.0.0/16"), ipaddress.ip_network("fd00:10:244::/56")
SVC_V4, SVC_V6 = ipaddress.ip_network("10.96.0.0/16"), ipaddress.ip_network("fd00:10:96::/108")


@pytest.fixture(scope="module")
def dual() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-fleet-dual-")
    c = start_server(root, "up", [
        "--nodes", "2", "--pod-cidr", f"{POD_V4},{POD_V6}", "--service-cluster-ip-range", f"{SVC_V4},{SVC_V6}",
        "--pod-startup-latency", "100ms", "--scheduler=false", "--controllers", "namespace,serviceaccount"])
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def core(dual: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(dual.api_client())


def test_nodes_hold_a_range_and_an_address_of_each_family(core: Any) -> None:
    node = eventually(lambda: (n := core.read_node("node-1")) and n, "node-1 to register")
    v4, v6 = (ipaddress.ip_network(c) for c in node.spec.pod_cidrs)
    assert node.spec.pod_cidr == str(v4)
    assert v4.subnet_of(POD_V4) and v4.prefixlen == 24 and v6.subnet_of(POD_V6) and v6.prefixlen == 64
    internal = [ipaddress.ip_address(a.address) for a in node.status.addresses if a.type == "InternalIP"]
    assert [ip in net for ip, net in zip(internal, (v4, v6))] == [True, True]


def test_pods_get_an_address_of_each_family_from_their_node(core: Any) -> None:
    core.create_namespaced_pod("default", {"metadata": {"name": "dual"}, "spec": {
        "nodeName": "node-0", "containers": [{"name": "c", "image": "nginx"}]}})
    pod = eventually(lambda: (p := core.read_namespaced_pod("dual", "default")).status.phase == "Running" and p,
                     "the pod to run")
    node = core.read_node("node-0")
    ips = [ipaddress.ip_address(entry.ip) for entry in pod.status.pod_ips]
    assert [ip in ipaddress.ip_network(c) for ip, c in zip(ips, node.spec.pod_cidrs)] == [True, True]
    assert pod.status.pod_ip == str(ips[0]) and ips[0].version == 4
    assert [h.ip for h in pod.status.host_ips] == [a.address for a in node.status.addresses if a.type == "InternalIP"]


def test_dual_stack_services_get_an_address_of_each_family(core: Any) -> None:
    svc = core.create_namespaced_service("default", {"metadata": {"name": "dual"}, "spec": {
        "ipFamilyPolicy": "PreferDualStack", "selector": {"app": "dual"}, "ports": [{"port": 80}]}})
    v4, v6 = (ipaddress.ip_address(ip) for ip in svc.spec.cluster_ips)
    assert svc.spec.ip_families == ["IPv4", "IPv6"] and v4 in SVC_V4 and v6 in SVC_V6


@pytest.mark.parametrize("flags,message", [
    (["--pod-cidr", "10.244.0.0/16,10.245.0.0/16"], "needs one IPv4 and one IPv6 range"),
    (["--pod-cidr", "10.244.0.0/16,fd00::/56", "--node-cidr-mask-size", "24"],
     "usage of --node-cidr-mask-size is not allowed with dual-stack clusters"),
    (["--pod-cidr", "10.244.0.0/24,fd00::/56", "--nodes", "2"], "holds 1 node /24 ranges, too few for node index 1"),
])
def test_inconsistent_pod_ranges_are_refused(flags: list, message: str) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "megaplane.cli", "fleet", "--kubeconfig", "/nonexistent", *flags],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and message in out.stderr, (out.returncode, out.stderr)
