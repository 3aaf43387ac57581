"""LimitRange end to end: defaults written into created pods, min/max/ratio refused with upstream's messages."""

from __future__ import annotations

from tests.auth.conftest import Tenancy, pod

LIMITS = """
apiVersion: v1
kind: LimitRange
metadata: {name: limits}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 100m}
    max: {cpu: "1"}
    min: {cpu: 50m}
    maxLimitRequestRatio: {cpu: "5"}
  - type: Pod
    max: {memory: 1Gi}
"""


def test_defaults_and_limits(tenancy: Tenancy) -> None:
    t = tenancy
    ns = t.namespace("limits")
    t.ok("-n", ns, "apply", "-f", "-", input=LIMITS)
    # The LimitRange's own defaults (SetDefaults_LimitRangeItem): defaultRequest memory from default.
    lr = t.get(f"/api/v1/namespaces/{ns}/limitranges/limits")
    assert lr["spec"]["limits"][0]["defaultRequest"] == {"cpu": "100m", "memory": "256Mi"}
    table = t.ok("-n", ns, "get", "limits").splitlines()
    assert table[0].split() == ["NAME", "CREATED", "AT"] and table[1].split() == [
        "limits", lr["metadata"]["creationTimestamp"]]

    t.ok("-n", ns, "run", "plain", "--image=nginx", "--restart=Never")
    created = t.get(f"/api/v1/namespaces/{ns}/pods/plain")
    assert created["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}}
    assert created["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container plain; cpu, memory limit for container plain")

    # A container's own limit is its request (the pod defaulter's rule, before the LimitRange's defaultRequest).
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("own", limits={"cpu": "200m"}))
    assert code == 201, body
    assert body["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "200m", "memory": "256Mi"}

    for spec_pod, message in (
        (pod("big", limits={"cpu": "2"}), "maximum cpu usage per Container is 1, but limit is 2"),
        (pod("tiny", requests={"cpu": "10m"}, limits={"cpu": "40m"}), "minimum cpu usage per Container is 50m, but request is 10m"),
        (pod("ratio", requests={"cpu": "60m"}, limits={"cpu": "600m"}),
         "cpu max limit to request ratio per Container is 5, but provided ratio is 10.000000"),
        (pod("fat", limits={"memory": "2Gi"}), "maximum memory usage per Pod is 1Gi, but limit is 2Gi"),
        (pod("both", requests={"cpu": "10m"}, limits={"cpu": "2"}),
         "[minimum cpu usage per Container is 50m, but request is 10m, maximum cpu usage per Container is 1, "
         "but limit is 2, cpu max limit to request ratio per Container is 5, but provided ratio is 200.000000]"),
    ):
        name = spec_pod["metadata"]["name"]
        code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods", spec_pod)
        assert code == 403 and body["reason"] == "Forbidden", body
        assert body["message"] == f'pods "{name}" is forbidden: {message}'
    out = t.kubectl("-n", ns, "run", "huge", "--image=nginx", "--restart=Never",
                    '--overrides={"spec":{"containers":[{"name":"huge","image":"nginx",'
                    '"resources":{"limits":{"cpu":"3"}}}]}}')
    assert out.returncode != 0
    assert ('Error from server (Forbidden): pods "huge" is forbidden: maximum cpu usage per Container is 1, '
            "but limit is 3") in out.stderr


def test_invalid_limit_ranges(tenancy: Tenancy) -> None:
    t = tenancy
    ns = t.namespace("badlimits")
    for item, message in (
        ({"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}},
         'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1'),
        ({"type": "Pod", "default": {"cpu": "1"}},
         "spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"),
    ):
        code, body = t.request("POST", f"/api/v1/namespaces/{ns}/limitranges", {
            "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"}, "spec": {"limits": [item]}})
        assert code == 422, body
        assert message in body["message"], body
