"""Server-side printing: the columns and cells of `kubectl get`.

kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and
prints whatever the server puts in the meta.k8s.io/v1 Table. This module owns
what goes into that table for each resource megaplane serves:

* `column_definitions(group, resource)`: the TableColumnDefinition dicts;
* `row_cells(group, resource, obj, now)`: one object's cells, in column order;

plus the small formatting conventions upstream's printers share and other
modules reuse (`human_duration`, `age`, `format_labels`,
`format_label_selector`, the "<none>"/"<unknown>" placeholders).

It follows kube-apiserver 1.32's printers (k8s.io/kubernetes
pkg/printers/internalversion/printers.go). Those run on the *internal* type,
after conversion from v1; where that conversion changes what a printer sees
(pod IPs, cluster IPs, events.k8s.io field names, secret stringData) the
printer here reads the v1 fields the way the converted object would have them.

The server always prints with `Wide: true` (kubectl hides columns of priority
1 unless `-o wide`), so every row carries every column's cell. Building the
Table envelope (kind, metadata, rows with their partial-object metadata,
includeObject) is the caller's job.

Objects are plain decoded JSON; nothing here assumes they passed validation,
so every field access tolerates a missing or wrongly-typed value.
"""

from __future__ import annotations

import datetime
import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

__all__ = [
    "NONE",
    "UNKNOWN",
    "column_definitions",
    "row_cells",
    "human_duration",
    "parse_timestamp",
    "age",
    "format_labels",
    "format_label_selector",
    "label_selector_string",
]

# The placeholders upstream's printers use for "no value" and "can't tell".
NONE = "<none>"
UNKNOWN = "<unknown>"

Obj = Dict[str, Any]
Printer = Callable[[Obj, datetime.datetime], List[Any]]


# --------------------------------------------------------------------------
# Shared formatting (public: other modules print ages and selectors too)
# --------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """apimachinery's `duration.HumanDuration`: ~2-3 significant figures.

    "45s", "119s", "2m3s", "9m", "42m", "3h", "7h59m", "30h", "4d", "4d5h",
    "300d", "2y10d", "12y". Up to one second in the future reads as "0s"
    (clock skew); further in the future is "<invalid>".
    """
    # Go computes int(d.Seconds()), which truncates toward zero.
    whole = math.trunc(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        s = whole % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def parse_timestamp(value: Any) -> Optional[datetime.datetime]:
    """An RFC 3339 timestamp ("2026-11-22T10:00:00Z", with or without
    fractional seconds) as an aware datetime; None if missing or unparseable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t


def _aware(now: datetime.datetime) -> datetime.datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=datetime.timezone.utc)


def _since(t: datetime.datetime, now: datetime.datetime) -> str:
    return human_duration((_aware(now) - t).total_seconds())


def age(timestamp: Any, now: datetime.datetime) -> str:
    """Upstream's `translateTimestampSince`: the human duration from an RFC 3339
    timestamp to `now`, or "<unknown>" when there is no timestamp."""
    t = parse_timestamp(timestamp)
    return UNKNOWN if t is None else _since(t, now)


def format_labels(labels: Any) -> str:
    """`labels.FormatLabels`: "k1=v1,k2=v2" sorted by key, "<none>" if empty."""
    if not isinstance(labels, dict) or not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


# LabelSelector operators and how a selector's String() writes them.
_SELECTOR_OPS = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": ""}


def label_selector_string(selector: Any) -> Optional[str]:
    """`metav1.LabelSelectorAsSelector(selector).String()`; None if the
    selector is invalid.

    A missing selector selects nothing and an empty one everything; both
    print as "". Requirements are sorted by key; set values are sorted.
    """
    if selector is None:
        return ""
    if not isinstance(selector, dict):
        return None
    reqs: List[Tuple[str, str]] = []
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        return None
    for key, value in match_labels.items():
        if not isinstance(value, str):
            return None
        reqs.append((key, f"{key}={value}"))
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        return None
    for expr in expressions:
        if not isinstance(expr, dict):
            return None
        key, op = expr.get("key"), expr.get("operator")
        values = expr.get("values") or []
        if not isinstance(key, str) or op not in _SELECTOR_OPS or not isinstance(values, list):
            return None
        if op in ("In", "NotIn"):
            # labels.NewRequirement refuses a set operator without values.
            if not values or not all(isinstance(v, str) for v in values):
                return None
            joined = values[0] if len(values) == 1 else ",".join(sorted(values))
            reqs.append((key, f"{key}{_SELECTOR_OPS[op]}({joined})"))
        else:
            if values:
                return None
            reqs.append((key, key if op == "Exists" else f"!{key}"))
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def format_label_selector(selector: Any) -> str:
    """`metav1.FormatLabelSelector`: the selector string, "<none>" if it is
    empty, "<error>" if it is invalid."""
    s = label_selector_string(selector)
    if s is None:
        return "<error>"
    return s or NONE


# --------------------------------------------------------------------------
# Tolerant field access
# --------------------------------------------------------------------------


