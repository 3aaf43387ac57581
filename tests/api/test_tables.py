"""Server-side printing (megaplane.apiserver.printers) against kube-apiserver 1.32's printers.

Expected cells are what upstream's printers (pkg/printers/internalversion)
produce for the same objects when the server prints them (always wide);
column lists are upstream's TableColumnDefinitions.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List

import pytest

from megaplane.apiserver.printers import (
    age,
    column_definitions,
    format_label_selector,
    format_labels,
    human_duration,
    label_selector_string,
    row_cells,
)

Obj = Dict[str, Any]

NOW = datetime.datetime(2026, 11, 22, 10, 5, 0, tzinfo=datetime.timezone.utc)
CREATED = "2026-11-22T10:00:00Z"  # five minutes before NOW


def ago(seconds: int) -> str:
    return (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, **extra: Any) -> Obj:
    return {"name": name, "namespace": "default", "creationTimestamp": CREATED, **extra}


def columns(group: str, resource: str) -> List[tuple]:
    return [(c["name"], c["type"], c["priority"]) for c in column_definitions(group, resource)]


# --------------------------------------------------------------------------
# Shared formatting
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, text",
    [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1.5, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (123, "2m3s"),
        (599, "9m59s"),
        (600, "10m"),
        (10799, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 59, "3h"),
        (7 * 3600 + 59 * 60, "7h59m"),
        (8 * 3600, "8h"),
        (47 * 3600 + 3599, "47h"),
        (48 * 3600, "2d"),
        (4 * 86400, "4d"),
        (4 * 86400 + 5 * 3600, "4d5h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (740 * 86400, "2y10d"),
        (8 * 365 * 86400, "8y"),
        (20 * 365 * 86400, "20y"),
    ],
)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_age():
    assert age(CREATED, NOW) == "5m"
    assert age("2026-11-22T10:04:57.123456Z", NOW) == "2s"
    assert age(None, NOW) == "<unknown>"
    assert age("yesterday", NOW) == "<unknown>"
    # A naive `now` is UTC.
    assert age(CREATED, NOW.replace(tzinfo=None)) == "5m"


def test_labels_and_selectors():
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == "<none>"
    assert format_labels(None) == "<none>"
    selector = {
        "matchLabels": {"tier": "web", "app": "shop"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "canary"]},
            {"key": "zone", "operator": "NotIn", "values": ["z1"]},
            {"key": "beta", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector_string(selector) == "app=shop,beta,env in (canary,prod),!legacy,tier=web,zone notin (z1)"
    assert format_label_selector(selector) == label_selector_string(selector)
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({}) == "<none>"
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}) == "<error>"
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}) == "<error>"


# --------------------------------------------------------------------------
# Column definitions
# --------------------------------------------------------------------------

EXPECTED_COLUMNS = {
    ("", "pods"): [
        ("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0),
        ("Age", "string", 0), ("IP", "string", 1), ("Node", "string", 1), ("Nominated Node", "string", 1),
        ("Readiness Gates", "string", 1),
    ],
    ("", "nodes"): [
        ("Name", "string", 0), ("Status", "string", 0), ("Roles", "string", 0), ("Age", "string", 0),
        ("Version", "string", 0), ("Internal-IP", "string", 1), ("External-IP", "string", 1),
        ("OS-Image", "string", 1), ("Kernel-Version", "string", 1), ("Container-Runtime", "string", 1),
    ],
    ("", "namespaces"): [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
    ("", "services"): [
        ("Name", "string", 0), ("Type", "string", 0), ("Cluster-IP", "string", 0), ("External-IP", "string", 0),
        ("Port(s)", "string", 0), ("Age", "string", 0), ("Selector", "string", 1),
    ],
    ("", "endpoints"): [("Name", "string", 0), ("Endpoints", "string", 0), ("Age", "string", 0)],
    ("", "configmaps"): [("Name", "string", 0), ("Data", "string", 0), ("Age", "string", 0)],
    ("", "secrets"): [("Name", "string", 0), ("Type", "string", 0), ("Data", "string", 0), ("Age", "string", 0)],
    ("", "events"): [
        ("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0), ("Object", "string", 0),
        ("Subobject", "string", 1), ("Source", "string", 1), ("Message", "string", 0), ("First Seen", "string", 1),
        ("Count", "string", 1), ("Name", "string", 1),
    ],
    ("", "serviceaccounts"): [("Name", "string", 0), ("Secrets", "string", 0), ("Age", "string", 0)],
    ("coordination.k8s.io", "leases"): [("Name", "string", 0), ("Holder", "string", 0), ("Age", "string", 0)],
    ("apps", "deployments"): [
        ("Name", "string", 0), ("Ready", "string", 0), ("Up-to-date", "string", 0), ("Available", "string", 0),
        ("Age", "string", 0), ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1),
    ],
    ("apps", "replicasets"): [
        ("Name", "string", 0), ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0),
        ("Age", "string", 0), ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1),
    ],
    ("apps", "daemonsets"): [
        ("Name", "string", 0), ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0),
        ("Up-to-date", "integer", 0), ("Available", "integer", 0), ("Node Selector", "string", 0),
        ("Age", "string", 0), ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1),
    ],
    ("apps", "statefulsets"): [
        ("Name", "string", 0), ("Ready", "string", 0), ("Age", "string", 0), ("Containers", "string", 1),
        ("Images", "string", 1),
    ],
    ("batch", "jobs"): [
        ("Name", "string", 0), ("Status", "string", 0), ("Completions", "string", 0), ("Duration", "string", 0),
        ("Age", "string", 0), ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1),
    ],
    ("discovery.k8s.io", "endpointslices"): [
        ("Name", "string", 0), ("AddressType", "string", 0), ("Ports", "string", 0), ("Endpoints", "string", 0),
        ("Age", "string", 0),
    ],
}
EXPECTED_COLUMNS[("events.k8s.io", "events")] = EXPECTED_COLUMNS[("", "events")]


@pytest.mark.parametrize("group, resource", sorted(EXPECTED_COLUMNS))
def test_columns(group, resource):
    assert columns(group, resource) == EXPECTED_COLUMNS[(group, resource)]
    defs = column_definitions(group, resource)
    for d in defs:
        assert list(d) == ["name", "type", "format", "description", "priority"]
        assert d["description"]
        assert d["format"] == ("name" if d["name"] == "Name" else "")
    if (group, resource) not in (("", "events"), ("events.k8s.io", "events")):
        assert defs[0]["name"] == "Name" and defs[0]["priority"] == 0
        assert defs[0]["description"].startswith("Name must be unique within a namespace.")
    # Callers may mutate what they get.
    defs[0]["name"] = "changed"
    assert column_definitions(group, resource)[0]["name"] != "changed"


def test_unknown_resource_fallback():
    assert columns("example.com", "widgets") == [("Name", "string", 0), ("Age", "date", 0)]
    assert column_definitions("example.com", "widgets")[0]["format"] == "name"
    assert row_cells("example.com", "widgets", {"metadata": meta("w1")}, NOW) == ["w1", "5m"]
    assert row_cells("example.com", "widgets", {"metadata": {"name": "w2"}}, NOW) == ["w2", None]
    assert row_cells("example.com", "widgets", {"metadata": {"name": "w3", "creationTimestamp": "bad"}}, NOW) == ["w3", "<invalid>"]


# --------------------------------------------------------------------------
# Pods
# --------------------------------------------------------------------------


def pod(status: Obj, spec: Obj = None, **meta_extra: Any) -> Obj:
    return {
        "metadata": meta("web", **meta_extra),
        "spec": spec or {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "node-1"},
        "status": status,
    }


def running(name: str = "app", restarts: int = 0, **extra: Any) -> Obj:
    return {"name": name, "ready": True, "restartCount": restarts, "state": {"running": {"startedAt": CREATED}}, **extra}


def pod_cells(p: Obj) -> List[Any]:
    return row_cells("", "pods", p, NOW)


def test_pod_running():
    p = pod(
        {
            "phase": "Running",
            "podIP": "10.244.1.7",
            "podIPs": [{"ip": "10.244.1.7"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [running()],
        }
    )
    assert pod_cells(p) == ["web", "1/1", "Running", "0", "5m", "10.244.1.7", "node-1", "<none>", "<none>"]


def test_pod_pending_unscheduled():
    p = pod({"phase": "Pending"}, spec={"containers": [{"name": "a"}, {"name": "b"}]})
    assert pod_cells(p) == ["web", "0/2", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"]


def test_pod_terminating():
    p = pod({"phase": "Running", "containerStatuses": [running()]}, deletionTimestamp="2026-11-22T10:04:30Z")
    assert pod_cells(p)[:4] == ["web", "1/1", "Terminating", "0"]
    # A pod that already finished keeps its phase while its deletion is pending.
    done = pod({"phase": "Succeeded", "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]},
               deletionTimestamp="2026-11-22T10:04:30Z")
    assert pod_cells(done)[:3] == ["web", "0/1", "Completed"]
    # Deleted while its node is unreachable.
    lost = pod({"phase": "Running", "reason": "NodeLost"}, deletionTimestamp="2026-11-22T10:04:30Z")
    assert pod_cells(lost)[2] == "Unknown"


def test_pod_crash_looping():
    p = pod(
        {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": False,
                    "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(183)}},
                }
            ],
        }
    )
    assert pod_cells(p)[:5] == ["web", "0/1", "CrashLoopBackOff", "5 (3m3s ago)", "5m"]


def test_pod_restarts_use_the_latest_termination():
    p = pod(
        {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                running("a", 1, lastState={"terminated": {"exitCode": 137, "finishedAt": ago(4000)}}),
                running("b", 2, lastState={"terminated": {"exitCode": 1, "finishedAt": ago(30)}}),
            ],
        },
        spec={"containers": [{"name": "a"}, {"name": "b"}]},
    )
    assert pod_cells(p)[1:4] == ["2/2", "Running", "3 (30s ago)"]
    # Restarts without a known termination time are just a number.
    q = pod({"phase": "Running", "containerStatuses": [running(restarts=2)]})
    assert pod_cells(q)[3] == "2"


def test_pod_container_reasons():
    def status_of(state: Obj) -> str:
        return pod_cells(pod({"phase": "Running", "containerStatuses": [{"name": "app", "ready": False,
                                                                          "restartCount": 0, "state": state}]}))[2]

    assert status_of({"waiting": {"reason": "ContainerCreating"}}) == "ContainerCreating"
    assert status_of({"waiting": {"reason": "ErrImagePull"}}) == "ErrImagePull"
    assert status_of({"terminated": {"exitCode": 2, "reason": "OOMKilled"}}) == "OOMKilled"
    assert status_of({"terminated": {"exitCode": 0, "signal": 9}}) == "Signal:9"
    assert status_of({"terminated": {"exitCode": 3}}) == "ExitCode:3"
    assert status_of({"waiting": {}}) == "Running"  # no reason: the phase stands


def test_pod_first_container_reason_wins():
    p = pod(
        {
            "phase": "Running",
            "containerStatuses": [
                {"name": "a", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}},
                {"name": "b", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ],
        },
        spec={"containers": [{"name": "a"}, {"name": "b"}]},
    )
    assert pod_cells(p)[2] == "ImagePullBackOff"


def test_pod_completed_with_a_running_container():
    statuses = [
        {"name": "job", "ready": False, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        running("proxy"),
    ]
    spec = {"containers": [{"name": "job"}, {"name": "proxy"}]}
    ready = pod({"phase": "Running", "containerStatuses": statuses, "conditions": [{"type": "Ready", "status": "True"}]}, spec)
    assert pod_cells(ready)[1:3] == ["1/2", "Running"]
    not_ready = pod({"phase": "Running", "containerStatuses": statuses, "conditions": [{"type": "Ready", "status": "False"}]}, spec)
    assert pod_cells(not_ready)[1:3] == ["1/2", "NotReady"]


def test_pod_init_containers():
    spec = {"initContainers": [{"name": "migrate"}, {"name": "warm"}], "containers": [{"name": "app"}]}

    def init_status(second: Obj, restarts: int = 0) -> Obj:
        return {
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "migrate", "ready": True, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "warm", "ready": False, "restartCount": restarts, "state": second},
            ],
            "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}],
        }

    assert pod_cells(pod(init_status({"running": {}}), spec))[1:4] == ["0/1", "Init:1/2", "0"]
    assert pod_cells(pod(init_status({"waiting": {"reason": "PodInitializing"}}), spec))[2] == "Init:1/2"
    assert pod_cells(pod(init_status({"waiting": {"reason": "ImagePullBackOff"}}), spec))[2] == "Init:ImagePullBackOff"
    assert pod_cells(pod(init_status({"terminated": {"exitCode": 1, "reason": "Error"}}, restarts=3), spec))[2:4] == [
        "Init:Error",
        "3",
    ]
    assert pod_cells(pod(init_status({"terminated": {"exitCode": 1}}), spec))[2] == "Init:ExitCode:1"
    assert pod_cells(pod(init_status({"terminated": {"exitCode": 137, "signal": 9}}), spec))[2] == "Init:Signal:9"
    # Exit code 0 is success whatever else is reported: initialisation is over.
    assert pod_cells(pod(init_status({"terminated": {"exitCode": 0, "signal": 15}}), spec))[2] == "PodInitializing"
    # Init statuses not yet reported: the pod still reads its phase.
    assert pod_cells(pod({"phase": "Pending"}, spec))[1:3] == ["0/1", "Pending"]


def test_pod_init_crash_loop_counts_init_restarts():
    spec = {"initContainers": [{"name": "init"}], "containers": [{"name": "app"}]}
    status = {
        "phase": "Pending",
        "initContainerStatuses": [
            {"name": "init", "ready": False, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(65)}}},
        ],
        "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}],
    }
    assert pod_cells(pod(status, spec))[1:4] == ["0/1", "Init:CrashLoopBackOff", "4 (65s ago)"]


def test_pod_sidecar_containers():
    spec = {
        "initContainers": [{"name": "setup"}, {"name": "mesh", "restartPolicy": "Always"}],
        "containers": [{"name": "app"}],
    }
    status = {
        "phase": "Running",
        "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
        "initContainerStatuses": [
            {"name": "setup", "ready": True, "restartCount": 1, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "mesh", "ready": True, "started": True, "restartCount": 2, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}},
        ],
        "containerStatuses": [running("app")],
    }
    # The sidecar counts towards Ready; only its restarts count once initialised.
    assert pod_cells(pod(status, spec))[1:4] == ["2/2", "Running", "2 (10m ago)"]


def test_pod_scheduling_gated():
    p = pod({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]})
    assert pod_cells(p)[2] == "SchedulingGated"


def test_pod_wide_columns():
    p = pod(
        {
            "phase": "Running",
            "podIPs": [{"ip": "fd00::7"}, {"ip": "10.0.0.7"}],
            "nominatedNodeName": "node-9",
            "conditions": [
                {"type": "example.com/lb", "status": "True"},
                {"type": "example.com/fw", "status": "False"},
            ],
            "containerStatuses": [running()],
        },
        spec={
            "containers": [{"name": "app"}],
            "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/fw"},
                               {"conditionType": "example.com/missing"}],
        },
    )
    assert pod_cells(p)[5:] == ["fd00::7", "<none>", "node-9", "1/3"]


def test_pod_reason_overrides_phase():
    p = pod({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."})
    assert pod_cells(p)[2] == "Evicted"


# --------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------


def node(name: str, ready: Any, labels: Obj = None, unschedulable: bool = False, **status: Any) -> Obj:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-11-18T08:00:00Z", "labels": labels or {}},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "conditions": conditions,
            "addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": "192.168.0.11"}],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.1.0-26-amd64",
                "containerRuntimeVersion": "containerd://1.7.22",
            },
            **status,
        },
    }


def test_node_ready_worker():
    assert row_cells("", "nodes", node("node-1", "True"), NOW) == [
        "node-1", "Ready", "<none>", "4d2h", "v1.32.0", "192.168.0.11", "<none>",
        "Debian GNU/Linux 12 (bookworm)", "6.1.0-26-amd64", "containerd://1.7.22",
    ]


def test_node_not_ready_and_unknown():
    assert row_cells("", "nodes", node("n", "False"), NOW)[1] == "NotReady"
    # The node controller marks an unreachable node's Ready condition Unknown.
    assert row_cells("", "nodes", node("n", "Unknown"), NOW)[1] == "NotReady"
    # No Ready condition at all.
    assert row_cells("", "nodes", node("n", None), NOW)[1] == "Unknown"


def test_node_control_plane_unschedulable():
    n = node(
        "cp-1",
        "True",
        labels={"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "cp-1"},
        unschedulable=True,
        addresses=[{"type": "InternalIP", "address": "10.1.0.2"}, {"type": "ExternalIP", "address": "203.0.113.9"}],
    )
    assert row_cells("", "nodes", n, NOW)[:7] == [
        "cp-1", "Ready,SchedulingDisabled", "control-plane", "4d2h", "v1.32.0", "10.1.0.2", "203.0.113.9"
    ]
    # Not ready and cordoned.
    assert row_cells("", "nodes", node("n", "False", unschedulable=True), NOW)[1] == "NotReady,SchedulingDisabled"


def test_node_roles_and_missing_info():
    n = {
        "metadata": {
            "name": "w",
            "labels": {
                "node-role.kubernetes.io/worker": "",
                "node-role.kubernetes.io/": "ignored",
                "kubernetes.io/role": "ingress",
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "status": {},
    }
    assert row_cells("", "nodes", n, NOW) == [
        "w", "Unknown", "control-plane,ingress,worker", "<unknown>", "", "<none>", "<none>",
        "<unknown>", "<unknown>", "<unknown>",
    ]


# --------------------------------------------------------------------------
# Services, endpoints, endpoint slices
# --------------------------------------------------------------------------


def service(spec: Obj, status: Obj = None) -> Obj:
    return {"metadata": meta("web"), "spec": spec, "status": status or {"loadBalancer": {}}}


def test_services():
    cluster_ip = service({"type": "ClusterIP", "clusterIP": "10.96.0.15", "clusterIPs": ["10.96.0.15"],
                          "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}], "selector": {"app": "web", "tier": "fe"}})
    assert row_cells("", "services", cluster_ip, NOW) == [
        "web", "ClusterIP", "10.96.0.15", "<none>", "80/TCP", "5m", "app=web,tier=fe"
    ]
    node_port = service({"type": "NodePort", "clusterIPs": ["10.96.0.16", "fd00::16"], "externalIPs": ["198.51.100.4"],
                         "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "nodePort": 30053, "protocol": "UDP"}]})
    assert row_cells("", "services", node_port, NOW) == [
        "web", "NodePort", "10.96.0.16", "198.51.100.4", "80:30080/TCP,53:30053/UDP", "5m", "<none>"
    ]
    headless = service({"type": "ClusterIP", "clusterIP": "None", "ports": []})
    assert row_cells("", "services", headless, NOW)[2:5] == ["None", "<none>", "<none>"]
    external = service({"type": "ExternalName", "externalName": "db.example.com"})
    assert row_cells("", "services", external, NOW)[1:5] == ["ExternalName", "<none>", "db.example.com", "<none>"]


def test_load_balancer_services():
    pending = service({"type": "LoadBalancer", "clusterIP": "10.96.0.20", "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]})
    assert row_cells("", "services", pending, NOW)[1:5] == ["LoadBalancer", "10.96.0.20", "<pending>", "443:31443/TCP"]
    ingress = {"loadBalancer": {"ingress": [{"ip": "203.0.113.20"}, {"hostname": "a-very-long-name.elb.example.com"}, {"ip": "203.0.113.20"}]}}
    ready = service({"type": "LoadBalancer", "clusterIP": "10.96.0.20", "ports": []}, ingress)
    # The server prints wide, so long addresses are not clipped.
    assert row_cells("", "services", ready, NOW)[3] == "203.0.113.20,a-very-long-name.elb.example.com"
    both = service({"type": "LoadBalancer", "externalIPs": ["198.51.100.1"], "ports": []}, ingress)
    assert row_cells("", "services", both, NOW)[3] == "203.0.113.20,a-very-long-name.elb.example.com,198.51.100.1"


def test_endpoints():
    ep = {
        "metadata": meta("web"),
        "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "notReadyAddresses": [{"ip": "10.0.0.9"}],
             "ports": [{"port": 8080, "protocol": "TCP"}, {"port": 9090, "protocol": "TCP"}]},
        ],
    }
    assert row_cells("", "endpoints", ep, NOW) == ["web", "10.0.0.1:8080,10.0.0.2:8080,10.0.0.1:9090 + 1 more...", "5m"]
    assert row_cells("", "endpoints", {"metadata": meta("e"), "subsets": []}, NOW)[1] == "<none>"
    headless = {"metadata": meta("h"), "subsets": [{"addresses": [{"ip": "fd00::1"}, {"ip": "fd00::2"}]}]}
    assert row_cells("", "endpoints", headless, NOW)[1] == "fd00::1,fd00::2"
    v6 = {"metadata": meta("v6"), "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}]}
    assert row_cells("", "endpoints", v6, NOW)[1] == "[fd00::1]:53"
    only_not_ready = {"metadata": meta("n"), "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.3"}], "ports": [{"port": 80}]}]}
    assert row_cells("", "endpoints", only_not_ready, NOW)[1] == ""


def test_endpointslices():
    eps = {
        "metadata": meta("web-x7k2p"),
        "addressType": "IPv4",
        "ports": [{"port": 8080, "name": "http"}, {"name": "metrics"}, {}, {"port": 9443}],
        "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)],
    }
    assert row_cells("discovery.k8s.io", "endpointslices", eps, NOW) == [
        "web-x7k2p", "IPv4", "8080,metrics,* + 1 more...", "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...", "5m"
    ]
    empty = {"metadata": meta("web-empty"), "addressType": "IPv6", "endpoints": None}
    assert row_cells("discovery.k8s.io", "endpointslices", empty, NOW) == ["web-empty", "IPv6", "<unset>", "<unset>", "5m"]


# --------------------------------------------------------------------------
# Config, identity, coordination
# --------------------------------------------------------------------------


def test_simple_resources():
    ns = {"metadata": {"name": "kube-system", "creationTimestamp": CREATED}, "status": {"phase": "Active"}}
    assert row_cells("", "namespaces", ns, NOW) == ["kube-system", "Active", "5m"]
    terminating = {"metadata": {"name": "old", "creationTimestamp": CREATED}, "status": {"phase": "Terminating"}}
    assert row_cells("", "namespaces", terminating, NOW)[1] == "Terminating"

    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert row_cells("", "configmaps", cm, NOW) == ["cfg", 3, "5m"]
    assert row_cells("", "configmaps", {"metadata": meta("empty")}, NOW) == ["empty", 0, "5m"]

    secret = {"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    assert row_cells("", "secrets", secret, NOW) == ["tls", "kubernetes.io/tls", 2, "5m"]

    sa = {"metadata": meta("builder"), "secrets": [{"name": "builder-token"}]}
    assert row_cells("", "serviceaccounts", sa, NOW) == ["builder", 1, "5m"]
    assert row_cells("", "serviceaccounts", {"metadata": meta("default")}, NOW) == ["default", 0, "5m"]

    lease = {"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "cp-1_5b1c", "leaseDurationSeconds": 15}}
    assert row_cells("coordination.k8s.io", "leases", lease, NOW) == ["kube-scheduler", "cp-1_5b1c", "5m"]
    assert row_cells("coordination.k8s.io", "leases", {"metadata": meta("free"), "spec": {}}, NOW) == ["free", "", "5m"]


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


def test_core_event():
    event = {
        "metadata": meta("web.1801a"),
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "fieldPath": "spec.containers{app}"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container  \n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(3600),
        "lastTimestamp": ago(20),
        "count": 14,
        "type": "Warning",
    }
    assert row_cells("", "events", event, NOW) == [
        "20s", "Warning", "BackOff", "pod/web", "spec.containers{app}", "kubelet, node-1",
        "Back-off restarting failed container", "60m", 14, "web.1801a",
    ]


def test_new_style_events():
    # Written by an events.k8s.io client: eventTime and reporting* only, maybe a series.
    core = {
        "metadata": meta("web.1801b"),
        "involvedObject": {"kind": "Node", "name": "node-1"},
        "reason": "Starting",
        "message": "Starting kubelet.",
        "type": "Normal",
        "eventTime": "2026-11-22T10:02:00.000000Z",
        "reportingComponent": "kubelet",
        "reportingInstance": "node-1",
        "firstTimestamp": None,
        "lastTimestamp": None,
    }
    assert row_cells("", "events", core, NOW) == [
        "3m", "Normal", "Starting", "node/node-1", "", "kubelet, node-1", "Starting kubelet.", "3m", 1, "web.1801b"
    ]
    core["series"] = {"count": 7, "lastObservedTime": "2026-11-22T10:04:50.000000Z"}
    assert row_cells("", "events", core, NOW)[0] == "10s"
    assert row_cells("", "events", core, NOW)[8] == 7

    v1 = {
        "metadata": meta("web.1801c"),
        "eventTime": "2026-11-22T10:01:00.000000Z",
        "reportingController": "default-scheduler",
        "reportingInstance": "",
        "action": "Binding",
        "reason": "Scheduled",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
        "note": "Successfully assigned default/web to node-1",
        "type": "Normal",
    }
    assert row_cells("events.k8s.io", "events", v1, NOW) == [
        "4m", "Normal", "Scheduled", "pod/web", "", "default-scheduler",
        "Successfully assigned default/web to node-1", "4m", 1, "web.1801c",
    ]
    v1.update(deprecatedSource={"component": "kubelet"}, deprecatedFirstTimestamp=ago(900),
              deprecatedLastTimestamp=ago(60), deprecatedCount=3)
    assert row_cells("events.k8s.io", "events", v1, NOW)[:8:7] == ["60s", "15m"]
    assert row_cells("events.k8s.io", "events", v1, NOW)[5] == "kubelet"
    assert row_cells("events.k8s.io", "events", v1, NOW)[8] == 3


def test_event_without_times_or_name():
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "ConfigMap"}, "message": "x"}
    assert row_cells("", "events", event, NOW) == ["<unknown>", "", "", "configmap", "", "", "x", "<unknown>", 1, "e"]


# --------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "proxy", "image": "envoy:v1.32"}]},
}


def test_deployment():
    d = {
        "metadata": meta("web"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert row_cells("apps", "deployments", d, NOW) == [
        "web", "2/3", 3, 2, "5m", "web,proxy", "nginx:1.27,envoy:v1.32", "app=web"
    ]
    fresh = {"metadata": meta("new"), "spec": {"replicas": 1, "selector": {}, "template": {"spec": {"containers": []}}}, "status": {}}
    assert row_cells("apps", "deployments", fresh, NOW) == ["new", "0/1", 0, 0, "5m", "", "", ""]
    bad = {"metadata": meta("bad"), "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}}
    assert row_cells("apps", "deployments", bad, NOW)[-1] == "<invalid>"


def test_replicaset():
    rs = {
        "metadata": meta("web-6d4cf56db6"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "6d4cf56db6"}}, "template": TEMPLATE},
        "status": {"replicas": 3, "readyReplicas": 1},
    }
    assert row_cells("apps", "replicasets", rs, NOW) == [
        "web-6d4cf56db6", 3, 3, 1, "5m", "web,proxy", "nginx:1.27,envoy:v1.32", "app=web,pod-template-hash=6d4cf56db6"
    ]


def test_daemonset():
    ds = {
        "metadata": meta("agent"),
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux", "disk": "ssd"},
                                  "containers": [{"name": "agent", "image": "agent:v2"}]}},
        },
        "status": {"desiredNumberScheduled": 5, "currentNumberScheduled": 5, "numberReady": 4,
                   "updatedNumberScheduled": 5, "numberAvailable": 4, "numberMisscheduled": 0},
    }
    assert row_cells("apps", "daemonsets", ds, NOW) == [
        "agent", 5, 5, 4, 5, 4, "disk=ssd,kubernetes.io/os=linux", "5m", "agent", "agent:v2", "app=agent"
    ]
    ds["spec"]["template"]["spec"].pop("nodeSelector")
    assert row_cells("apps", "daemonsets", ds, NOW)[6] == "<none>"


def test_statefulset():
    sts = {"metadata": meta("db"), "spec": {"replicas": 3, "template": TEMPLATE}, "status": {"replicas": 2, "readyReplicas": 1}}
    assert row_cells("apps", "statefulsets", sts, NOW) == ["db", "1/3", "5m", "web,proxy", "nginx:1.27,envoy:v1.32"]


def job(spec: Obj, status: Obj, **meta_extra: Any) -> Obj:
    spec = {"template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}},
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "9b6a"}}, **spec}
    return {"metadata": meta("pi", **meta_extra), "spec": spec, "status": status}


def test_jobs():
    complete = job(
        {"completions": 1, "parallelism": 1},
        {"succeeded": 1, "startTime": "2026-11-22T10:00:05Z", "completionTime": "2026-11-22T10:02:08Z",
         "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]},
    )
    assert row_cells("batch", "jobs", complete, NOW) == [
        "pi", "Complete", "1/1", "2m3s", "5m", "pi", "perl:5.34", "batch.kubernetes.io/controller-uid=9b6a"
    ]
    running_job = job({"completions": 10, "parallelism": 3}, {"succeeded": 4, "active": 3, "startTime": ago(45)})
    assert row_cells("batch", "jobs", running_job, NOW)[1:4] == ["Running", "4/10", "45s"]
    work_queue = job({"parallelism": 3}, {"succeeded": 0, "startTime": ago(45)})
    assert row_cells("batch", "jobs", work_queue, NOW)[2] == "0/1 of 3"
    unstarted = job({}, {})
    assert row_cells("batch", "jobs", unstarted, NOW)[1:4] == ["Running", "0/1", ""]
    failed = job({"completions": 1}, {"failed": 7, "startTime": ago(200), "conditions": [
        {"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]})
    assert row_cells("batch", "jobs", failed, NOW)[1] == "Failed"
    failing = job({"completions": 1}, {"conditions": [{"type": "FailureTarget", "status": "True"}]})
    assert row_cells("batch", "jobs", failing, NOW)[1] == "FailureTarget"
    suspended = job({"completions": 1, "suspend": True}, {"conditions": [{"type": "Suspended", "status": "True"}]})
    assert row_cells("batch", "jobs", suspended, NOW)[1] == "Suspended"
    deleting = job({"completions": 1}, {"conditions": [{"type": "Suspended", "status": "True"}]},
                   deletionTimestamp="2026-11-22T10:04:00Z")
    assert row_cells("batch", "jobs", deleting, NOW)[1] == "Terminating"
    resumed = job({"completions": 1}, {"conditions": [{"type": "Suspended", "status": "False"}]})
    assert row_cells("batch", "jobs", resumed, NOW)[1] == "Running"


# --------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------


@pytest.mark.parametrize("group, resource", sorted(EXPECTED_COLUMNS) + [("example.com", "widgets")])
def test_every_printer_fills_every_column_of_a_malformed_object(group, resource):
    n = len(column_definitions(group, resource))
    for obj in (
        {},
        {"metadata": None, "spec": None, "status": None},
        {"metadata": {"name": 5, "labels": []}, "spec": {"containers": "x", "ports": [1, None], "template": []},
         "status": {"conditions": "x", "containerStatuses": [None, {"state": []}], "podIPs": [None]},
         "subsets": [None, {"addresses": "x"}], "endpoints": [{"addresses": None}], "series": {}},
    ):
        assert len(row_cells(group, resource, obj, NOW)) == n
