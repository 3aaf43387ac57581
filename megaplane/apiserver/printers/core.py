"""Printers for the other core/v1 kinds: nodes, namespaces, services, endpoints, configmaps, secrets, serviceaccounts,
resourcequotas, limitranges.

Each follows its print<Kind> function in k8s.io/kubernetes pkg/printers/internalversion/printers.go.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Tuple

from megaplane.apiserver.printers.base import (
    _DESC_AGE,
    Obj,
    Printer,
    _age,
    _age_col,
    _col,
    _d,
    _i,
    _l,
    _name,
    _name_col,
    _s,
)
from megaplane.apiserver.printers.format import NONE, UNKNOWN, format_labels

_DESC_NODE_ADDRESSES = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. More info: "
    "https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as "
    "mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it "
    "is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for "
    "an example. Consumers should assume that addresses can change during the lifetime of a Node. "
    "However, there are some exceptions where this may not be possible, such as Pods that inherit a "
    "Node's address in its own status or consumers of the downward API (status.hostIP)."
)

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


_RESOURCE_QUOTA_COLUMNS = [
    _name_col(),
    _age_col(),
    _col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
    _col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent "
         "of contention on the node."),
]
_LIMIT_RANGE_COLUMNS = [
    _name_col(),
    _col("Created At", "date", _DESC_AGE),
]


def _print_resource_quota(quota: Obj, now: datetime.datetime) -> List[Any]:
    """printResourceQuota: `name: used/hard` of status.hard, limits.* in the Limit column, the rest in Request."""
    status = _d(quota.get("status"))
    hard, used = _d(status.get("hard")), _d(status.get("used"))
    request: List[str] = []
    limit: List[str] = []
    for name in sorted(hard):
        pieces = name.split(".")
        (limit if len(pieces) > 1 and pieces[0] == "limits" else request).append(
            f"{name}: {used.get(name, '0')}/{hard[name]}")
    return [_name(quota), _age(quota, now), ", ".join(request), ", ".join(limit)]


def _print_limit_range(lr: Obj, now: datetime.datetime) -> List[Any]:
    return [_name(lr), _s(_d(lr.get("metadata")).get("creationTimestamp"))]


# What this module prints, by (API group, resource).
TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("", "nodes"): (_NODE_COLUMNS, _print_node),
    ("", "namespaces"): (_NAMESPACE_COLUMNS, _print_namespace),
    ("", "services"): (_SERVICE_COLUMNS, _print_service),
    ("", "endpoints"): (_ENDPOINTS_COLUMNS, _print_endpoints),
    ("", "configmaps"): (_CONFIGMAP_COLUMNS, _print_configmap),
    ("", "secrets"): (_SECRET_COLUMNS, _print_secret),
    ("", "serviceaccounts"): (_SERVICE_ACCOUNT_COLUMNS, _print_service_account),
    ("", "resourcequotas"): (_RESOURCE_QUOTA_COLUMNS, _print_resource_quota),
    ("", "limitranges"): (_LIMIT_RANGE_COLUMNS, _print_limit_range),
}