def _d(value: Any) -> Obj:
    """A dict field, or {} if it is missing or not a dict."""
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> List[Any]:
    """A list field, or [] if it is missing or not a list."""
    return value if isinstance(value, list) else []


def _s(value: Any) -> str:
    """A string field, or "" (Go's zero value) if it is missing or not a string."""
    return value if isinstance(value, str) else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _i(value: Any) -> int:
    """An integer field, or 0 if it is missing or not an integer."""
    return value if _is_int(value) else 0


def _name(obj: Obj) -> str:
    return _s(_d(obj.get("metadata")).get("name"))


def _age(obj: Obj, now: datetime.datetime) -> str:
    return age(_d(obj.get("metadata")).get("creationTimestamp"), now)


def _container_cells(pod_spec: Any) -> List[str]:
    """`layoutContainerCells`: the container names and images, comma-joined."""
    containers = [_d(c) for c in _l(_d(pod_spec).get("containers"))]
    return [",".join(_s(c.get("name")) for c in containers), ",".join(_s(c.get("image")) for c in containers)]


def _template_spec(obj: Obj) -> Obj:
    return _d(_d(_d(obj.get("spec")).get("template")).get("spec"))


def _list_with_more(items: Iterable[str], limit: int = 3) -> str:
    """`listWithMoreString`: the first three, then "+ N more...", "<unset>" if none."""
    items = list(items)
    shown = ",".join(items[:limit])
    if len(items) > limit:
        return f"{shown} + {len(items) - limit} more..."
    return shown or "<unset>"


# --------------------------------------------------------------------------
# Column definitions
# --------------------------------------------------------------------------

# Descriptions are the SwaggerDoc strings upstream's printers quote; the
# types they name (extensions/v1beta1, discovery/v1beta1) are the ones the
# printers use, which is why some differ from the apps/v1 wording.
_DESC_NAME = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_DESC_AGE = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is not guaranteed to be set in happens-before order across separate operations. Clients "
    "may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the "
    "system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_DESC_CONTAINERS = "Names of each container in the template."
_DESC_IMAGES = "Images referenced by each container in the template."
_DESC_NODE_SELECTOR = (
    "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must "
    "match a node's labels for the pod to be scheduled on that node. More info: "
    "https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"
)
_DESC_NODE_ADDRESSES = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. More info: "
    "https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as "
    "mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it "
    "is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for "
    "an example. Consumers should assume that addresses can change during the lifetime of a Node. "
    "However, there are some exceptions where this may not be possible, such as Pods that inherit a "
    "Node's address in its own status or consumers of the downward API (status.hostIP)."
)
_DESC_UPDATED_REPLICAS = (
    "Total number of non-terminated pods targeted by this deployment that have the desired template spec."
)
_DESC_AVAILABLE_REPLICAS = (
    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."
)


def _col(name: str, type_: str, description: str, priority: int = 0, format_: str = "") -> Obj:
    # Key order as Go serialises metav1.TableColumnDefinition.
    return {"name": name, "type": type_, "format": format_, "description": description, "priority": priority}


def _name_col(priority: int = 0) -> Obj:
    return _col("Name", "string", _DESC_NAME, priority, "name")


def _age_col() -> Obj:
    return _col("Age", "string", _DESC_AGE)


_POD_COLUMNS = [
    _name_col(),
    _col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", "string", "The aggregate status of the containers in this pod."),
    _col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last "
        "container in this pod has restarted.",
    ),
    _age_col(),
    _col(
        "IP",
        "string",
        "podIP address allocated to the pod. Routable at least within the cluster. "
        "Empty if not yet allocated.",
        1,
    ),
    _col(
        "Node",
        "string",
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for "
        "scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for "
        "this node becomes responsible for the lifecycle of this pod. This field should not be used to "
        "express a desire for the pod to be scheduled on a specific node. "
        "https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
        1,
    ),
    _col(
        "Nominated Node",
        "string",
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be "
        "scheduled right away as preemption victims receive their graceful termination periods. This "
        "field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to "
        "place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to "
        "give the resources on this node to a higher priority pod that is created after preemption. As "
        "a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
        1,
    ),
    _col(
        "Readiness Gates",
        "string",
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all "
        "its containers are ready AND all conditions specified in the readiness gates have status equal "
        'to "True" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates',
        1,
    ),
]

_NODE_COLUMNS = [
    _name_col(),
    _col("Status", "string", "The status of the node"),
    _col("Roles", "string", "The roles of the node"),
    _age_col(),
    _col("Version", "string", "Kubelet Version reported by the node."),
    _col("Internal-IP", "string", _DESC_NODE_ADDRESSES, 1),
    _col("External-IP", "string", _DESC_NODE_ADDRESSES, 1),
    _col(
        "OS-Image",
        "string",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
        1,
    ),
    _col(
        "Kernel-Version",
        "string",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
        1,
    ),
    _col(
        "Container-Runtime",
        "string",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
        1,
    ),
]

