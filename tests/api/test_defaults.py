"""Defaulting (megaplane.apiserver.schema.defaults) against upstream 1.32 and the official client.

Every served resource is taken as a client sends it (the official Python
client's `sanitize_for_serialization` of a model, or kubectl's JSON for
`kubectl create ...`), defaulted, given the metadata the server adds, and
decoded by `kubernetes.client.ApiClient().deserialize` with the model name
and content type the generated API methods use: the same strict pydantic
validation a response goes through. The defaults asserted are the values
kube-apiserver 1.32 returns for the same input.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Dict

import pytest
from kubernetes import client as k8s

from megaplane.apiserver.schema.defaults import apply_defaults, fill_zero_values, image_pull_policy

Obj = Dict[str, Any]

API = k8s.ApiClient()


def sent_by_client(model: Any) -> Obj:
    """The JSON body the official client sends for a model."""
    return json.loads(json.dumps(API.sanitize_for_serialization(model)))


def as_returned(obj: Obj, namespace: str = "default") -> Obj:
    """The metadata the server adds before returning an object."""
    meta = obj.setdefault("metadata", {})
    meta["uid"] = "0f4a1f7e-0000-4000-8000-000000000001"
    meta["resourceVersion"] = "42"
    meta["creationTimestamp"] = "2026-11-22T10:00:00Z"
    if namespace:
        meta.setdefault("namespace", namespace)
    return obj


def client_decodes(obj: Obj, model: str) -> Any:
    """Decode a response body as the client's generated API methods do
    (ApiClient.response_deserialize -> deserialize(text, type, content_type))."""
    return API.deserialize(json.dumps(obj), model, "application/json")


def defaulted(group: str, resource: str, obj: Obj) -> Obj:
    apply_defaults(group, resource, obj)
    return obj


# --------------------------------------------------------------------------
# The decode path itself is strict (so the tests below mean something)
# --------------------------------------------------------------------------


def test_client_refuses_missing_required_fields():
    # What upstream never returns but a careless server might. (pydantic's
    # ValidationError is a ValueError, as the older clients' errors were.)
    with pytest.raises(ValueError):
        client_decodes({"metadata": {"name": "rs"}, "spec": {"selector": {}}, "status": {}}, "V1ReplicaSet")
    with pytest.raises(ValueError):
        client_decodes({"metadata": {"name": "n"}, "status": {"nodeInfo": {"kubeletVersion": "v1.32.0"}}}, "V1Node")
    if hasattr(k8s.V1ServicePort, "model_validate"):  # 37.x: StrictInt, so a quoted number is not an int
        with pytest.raises(ValueError):
            client_decodes({"metadata": {"name": "s"}, "spec": {"ports": [{"port": "80"}]}}, "V1Service")


# --------------------------------------------------------------------------
# core/v1
# --------------------------------------------------------------------------


def test_pod_from_python_client():
    pod = sent_by_client(
        k8s.V1Pod(
            api_version="v1",
            kind="Pod",
            metadata=k8s.V1ObjectMeta(name="web"),
            spec=k8s.V1PodSpec(
                containers=[
                    k8s.V1Container(
                        name="web",
                        image="nginx:1.27",
                        ports=[k8s.V1ContainerPort(container_port=80)],
                        readiness_probe=k8s.V1Probe(http_get=k8s.V1HTTPGetAction(port="http")),
                        liveness_probe=k8s.V1Probe(grpc=k8s.V1GRPCAction(port=9000)),
                        env=[
                            k8s.V1EnvVar(
                                name="NODE",
                                value_from=k8s.V1EnvVarSource(
                                    field_ref=k8s.V1ObjectFieldSelector(field_path="spec.nodeName")
                                ),
                            )
                        ],
                        resources=k8s.V1ResourceRequirements(limits={"cpu": "500m", "memory": "128Mi"}),
                    )
                ],
                volumes=[
                    k8s.V1Volume(name="scratch"),
                    k8s.V1Volume(name="cfg", config_map=k8s.V1ConfigMapVolumeSource(name="cfg")),
                    k8s.V1Volume(name="sec", secret=k8s.V1SecretVolumeSource(secret_name="sec")),
                ],
            ),
        )
    )
    defaulted("", "pods", pod)
    as_returned(pod)

    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c["readinessProbe"] == {
        "httpGet": {"port": "http", "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["livenessProbe"]["grpc"] == {"port": 9000, "service": ""}
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "spec.nodeName", "apiVersion": "v1"}
    # Requests default to limits (on pods, not on templates).
    assert c["resources"] == {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "500m", "memory": "128Mi"}}
    assert spec["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 420}},
    ]

    decoded = client_decodes(pod, "V1Pod")
    assert decoded.spec.containers[0].readiness_probe.http_get.port == "http"
    assert decoded.spec.containers[0].ports[0].protocol == "TCP"
    assert decoded.spec.enable_service_links is True


def test_pod_from_kubectl_run():
    # `kubectl run nginx --image=nginx` (kubectl 1.32 request body).
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "nginx", "creationTimestamp": None, "labels": {"run": "nginx"}},
        "spec": {
            "containers": [{"name": "nginx", "image": "nginx", "resources": {}}],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
        },
        "status": {},
    }
    defaulted("", "pods", pod)
    c = pod["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "Always"  # untagged means :latest
    assert c["resources"] == {}  # no limits, so no requests appear
    assert client_decodes(as_returned(pod), "V1Pod").spec.scheduler_name == "default-scheduler"


def test_pod_host_network_ports_and_init_containers():
    pod = {
        "metadata": {"name": "agent"},
        "spec": {
            "hostNetwork": True,
            "initContainers": [{"name": "init", "image": "busybox:latest", "ports": [{"containerPort": 81}]}],
            "containers": [{"name": "agent", "image": "agent:v2", "ports": [{"containerPort": 9100, "hostPort": 9101}]}],
        },
    }
    defaulted("", "pods", pod)
    assert pod["spec"]["initContainers"][0]["ports"] == [{"containerPort": 81, "hostPort": 81, "protocol": "TCP"}]
    assert pod["spec"]["initContainers"][0]["imagePullPolicy"] == "Always"
    assert pod["spec"]["containers"][0]["ports"] == [{"containerPort": 9100, "hostPort": 9101, "protocol": "TCP"}]
    client_decodes(as_returned(pod), "V1Pod")


def test_pod_container_statuses_get_go_zero_values():
    # A status writer that leaves out fields Go always writes: the client needs them.
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "c", "state": {"terminated": {"reason": "Error"}}}],
        },
    }
    defaulted("", "pods", pod)
    cs = pod["status"]["containerStatuses"][0]
    assert cs == {
        "name": "c",
        "state": {"terminated": {"reason": "Error", "exitCode": 0}},
        "ready": False,
        "restartCount": 0,
        "image": "",
        "imageID": "",
        "lastState": {},
    }
    decoded = client_decodes(as_returned(pod), "V1Pod")
    assert decoded.status.container_statuses[0].restart_count == 0


@pytest.mark.parametrize(
    "image, policy",
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("docker.io/library/nginx", "Always"),
        ("localhost:5000/app", "Always"),
        ("localhost:5000/app:v1", "IfNotPresent"),
        ("registry.example.com:5000/team/app@sha256:" + "a" * 64, "IfNotPresent"),
        ("app:latest@sha256:" + "b" * 64, "Always"),
        ("[::1]:5000/app", "Always"),
        ("NGINX", "IfNotPresent"),  # not a valid reference: ParseImageName fails
        ("", "IfNotPresent"),
    ],
)
def test_image_pull_policy(image, policy):
    assert image_pull_policy(image) == policy


def test_explicit_values_are_kept():
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "enableServiceLinks": False,
            "securityContext": {"runAsUser": 1000},
            "containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Never"}],
        },
    }
    defaulted("", "pods", pod)
    spec = pod["spec"]
    assert (spec["restartPolicy"], spec["terminationGracePeriodSeconds"], spec["enableServiceLinks"]) == ("Never", 0, False)
    assert spec["securityContext"] == {"runAsUser": 1000}
    assert spec["containers"][0]["imagePullPolicy"] == "Never"
    # Defaulting twice changes nothing.
    again = copy.deepcopy(pod)
    defaulted("", "pods", again)
    assert again == pod


def test_service_from_kubectl_and_client():
    # `kubectl create service clusterip my-svc --tcp=80:8080`
    svc = {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "my-svc", "creationTimestamp": None, "labels": {"app": "my-svc"}},
        "spec": {
            "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            "selector": {"app": "my-svc"},
            "type": "ClusterIP",
        },
        "status": {"loadBalancer": {}},
    }
    defaulted("", "services", svc)
    assert svc["spec"]["sessionAffinity"] == "None"
    assert svc["spec"]["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in svc["spec"]
    assert "clusterIP" not in svc["spec"]  # allocation is the server's job
    client_decodes(as_returned(svc), "V1Service")

    svc = sent_by_client(
        k8s.V1Service(
            metadata=k8s.V1ObjectMeta(name="web"),
            spec=k8s.V1ServiceSpec(
                selector={"app": "web"},
                ports=[
                    k8s.V1ServicePort(name="http", port=80),
                    k8s.V1ServicePort(name="admin", port=8443, target_port="admin"),
                    k8s.V1ServicePort(name="dns", port=53, protocol="UDP", target_port=5353),
                ],
            ),
        )
    )
    defaulted("", "services", svc)
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert [(p["protocol"], p["targetPort"]) for p in spec["ports"]] == [("TCP", 80), ("TCP", "admin"), ("UDP", 5353)]
    decoded = client_decodes(as_returned(svc), "V1Service")
    # int-or-string survives as the right Python type
    assert [p.target_port for p in decoded.spec.ports] == [80, "admin", 5353]


def test_service_load_balancer_and_affinity():
    svc = {
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 443, "targetPort": 0}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]}},
    }
    defaulted("", "services", svc)
    spec = svc["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["allocateLoadBalancerNodePorts"] is True
    assert spec["ports"] == [{"port": 443, "targetPort": 443, "protocol": "TCP"}]
    assert svc["status"]["loadBalancer"]["ingress"] == [
        {"ip": "203.0.113.7", "ipMode": "VIP"},
        {"hostname": "lb.example.com"},
    ]
    client_decodes(as_returned(svc), "V1Service")

    # ExternalName services get no traffic policies.
    ext = {"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    defaulted("", "services", ext)
    assert ext["spec"] == {"type": "ExternalName", "externalName": "db.example.com", "sessionAffinity": "None"}
    client_decodes(as_returned(ext), "V1Service")


def test_namespace():
    ns = {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "team-a", "creationTimestamp": None}, "spec": {}, "status": {}}
    defaulted("", "namespaces", ns)
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert ns["status"] == {}  # phase Active is the server's (strategy), not a default here
    client_decodes(as_returned(ns, namespace=""), "V1Namespace")


def test_node_registered_by_a_minimal_kubelet():
    node = sent_by_client(
        k8s.V1Node(
            metadata=k8s.V1ObjectMeta(name="node-1", labels={"kubernetes.io/hostname": "node-1"}),
            status=k8s.V1NodeStatus(
                capacity={"cpu": "4", "memory": "16Gi", "pods": "110"},
                conditions=[k8s.V1NodeCondition(type="Ready", status="True")],
            ),
        )
    )
    defaulted("", "nodes", node)
    status = node["status"]
    assert status["allocatable"] == {"cpu": "4", "memory": "16Gi", "pods": "110"}
    assert status["allocatable"] is not status["capacity"]
    # Go writes these structs even when empty; the client requires their fields.
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 0}}
    assert status["nodeInfo"]["kubeletVersion"] == "" and len(status["nodeInfo"]) == 10
    decoded = client_decodes(as_returned(node, namespace=""), "V1Node")
    assert decoded.status.daemon_endpoints.kubelet_endpoint.port == 0

    # A kubelet's own nodeInfo is kept; only the missing fields are filled.
    partial = {"metadata": {"name": "n2"}, "status": {"nodeInfo": {"kubeletVersion": "v1.32.0"}, "allocatable": {}}}
    defaulted("", "nodes", partial)
    assert partial["status"]["nodeInfo"]["kubeletVersion"] == "v1.32.0"
    assert partial["status"]["allocatable"] == {}
    client_decodes(as_returned(partial, namespace=""), "V1Node")


def test_endpoints():
    ep = sent_by_client(
        k8s.V1Endpoints(
            metadata=k8s.V1ObjectMeta(name="web"),
            subsets=[
                k8s.V1EndpointSubset(
                    addresses=[k8s.V1EndpointAddress(ip="10.0.0.5")],
                    ports=[k8s.CoreV1EndpointPort(port=8080, name="http")],
                )
            ],
        )
    )
    defaulted("", "endpoints", ep)
    assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    client_decodes(as_returned(ep), "V1Endpoints")


def test_configmap_and_serviceaccount_have_no_visible_defaults():
    cm = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c", "creationTimestamp": None}}
    before = copy.deepcopy(cm)
    defaulted("", "configmaps", cm)
    assert cm == before  # Go's empty data map is omitted on the wire
    client_decodes(as_returned(cm), "V1ConfigMap")

    sa = {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "builder", "creationTimestamp": None}}
    defaulted("", "serviceaccounts", sa)
    client_decodes(as_returned(sa), "V1ServiceAccount")


def test_secret():
    # `kubectl create secret generic s --from-literal=user=admin`
    secret = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s", "creationTimestamp": None}, "data": {"user": "YWRtaW4="}}
    defaulted("", "secrets", secret)
    assert secret["type"] == "Opaque"
    client_decodes(as_returned(secret), "V1Secret")

    # stringData is folded into data (and overrides it), then dropped.
    secret = sent_by_client(
        k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name="creds"),
            type="kubernetes.io/basic-auth",
            data={"username": "b2xk"},
            string_data={"username": "admin", "password": "s3cr3t"},
        )
    )
    defaulted("", "secrets", secret)
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert secret["data"] == {"username": "YWRtaW4=", "password": "czNjcjN0"}
    assert "stringData" not in secret
    assert client_decodes(as_returned(secret), "V1Secret").string_data is None


def test_core_event():
    event = sent_by_client(
        k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(name="web.1801a"),
            involved_object=k8s.V1ObjectReference(kind="Pod", name="web", namespace="default"),
            reason="Scheduled",
            message="Successfully assigned default/web to node-1",
            type="Normal",
            source=k8s.V1EventSource(component="default-scheduler"),
            first_timestamp="2026-11-22T10:00:00Z",
            count=1,
        )
    )
    before = copy.deepcopy(event)
    defaulted("", "events", event)
    assert event == before
    decoded = client_decodes(as_returned(event), "CoreV1Event")
    assert decoded.involved_object.name == "web"


def test_events_k8s_io_event():
    event = sent_by_client(
        k8s.EventsV1Event(
            metadata=k8s.V1ObjectMeta(name="web.1801b"),
            event_time="2026-11-22T10:00:00.000000Z",
            reporting_controller="default-scheduler",
            reporting_instance="default-scheduler-node-1",
            action="Binding",
            reason="Scheduled",
            regarding=k8s.V1ObjectReference(kind="Pod", name="web", namespace="default"),
            note="Successfully assigned default/web to node-1",
            type="Normal",
        )
    )
    defaulted("events.k8s.io", "events", event)
    decoded = client_decodes(as_returned(event), "EventsV1Event")
    assert decoded.note.startswith("Successfully")


# --------------------------------------------------------------------------
# coordination, apps, batch, discovery
# --------------------------------------------------------------------------


def test_lease():
    lease = sent_by_client(
        k8s.V1Lease(
            metadata=k8s.V1ObjectMeta(name="node-1", namespace="kube-node-lease"),
            spec=k8s.V1LeaseSpec(holder_identity="node-1", lease_duration_seconds=40),
        )
    )
    before = copy.deepcopy(lease)
    defaulted("coordination.k8s.io", "leases", lease)
    assert lease == before
    client_decodes(as_returned(lease), "V1Lease")


def _template(labels: Obj, image: str = "nginx") -> Any:
    return k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels=labels),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="app", image=image, resources=k8s.V1ResourceRequirements(limits={"cpu": "1"}))]),
    )


def _assert_template_defaults(template_spec: Obj) -> None:
    assert template_spec["restartPolicy"] == "Always"
    assert template_spec["dnsPolicy"] == "ClusterFirst"
    assert template_spec["schedulerName"] == "default-scheduler"
    assert template_spec["terminationGracePeriodSeconds"] == 30
    assert template_spec["securityContext"] == {}
    # Pod-only defaults stay out of templates.
    assert "enableServiceLinks" not in template_spec
    assert "requests" not in template_spec["containers"][0]["resources"]
    assert template_spec["containers"][0]["terminationMessagePolicy"] == "File"


def test_deployment_from_kubectl_create():
    # `kubectl create deployment nginx --image=nginx`
    deploy = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "nginx", "creationTimestamp": None, "labels": {"app": "nginx"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]},
            },
            "strategy": {},
        },
        "status": {},
    }
    defaulted("apps", "deployments", deploy)
    spec = deploy["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert deploy["status"] == {}
    decoded = client_decodes(as_returned(deploy), "V1Deployment")
    assert decoded.spec.strategy.rolling_update.max_surge == "25%"
    assert decoded.spec.strategy.rolling_update.max_unavailable == "25%"


def test_deployment_from_python_client():
    deploy = sent_by_client(
        k8s.V1Deployment(
            metadata=k8s.V1ObjectMeta(name="web"),
            spec=k8s.V1DeploymentSpec(
                selector=k8s.V1LabelSelector(match_labels={"app": "web"}),
                template=_template({"app": "web"}),
                strategy=k8s.V1DeploymentStrategy(rolling_update=k8s.V1RollingUpdateDeployment(max_surge=2)),
            ),
        )
    )
    defaulted("apps", "deployments", deploy)
    spec = deploy["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "25%"}}
    _assert_template_defaults(spec["template"]["spec"])
    decoded = client_decodes(as_returned(deploy), "V1Deployment")
    assert decoded.spec.strategy.rolling_update.max_surge == 2

    # Recreate gets no rollingUpdate.
    recreate = {"metadata": {"name": "r"}, "spec": {"strategy": {"type": "Recreate"}, "selector": {}, "template": {}}}
    defaulted("apps", "deployments", recreate)
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_replicaset():
    rs = sent_by_client(
        k8s.V1ReplicaSet(
            metadata=k8s.V1ObjectMeta(name="web-5d4f"),
            spec=k8s.V1ReplicaSetSpec(selector=k8s.V1LabelSelector(match_labels={"app": "web"}), template=_template({"app": "web"})),
        )
    )
    defaulted("apps", "replicasets", rs)
    assert rs["spec"]["replicas"] == 1
    _assert_template_defaults(rs["spec"]["template"]["spec"])
    # Go always writes status.replicas; the client requires it.
    assert rs["status"] == {"replicas": 0}
    assert client_decodes(as_returned(rs), "V1ReplicaSet").status.replicas == 0


def test_fill_zero_values_after_a_status_reset():
    # A create strategy that empties status after defaulting can restore the
    # always-present counters with fill_zero_values.
    rs = {"metadata": {"name": "rs"}, "spec": {"selector": {}}, "status": {}}
    fill_zero_values("apps", "replicasets", rs)
    assert client_decodes(as_returned(rs), "V1ReplicaSet").status.replicas == 0


def test_daemonset():
    ds = sent_by_client(
        k8s.V1DaemonSet(
            metadata=k8s.V1ObjectMeta(name="agent"),
            spec=k8s.V1DaemonSetSpec(selector=k8s.V1LabelSelector(match_labels={"app": "agent"}), template=_template({"app": "agent"})),
        )
    )
    defaulted("apps", "daemonsets", ds)
    spec = ds["spec"]
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert spec["revisionHistoryLimit"] == 10
    _assert_template_defaults(spec["template"]["spec"])
    assert ds["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}
    decoded = client_decodes(as_returned(ds), "V1DaemonSet")
    assert decoded.spec.update_strategy.rolling_update.max_unavailable == 1

    on_delete = {"metadata": {"name": "d"}, "spec": {"updateStrategy": {"type": "OnDelete"}}}
    defaulted("apps", "daemonsets", on_delete)
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_statefulset():
    sts = sent_by_client(
        k8s.V1StatefulSet(
            metadata=k8s.V1ObjectMeta(name="db"),
            spec=k8s.V1StatefulSetSpec(
                service_name="db",
                selector=k8s.V1LabelSelector(match_labels={"app": "db"}),
                template=_template({"app": "db"}, image="postgres:17"),
                volume_claim_templates=[
                    k8s.V1PersistentVolumeClaim(
                        metadata=k8s.V1ObjectMeta(name="data"),
                        spec=k8s.V1PersistentVolumeClaimSpec(
                            access_modes=["ReadWriteOnce"],
                            resources=k8s.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
                        ),
                    )
                ],
            ),
        )
    )
    defaulted("apps", "statefulsets", sts)
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["revisionHistoryLimit"] == 10
    claim = spec["volumeClaimTemplates"][0]
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert claim["status"] == {"phase": "Pending"}
    _assert_template_defaults(spec["template"]["spec"])
    assert spec["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert sts["status"] == {"replicas": 0, "availableReplicas": 0}
    client_decodes(as_returned(sts), "V1StatefulSet")

    # An explicit RollingUpdate type without parameters stays without them.
    explicit = {"metadata": {"name": "x"}, "spec": {"updateStrategy": {"type": "RollingUpdate"}}}
    defaulted("apps", "statefulsets", explicit)
    assert explicit["spec"]["updateStrategy"] == {"type": "RollingUpdate"}


def test_job_from_kubectl_create():
    # `kubectl create job pi --image=perl:5.34`
    job = {
        "kind": "Job",
        "apiVersion": "batch/v1",
        "metadata": {"name": "pi", "creationTimestamp": None},
        "spec": {
            "template": {
                "metadata": {"creationTimestamp": None},
                "spec": {"containers": [{"name": "pi", "image": "perl:5.34", "resources": {}}], "restartPolicy": "Never"},
            }
        },
        "status": {},
    }
    defaulted("batch", "jobs", job)
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["manualSelector"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert "labels" not in job["metadata"]
    decoded = client_decodes(as_returned(job), "V1Job")
    assert decoded.spec.completion_mode == "NonIndexed"


def test_job_variants():
    job = sent_by_client(
        k8s.V1Job(
            metadata=k8s.V1ObjectMeta(name="work"),
            spec=k8s.V1JobSpec(
                parallelism=4,
                backoff_limit_per_index=2,
                completion_mode="Indexed",
                completions=8,
                pod_failure_policy=k8s.V1PodFailurePolicy(
                    rules=[
                        k8s.V1PodFailurePolicyRule(
                            action="Ignore",
                            on_pod_conditions=[k8s.V1PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget")],
                        )
                    ]
                ),
                template=_template({"job": "work"}),
            ),
        )
    )
    job["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    defaulted("batch", "jobs", job)
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"]) == (8, 4)
    assert spec["backoffLimit"] == 2147483647  # per-index limits make the job-wide one unlimited
    assert spec["podReplacementPolicy"] == "Failed"  # with a pod failure policy
    assert spec["podFailurePolicy"]["rules"][0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert job["metadata"]["labels"] == {"job": "work"}  # copied from the template
    client_decodes(as_returned(job), "V1Job")

    # Parallelism alone leaves completions unset.
    only_parallel = {"metadata": {"name": "p"}, "spec": {"parallelism": 3, "template": {}}}
    defaulted("batch", "jobs", only_parallel)
    assert "completions" not in only_parallel["spec"] and only_parallel["spec"]["parallelism"] == 3


def test_endpointslice():
    eps = sent_by_client(
        k8s.V1EndpointSlice(
            metadata=k8s.V1ObjectMeta(name="web-abc12", labels={"kubernetes.io/service-name": "web"}),
            address_type="IPv4",
            endpoints=[k8s.V1Endpoint(addresses=["10.0.0.5"], conditions=k8s.V1EndpointConditions(ready=True))],
            ports=[k8s.DiscoveryV1EndpointPort(port=8080)],
        )
    )
    defaulted("discovery.k8s.io", "endpointslices", eps)
    assert eps["ports"] == [{"port": 8080, "name": "", "protocol": "TCP"}]
    decoded = client_decodes(as_returned(eps), "V1EndpointSlice")
    assert decoded.ports[0].protocol == "TCP"


# --------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "group, resource",
    [
        ("", "pods"),
        ("", "services"),
        ("", "nodes"),
        ("", "secrets"),
        ("", "namespaces"),
        ("", "endpoints"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("discovery.k8s.io", "endpointslices"),
        ("example.com", "widgets"),
    ],
)
def test_malformed_objects_do_not_raise(group, resource):
    # Defaulting runs before validation: it must leave nonsense for validation.
    for body in (
        {},
        {"metadata": None, "spec": None, "status": None},
        {"metadata": [], "spec": "x", "status": 3},
        {"spec": {"template": {"spec": {"containers": [None, 1, {"ports": "x", "image": 5}]}}, "ports": [1], "strategy": []}},
        {"spec": {"containers": "x", "volumes": [{"name": "v"}, "bad"], "ports": [{"port": "80"}]}, "stringData": {"a": 1}},
    ):
        apply_defaults(group, resource, body)
