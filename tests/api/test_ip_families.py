"""IP families across the cluster: IPv6 single-stack by default, IPv4 or dual-stack when asked, as upstream.

The default cluster is covered in test_semantics.py (it runs on `megaplane
up`'s IPv6 default). Here: a dual-stack `--service-cluster-ip-range`,
where Services get the families their ipFamilyPolicy asks for, an IPv4
cluster, and the flags kube-apiserver refuses.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, Iterator

import pytest

from tests.api.conftest import Cluster, start_cluster

V4 = ipaddress.ip_network("10.96.0.0/16")
V6 = ipaddress.ip_network("fd00:10:96::/108")


@pytest.fixture(scope="module")
def dual() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="megaplane-dual-") as root:
        c = start_cluster(root, ["--service-cluster-ip-range", f"{V4},{V6}"])
        try:
            yield c
        finally:
            c.stop()


def _create(cluster: Cluster, name: str, **spec: Any) -> Dict[str, Any]:
    import kubernetes

    core = kubernetes.client.CoreV1Api(cluster.api_client())
    body = {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], "selector": {"app": name}, **spec}}
    svc = core.create_namespaced_service("default", body)
    return core.api_client.sanitize_for_serialization(svc)["spec"]


def test_dual_stack_services_get_the_families_their_policy_asks_for(dual: Cluster) -> None:
    single = _create(dual, "single")
    assert single["ipFamilyPolicy"] == "SingleStack" and single["ipFamilies"] == ["IPv4"]
    assert [ipaddress.ip_address(ip) in V4 for ip in single["clusterIPs"]] == [True]

    prefer = _create(dual, "prefer", ipFamilyPolicy="PreferDualStack")
    assert prefer["ipFamilies"] == ["IPv4", "IPv6"]
    v4, v6 = (ipaddress.ip_address(ip) for ip in prefer["clusterIPs"])
    assert v4 in V4 and v6 in V6 and prefer["clusterIP"] == prefer["clusterIPs"][0]

    v6_first = _create(dual, "v6-first", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6"])
    assert v6_first["ipFamilies"] == ["IPv6", "IPv4"]
    assert ipaddress.ip_address(v6_first["clusterIPs"][0]) in V6

    # A requested address decides its family.
    chosen = _create(dual, "chosen", clusterIP="fd00:10:96::99")
    assert chosen["ipFamilies"] == ["IPv6"] and chosen["clusterIPs"] == ["fd00:10:96::99"]


def test_the_kubernetes_service_has_the_first_family(dual: Cluster) -> None:
    out = dual.ok("get", "service", "kubernetes", "-n", "default", "-o",
                  "jsonpath={.spec.clusterIP} {.spec.ipFamilies} {.spec.ipFamilyPolicy}")
    assert out == '10.96.0.1 ["IPv4"] SingleStack', out
    assert dual.ok("get", "endpoints", "kubernetes", "-n", "default", "-o",
                   "jsonpath={.subsets[0].addresses[0].ip}") == "127.0.0.1"


def test_refused_families_change_nothing(dual: Cluster) -> None:
    out = dual.kubectl("create", "service", "clusterip", "bad-ip", "--tcp=80:80", "--clusterip=192.168.0.1")
    assert out.returncode != 0
    assert "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16" in out.stderr, out.stderr
    assert dual.kubectl("get", "service", "bad-ip").returncode != 0


def _refused(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="megaplane-badfam-") as root:
        return subprocess.run(
            [sys.executable, "-m", "megaplane.cli", "apiserver", "--port", "0", "--secure-port", "0",
             "--data-dir", os.path.join(root, "data"), *args],
            capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args,message", [
    (["--service-cluster-ip-range", "10.96.0.0/16,10.97.0.0/16"],
     "--service-cluster-ip-range[0] and --service-cluster-ip-range[1] must be of different IP family"),
    (["--service-cluster-ip-range", "fd00::/64"],
     "specified --service-cluster-ip-range is too large; for 128-bit addresses, the mask must be >= 108"),
    (["--service-cluster-ip-range", "10.96.0.0/16,fd00::/108,10.97.0.0/16"],
     "--service-cluster-ip-range can not contain more than two entries"),
    (["--advertise-address", "10.0.0.1"],
     'service IP family "fd00:10:96::/108" must match public address family "10.0.0.1"'),
])
def test_flags_kube_apiserver_refuses(args: list, message: str) -> None:
    out = _refused(*args)
    assert out.returncode == 2 and message in out.stderr, (out.returncode, out.stderr)