_NAMESPACE_COLUMNS = [
    _name_col(),
    _col("Status", "string", "The status of the namespace"),
    _age_col(),
]

_SERVICE_COLUMNS = [
    _name_col(),
    _col(
        "Type",
        "string",
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, "
        'ClusterIP, NodePort, and LoadBalancer. "ClusterIP" allocates a cluster-internal IP address for '
        "load-balancing to endpoints. Endpoints are determined by the selector or if that is not "
        "specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP "
        'is "None", no virtual IP is allocated and the endpoints are published as a set of endpoints '
        'rather than a virtual IP. "NodePort" builds on ClusterIP and allocates a port on every node which '
        'routes to the same endpoints as the clusterIP. "LoadBalancer" builds on NodePort and creates an '
        "external load-balancer (if supported in the current cloud) which routes to the same endpoints as "
        'the clusterIP. "ExternalName" aliases this service to the specified externalName. Several other '
        "fields do not apply to ExternalName services. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types",
    ),
    _col(
        "Cluster-IP",
        "string",
        "clusterIP is the IP address of the service and is usually assigned randomly. If an address is "
        "specified manually, is in-range (as per system configuration), and is not in use, it will be "
        "allocated to the service; otherwise creation of the service will fail. This field may not be "
        "changed through updates unless the type field is also being changed to ExternalName (which "
        "requires this field to be blank) or the type field is being changed from ExternalName (in which "
        'case this field may optionally be specified, as describe above).  Valid values are "None", empty '
        'string (""), or a valid IP address. Setting this to "None" makes a "headless service" (no virtual '
        "IP), which is useful when direct endpoint connections are preferred and proxying is not "
        "required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is "
        "specified when creating a Service of type ExternalName, creation will fail. This field will be "
        "wiped when updating a Service to type ExternalName. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    ),
    _col(
        "External-IP",
        "string",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for "
        "this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring "
        "that traffic arrives at a node with this IP.  A common example is external load-balancers that "
        "are not part of the Kubernetes system.",
    ),
    _col(
        "Port(s)",
        "string",
        "The list of ports that are exposed by this service. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    ),
    _age_col(),
    _col(
        "Selector",
        "string",
        "Route service traffic to pods with label keys and values matching this selector. If empty or not "
        "present, the service is assumed to have an external process managing its endpoints, which "
        "Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored "
        "if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/",
        1,
    ),
]

_ENDPOINTS_COLUMNS = [
    _name_col(),
    _col(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according "
        "to the IPs they share. A single address with multiple ports, some of which are ready and some of "
        "which are not (because they come from different containers) will result in the address being "
        "displayed in different subsets for the different ports. No address will appear in both "
        "Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a "
        "service.",
    ),
    _age_col(),
]

_CONFIGMAP_COLUMNS = [
    _name_col(),
    _col(
        "Data",
        "string",
        "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' "
        "or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in "
        "Data must not overlap with the keys in the BinaryData field, this is enforced during validation "
        "process.",
    ),
    _age_col(),
]

_SECRET_COLUMNS = [
    _name_col(),
    _col(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data. More info: "
        "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
    ),
    _col(
        "Data",
        "string",
        "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. "
        "The serialized form of the secret data is a base64 encoded string, representing the arbitrary "
        "(possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
    ),
    _age_col(),
]

# kubectl's event table leads with "Last Seen", not "Name": the one upstream
# table whose Name column is neither first nor shown by default.
_EVENT_COLUMNS = [
    _col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    _col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    _col(
        "Reason",
        "string",
        "This should be a short, machine understandable string that gives the reason for the transition "
        "into the object's current status.",
    ),
    _col("Object", "string", "The object that this event is about."),
    _col(
        "Subobject",
        "string",
        "If referring to a piece of an object instead of an entire object, this string should contain a "
        "valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, "
        "if the object reference is to a container within a pod, this would take on a value like: "
        '"spec.containers{name}" (where "name" refers to the name of the container that triggered the '
        'event) or if no container name is specified "spec.containers[2]" (container with index 2 in this '
        "pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
        1,
    ),
    _col(
        "Source",
        "string",
        "The component reporting this event. Should be a short machine understandable string.",
        1,
    ),
    _col("Message", "string", "A human-readable description of the status of this operation."),
    _col(
        "First Seen",
        "string",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        1,
    ),
    _col("Count", "string", "The number of times this event has occurred.", 1),
    _name_col(priority=1),
]

_SERVICE_ACCOUNT_COLUMNS = [
    _name_col(),
    _col(
        "Secrets",
        "string",
        "Secrets is a list of the secrets in the same namespace that pods running using this "
        "ServiceAccount are allowed to use. Pods are only limited to this list if this service account "
        'has a "kubernetes.io/enforce-mountable-secrets" annotation set to "true". The '
        '"kubernetes.io/enforce-mountable-secrets" annotation is deprecated since v1.32. Prefer separate '
        "namespaces to isolate access to mounted secrets. This field should not be used to find "
        "auto-generated service account token secrets for use outside of pods. Instead, tokens can be "
        "requested directly using the TokenRequest API, or service account token secrets can be manually "
        "created. More info: https://kubernetes.io/docs/concepts/configuration/secret",
    ),
    _age_col(),
]

_LEASE_COLUMNS = [
    _name_col(),
    _col(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader "
        "Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name "
        "field.",
    ),
    _age_col(),
]

_DEPLOYMENT_COLUMNS = [
    _name_col(),
    _col("Ready", "string", "Number of the pod with ready state"),
    # Upstream declares these two "string" but fills them with integers.
    _col("Up-to-date", "string", _DESC_UPDATED_REPLICAS),
    _col("Available", "string", _DESC_AVAILABLE_REPLICAS),
    _age_col(),
    _col("Containers", "string", _DESC_CONTAINERS, 1),
    _col("Images", "string", _DESC_IMAGES, 1),
    _col(
        "Selector",
        "string",
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will "
        "be the ones affected by this deployment.",
        1,
    ),
]

_REPLICASET_COLUMNS = [
    _name_col(),
    _col(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero "
        "and unspecified. Defaults to 1. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
    ),
    _col(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
    ),
    _col("Ready", "integer", "The number of ready replicas for this replica set."),
    _age_col(),
    _col("Containers", "string", _DESC_CONTAINERS, 1),
    _col("Images", "string", _DESC_IMAGES, 1),
    _col(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the replica count. If the selector is "
        "empty, it is defaulted to the labels present on the pod template. Label keys and values that "
        "must match in order to be controlled by this replica set. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        1,
    ),
]

_DAEMONSET_COLUMNS = [
    _name_col(),
    _col(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod (including nodes correctly running "
        "the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
    ),
    _col(
        "Current",
        "integer",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. "
        "More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
    ),
    _col(
        "Ready",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod "
        "running and ready.",
    ),
    _col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
    _col(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod "
        "running and available (ready for at least spec.minReadySeconds)",
    ),
    _col("Node Selector", "string", _DESC_NODE_SELECTOR),
    _age_col(),
    _col("Containers", "string", _DESC_CONTAINERS, 1),
    _col("Images", "string", _DESC_IMAGES, 1),
    _col(
        "Selector",
        "string",
        "A label query over pods that are managed by the daemon set. Must match in order to be controlled. "
        "If empty, defaulted to labels on Pod template. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        1,
    ),
]

_STATEFULSET_COLUMNS = [
    _name_col(),
    _col("Ready", "string", "Number of the pod with ready state"),
    _age_col(),
    _col("Containers", "string", _DESC_CONTAINERS, 1),
    _col("Images", "string", _DESC_IMAGES, 1),
]

_JOB_COLUMNS = [
    _name_col(),
    _col("Status", "string", "Status of the job."),
    _col(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded. The value increases monotonically for a given "
        "spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
    ),
    _col("Duration", "string", "Time required to complete the job."),
    _age_col(),
    _col("Containers", "string", _DESC_CONTAINERS, 1),
    _col("Images", "string", _DESC_IMAGES, 1),
    _col(
        "Selector",
        "string",
        "A label query over pods that should match the pod count. Normally, the system sets this field for "
        "you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        1,
    ),
]

_ENDPOINTSLICE_COLUMNS = [
    _name_col(),
    _col(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice. All addresses in this "
        "slice must be the same type. This field is immutable after creation. The following address types "
        "are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. "
        "* FQDN: Represents a Fully Qualified Domain Name.",
    ),
    _col(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must "
        "have a unique name. When ports is empty, it indicates that there are no defined ports. When a port "
        'is defined with a nil port value, it indicates "all ports". Each slice may include a maximum of '
        "100 ports.",
    ),
    _col(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
    ),
    _age_col(),
]

# What a resource without a printer gets: upstream's default for custom
# resources without additionalPrinterColumns (Name, then an "Age" date column).
_DEFAULT_COLUMNS = [_name_col(), _col("Age", "date", _DESC_AGE)]


# --------------------------------------------------------------------------
# Printers: one per resource, each returns the cells in column order
# --------------------------------------------------------------------------


def _is_restartable_init_container(container: Any) -> bool:
    # A sidecar: an init container with restartPolicy Always.
    return isinstance(container, dict) and container.get("restartPolicy") == "Always"


def _condition_true(conditions: Any, type_: str) -> bool:
    """Whether the first condition of this type has status "True"."""
    for cond in _l(conditions):
        cond = _d(cond)
        if cond.get("type") == type_:
            return cond.get("status") == "True"
    return False


def _later(current: Optional[datetime.datetime], candidate: Any) -> Optional[datetime.datetime]:
    """Keep the later of a restart date and a container's last termination time."""
    t = parse_timestamp(candidate)
    if t is not None and (current is None or current < t):
        return t
    return current


def _print_pod(pod: Obj, now: datetime.datetime) -> List[Any]:
    meta, spec, status = _d(pod.get("metadata")), _d(pod.get("spec")), _d(pod.get("status"))
    init_containers = [_d(c) for c in _l(spec.get("initContainers"))]
    init_by_name = {c.get("name"): c for c in init_containers}
    conditions = status.get("conditions")

    restarts = 0
    restartable_restarts = 0
    total = len(_l(spec.get("containers"))) + sum(map(_is_restartable_init_container, init_containers))
    ready = 0
    last_restart: Optional[datetime.datetime] = None
    last_restartable_restart: Optional[datetime.datetime] = None

    phase = _s(status.get("phase"))
    reason = _s(status.get("reason")) or phase
    for cond in _l(conditions):
        cond = _d(cond)
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    # Init containers run in order: the first one that has not succeeded (and
    # is not a started sidecar) names the pod's status.
    initializing = False
    for i, cs in enumerate(_l(status.get("initContainerStatuses"))):
        cs = _d(cs)
        state, last_state = _d(cs.get("state")), _d(cs.get("lastState"))
        restarts += _i(cs.get("restartCount"))
        if last_state.get("terminated") is not None:
            last_restart = _later(last_restart, _d(last_state["terminated"]).get("finishedAt"))
        sidecar = _is_restartable_init_container(init_by_name.get(cs.get("name")))
        if sidecar:
            restartable_restarts += _i(cs.get("restartCount"))
            if last_state.get("terminated") is not None:
                last_restartable_restart = _later(
                    last_restartable_restart, _d(last_state["terminated"]).get("finishedAt")
                )
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and _i(_d(terminated).get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if terminated is not None:
            terminated = _d(terminated)
            if not _s(terminated.get("reason")):
                if _i(terminated.get("signal")) != 0:
                    reason = f"Init:Signal:{_i(terminated.get('signal'))}"
                else:
                    reason = f"Init:ExitCode:{_i(terminated.get('exitCode'))}"
            else:
                reason = "Init:" + _s(terminated.get("reason"))
        elif waiting is not None and _s(_d(waiting).get("reason")) not in ("", "PodInitializing"):
            reason = "Init:" + _s(_d(waiting).get("reason"))
        else:
            reason = f"Init:{i}/{len(init_containers)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        # Once initialised only sidecar restarts still count.
        restarts = restartable_restarts
        last_restart = last_restartable_restart
        has_running = False
        # Walked backwards, so the first container with a reason wins.
        for cs in reversed(_l(status.get("containerStatuses"))):
            cs = _d(cs)
            state, last_state = _d(cs.get("state")), _d(cs.get("lastState"))
            restarts += _i(cs.get("restartCount"))
            if last_state.get("terminated") is not None:
                last_restart = _later(last_restart, _d(last_state["terminated"]).get("finishedAt"))
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and _s(_d(waiting).get("reason")):
                reason = _s(_d(waiting).get("reason"))
            elif terminated is not None and _s(_d(terminated).get("reason")):
                reason = _s(_d(terminated).get("reason"))
            elif terminated is not None:
                terminated = _d(terminated)
                if _i(terminated.get("signal")) != 0:
                    reason = f"Signal:{_i(terminated.get('signal'))}"
                else:
                    reason = f"ExitCode:{_i(terminated.get('exitCode'))}"
            elif cs.get("ready") is True and state.get("running") is not None:
                has_running = True
                ready += 1
        # A completed container next to a running one: the pod is still up.
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Failed", "Succeeded"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = f"{restarts} ({_since(last_restart, now)} ago)"

    # The internal pod's PodIPs[0]: v1 podIP wins over podIPs in conversion.
    pod_ip = _s(status.get("podIP")) or _s(_d((_l(status.get("podIPs")) or [None])[0]).get("ip")) or NONE
    gates = _l(spec.get("readinessGates"))
    readiness_gates = NONE
    if gates:
        true_count = 0
        for gate in gates:
            gate_type = _d(gate).get("conditionType")
            for cond in _l(conditions):
                cond = _d(cond)
                if cond.get("type") == gate_type:
                    true_count += cond.get("status") == "True"
                    break
        readiness_gates = f"{true_count}/{len(gates)}"

    return [
        _name(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _age(pod, now),
        pod_ip,
        _s(spec.get("nodeName")) or NONE,
        _s(status.get("nominatedNodeName")) or NONE,
        readiness_gates,
    ]


_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
_NODE_ROLE_LABEL = "kubernetes.io/role"


def _node_roles(labels: Any) -> List[str]:
    roles = set()
    for key, value in _d(labels).items():
        if key.startswith(_NODE_ROLE_PREFIX) and key[len(_NODE_ROLE_PREFIX) :]:
            roles.add(key[len(_NODE_ROLE_PREFIX) :])
        elif key == _NODE_ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def _node_address(status: Obj, type_: str) -> str:
    for address in _l(status.get("addresses")):
        address = _d(address)
        if address.get("type") == type_:
            return _s(address.get("address"))
    return NONE


def _print_node(node: Obj, now: datetime.datetime) -> List[Any]:
    spec, status = _d(node.get("spec")), _d(node.get("status"))
    # Only the Ready condition is shown; a later duplicate overrides an earlier one.
    ready_status = None
    for cond in _l(status.get("conditions")):
        cond = _d(cond)
        if cond.get("type") == "Ready":
            ready_status = cond.get("status")
    states = ["Unknown"] if ready_status is None else ["Ready" if ready_status == "True" else "NotReady"]
    if spec.get("unschedulable") is True:
        states.append("SchedulingDisabled")
    info = _d(status.get("nodeInfo"))
    return [
        _name(node),
        ",".join(states),
        ",".join(_node_roles(_d(node.get("metadata")).get("labels"))) or NONE,
        _age(node, now),
        _s(info.get("kubeletVersion")),
        _node_address(status, "InternalIP"),
        _node_address(status, "ExternalIP"),
        _s(info.get("osImage")) or UNKNOWN,
        _s(info.get("kernelVersion")) or UNKNOWN,
        _s(info.get("containerRuntimeVersion")) or UNKNOWN,
    ]


def _print_namespace(ns: Obj, now: datetime.datetime) -> List[Any]:
    return [_name(ns), _s(_d(ns.get("status")).get("phase")), _age(ns, now)]


def _service_external_ip(spec: Obj, status: Obj) -> str:
    """`getServiceExternalIP`, wide form (load-balancer addresses not clipped)."""
    svc_type = spec.get("type")
    external_ips = [_s(ip) for ip in _l(spec.get("externalIPs"))]
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else NONE
    if svc_type == "LoadBalancer":
        ingress = set()
        for ing in _l(_d(status.get("loadBalancer")).get("ingress")):
            ing = _d(ing)
            if _s(ing.get("ip")):
                ingress.add(ing["ip"])
            elif _s(ing.get("hostname")):
                ingress.add(ing["hostname"])
        lb_ips = ",".join(sorted(ingress))
        if external_ips:
            return ",".join(([lb_ips] if lb_ips else []) + external_ips)
        return lb_ips or "<pending>"
    if svc_type == "ExternalName":
        return _s(spec.get("externalName"))
    return UNKNOWN


def _print_service(svc: Obj, now: datetime.datetime) -> List[Any]:
    spec, status = _d(svc.get("spec")), _d(svc.get("status"))
    # The internal service's ClusterIPs[0]: v1 clusterIP wins in conversion.
    cluster_ip = _s(spec.get("clusterIP")) or _s((_l(spec.get("clusterIPs")) or [None])[0]) or NONE
    ports = []
    for port in _l(spec.get("ports")):
        port = _d(port)
        node_port = _i(port.get("nodePort"))
        prefix = f"{_i(port.get('port'))}:{node_port}" if node_port > 0 else f"{_i(port.get('port'))}"
        ports.append(f"{prefix}/{_s(port.get('protocol'))}")
    return [
        _name(svc),
        _s(spec.get("type")),
        cluster_ip,
        _service_external_ip(spec, status),
        ",".join(ports) or NONE,
        _age(svc, now),
        format_labels(spec.get("selector")),
    ]


def _join_host_port(host: str, port: int) -> str:
    # net.JoinHostPort brackets IPv6 literals.
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _format_endpoints(endpoints: Obj) -> str:
    """`formatEndpoints`: the first three ready "ip:port" pairs, then "+ N more..."."""
    subsets = _l(endpoints.get("subsets"))
    if not subsets:
        return NONE
    shown: List[str] = []
    count = 0
    for subset in subsets:
        subset = _d(subset)
        addresses = [_s(_d(a).get("ip")) for a in _l(subset.get("addresses"))]
        ports = [_d(p) for p in _l(subset.get("ports"))]
        # A headless service's subsets may have no ports: list bare IPs.
        pairs = (
            [[ip for ip in addresses]]
            if not ports
            else [[_join_host_port(ip, _i(p.get("port"))) for ip in addresses] for p in ports]
        )
        for group in pairs:
            count += len(group)
            for item in group:
                if len(shown) == 3:
                    break
                shown.append(item)
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if count > 3 else text


def _print_endpoints(ep: Obj, now: datetime.datetime) -> List[Any]:
    return [_name(ep), _format_endpoints(ep), _age(ep, now)]


def _print_configmap(cm: Obj, now: datetime.datetime) -> List[Any]:
    return [_name(cm), len(_d(cm.get("data"))) + len(_d(cm.get("binaryData"))), _age(cm, now)]


def _print_secret(secret: Obj, now: datetime.datetime) -> List[Any]:
    # Conversion folds stringData into data before the printer counts keys.
    keys = set(_d(secret.get("data"))) | set(_d(secret.get("stringData")))
    return [_name(secret), _s(secret.get("type")), len(keys), _age(secret, now)]


def _print_service_account(sa: Obj, now: datetime.datetime) -> List[Any]:
    return [_name(sa), len(_l(sa.get("secrets"))), _age(sa, now)]


def _print_lease(lease: Obj, now: datetime.datetime) -> List[Any]:
    return [_name(lease), _s(_d(lease.get("spec")).get("holderIdentity")), _age(lease, now)]


def _core_event_fields(event: Obj) -> Obj:
    """A core/v1 Event's fields the printer reads, as the internal Event has them."""
    return {
        "involvedObject": _d(event.get("involvedObject")),
        "message": _s(event.get("message")),
        "source": _d(event.get("source")),
        "firstTimestamp": event.get("firstTimestamp"),
        "lastTimestamp": event.get("lastTimestamp"),
        "count": _i(event.get("count")),
        "reportingController": _s(event.get("reportingComponent")),
        "reportingInstance": _s(event.get("reportingInstance")),
    }


def _events_v1_fields(event: Obj) -> Obj:
    """The same for an events.k8s.io/v1 Event, whose conversion to the internal
    (core) Event renames regarding, note and the deprecated* fields."""
    return {
        "involvedObject": _d(event.get("regarding")),
        "message": _s(event.get("note")),
        "source": _d(event.get("deprecatedSource")),
        "firstTimestamp": event.get("deprecatedFirstTimestamp"),
        "lastTimestamp": event.get("deprecatedLastTimestamp"),
        "count": _i(event.get("deprecatedCount")),
        "reportingController": _s(event.get("reportingController")),
        "reportingInstance": _s(event.get("reportingInstance")),
    }


def _print_event_fields(event: Obj, fields: Obj, now: datetime.datetime) -> List[Any]:
    # First Seen falls back to eventTime (new-style events set only that),
    # Last Seen to First Seen, and a series overrides both Last Seen and Count.
    first_seen = age(fields["firstTimestamp"], now)
    if parse_timestamp(fields["firstTimestamp"]) is None:
        first_seen = age(event.get("eventTime"), now)
    last_seen = age(fields["lastTimestamp"], now)
    if parse_timestamp(fields["lastTimestamp"]) is None:
        last_seen = first_seen
    count = fields["count"]
    series = event.get("series")
    if isinstance(series, dict):
        last_seen = age(series.get("lastObservedTime"), now)
        count = _i(series.get("count"))
    elif count == 0:
        count = 1  # singleton events carry no count in the new API
    involved = fields["involvedObject"]
    kind = _s(involved.get("kind")).lower()
    target = f"{kind}/{_s(involved.get('name'))}" if _s(involved.get("name")) else kind
    component = _s(fields["source"].get("component")) or fields["reportingController"]
    instance = _s(fields["source"].get("host")) or fields["reportingInstance"]
    source = f"{component}, {instance}" if instance else component
    return [
        last_seen,
        _s(event.get("type")),
        _s(event.get("reason")),
        target,
        _s(involved.get("fieldPath")),
        source,
        fields["message"].strip(),
        first_seen,
        count,
        _name(event),
    ]


def _print_event(event: Obj, now: datetime.datetime) -> List[Any]:
    return _print_event_fields(event, _core_event_fields(event), now)


def _print_events_v1_event(event: Obj, now: datetime.datetime) -> List[Any]:
    return _print_event_fields(event, _events_v1_fields(event), now)


def _print_deployment(deploy: Obj, now: datetime.datetime) -> List[Any]:
    spec, status = _d(deploy.get("spec")), _d(deploy.get("status"))
    selector = label_selector_string(spec.get("selector"))
    return [
        _name(deploy),
        f"{_i(status.get('readyReplicas'))}/{_i(spec.get('replicas'))}",
        _i(status.get("updatedReplicas")),
        _i(status.get("availableReplicas")),
        _age(deploy, now),
        *_container_cells(_template_spec(deploy)),
        "<invalid>" if selector is None else selector,
    ]


def _print_replicaset(rs: Obj, now: datetime.datetime) -> List[Any]:
    spec, status = _d(rs.get("spec")), _d(rs.get("status"))
    return [
        _name(rs),
        _i(spec.get("replicas")),
        _i(status.get("replicas")),
        _i(status.get("readyReplicas")),
        _age(rs, now),
        *_container_cells(_template_spec(rs)),
        format_label_selector(spec.get("selector")),
    ]


def _print_daemonset(ds: Obj, now: datetime.datetime) -> List[Any]:
    spec, status = _d(ds.get("spec")), _d(ds.get("status"))
    return [
        _name(ds),
        _i(status.get("desiredNumberScheduled")),
        _i(status.get("currentNumberScheduled")),
        _i(status.get("numberReady")),
        _i(status.get("updatedNumberScheduled")),
        _i(status.get("numberAvailable")),
        format_labels(_template_spec(ds).get("nodeSelector")),
        _age(ds, now),
        *_container_cells(_template_spec(ds)),
        format_label_selector(spec.get("selector")),
    ]


def _print_statefulset(sts: Obj, now: datetime.datetime) -> List[Any]:
    spec, status = _d(sts.get("spec")), _d(sts.get("status"))
    return [
        _name(sts),
        f"{_i(status.get('readyReplicas'))}/{_i(spec.get('replicas'))}",
        _age(sts, now),
        *_container_cells(_template_spec(sts)),
    ]


def _print_job(job: Obj, now: datetime.datetime) -> List[Any]:
    spec, status = _d(job.get("spec")), _d(job.get("status"))
    succeeded = _i(status.get("succeeded"))
    if _is_int(spec.get("completions")):
        completions = f"{succeeded}/{spec['completions']}"
    elif _i(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {_i(spec.get('parallelism'))}"
    else:
        completions = f"{succeeded}/1"

    start, finish = parse_timestamp(status.get("startTime")), parse_timestamp(status.get("completionTime"))
    if start is None:
        duration = ""
    elif finish is None:
        duration = _since(start, now)
    else:
        duration = human_duration((finish - start).total_seconds())

    conditions = status.get("conditions")
    if _condition_true(conditions, "Complete"):
        job_status = "Complete"
    elif _condition_true(conditions, "Failed"):
        job_status = "Failed"
    elif _d(job.get("metadata")).get("deletionTimestamp"):
        job_status = "Terminating"
    elif _condition_true(conditions, "Suspended"):
        job_status = "Suspended"
    elif _condition_true(conditions, "FailureTarget"):
        job_status = "FailureTarget"
    else:
        job_status = "Running"

    return [
        _name(job),
        job_status,
        completions,
        duration,
        _age(job, now),
        *_container_cells(_template_spec(job)),
        format_label_selector(spec.get("selector")),
    ]


def _print_endpointslice(slice_: Obj, now: datetime.datetime) -> List[Any]:
    ports = []
    for port in _l(slice_.get("ports")):
        port = _d(port)
        if _is_int(port.get("port")):
            ports.append(str(port["port"]))
        elif isinstance(port.get("name"), str):
            ports.append(port["name"])
        else:
            ports.append("*")
    addresses = [_s(a) for ep in _l(slice_.get("endpoints")) for a in _l(_d(ep).get("addresses"))]
    return [
        _name(slice_),
        _s(slice_.get("addressType")),
        _list_with_more(ports),
        _list_with_more(addresses),
        _age(slice_, now),
    ]


def _print_default(obj: Obj, now: datetime.datetime) -> List[Any]:
    # The custom-resource convertor's "date" cell: nothing when the field is
    # absent, "<invalid>" when it does not parse.
    created = _d(obj.get("metadata")).get("creationTimestamp")
    if created is None:
        return [_name(obj), None]
    t = parse_timestamp(created)
    return [_name(obj), "<invalid>" if t is None else _since(t, now)]


_TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("", "pods"): (_POD_COLUMNS, _print_pod),
    ("", "nodes"): (_NODE_COLUMNS, _print_node),
    ("", "namespaces"): (_NAMESPACE_COLUMNS, _print_namespace),
    ("", "services"): (_SERVICE_COLUMNS, _print_service),
    ("", "endpoints"): (_ENDPOINTS_COLUMNS, _print_endpoints),
    ("", "configmaps"): (_CONFIGMAP_COLUMNS, _print_configmap),
    ("", "secrets"): (_SECRET_COLUMNS, _print_secret),
    ("", "events"): (_EVENT_COLUMNS, _print_event),
    ("", "serviceaccounts"): (_SERVICE_ACCOUNT_COLUMNS, _print_service_account),
    ("coordination.k8s.io", "leases"): (_LEASE_COLUMNS, _print_lease),
    ("apps", "deployments"): (_DEPLOYMENT_COLUMNS, _print_deployment),
    ("apps", "replicasets"): (_REPLICASET_COLUMNS, _print_replicaset),
    ("apps", "daemonsets"): (_DAEMONSET_COLUMNS, _print_daemonset),
    ("apps", "statefulsets"): (_STATEFULSET_COLUMNS, _print_statefulset),
    ("batch", "jobs"): (_JOB_COLUMNS, _print_job),
    ("events.k8s.io", "events"): (_EVENT_COLUMNS, _print_events_v1_event),
    ("discovery.k8s.io", "endpointslices"): (_ENDPOINTSLICE_COLUMNS, _print_endpointslice),
}


def column_definitions(group: str, resource: str) -> List[Obj]:
    """The meta.k8s.io/v1 TableColumnDefinitions for a resource (fresh dicts,
    safe to mutate). Resources without a printer get Name and Age."""
    columns, _ = _TABLES.get((group, resource), (_DEFAULT_COLUMNS, _print_default))
    return [dict(c) for c in columns]


def row_cells(group: str, resource: str, obj: Obj, now: datetime.datetime) -> List[Any]:
    """One object's cells, in `column_definitions` order, as upstream renders
    them (strings and integers). `now` is the time ages are measured to; a
    naive datetime is taken as UTC."""
    _, printer = _TABLES.get((group, resource), (_DEFAULT_COLUMNS, _print_default))
    return printer(obj if isinstance(obj, dict) else {}, now)
