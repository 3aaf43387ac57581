"""Defaulting: the values the server fills in for fields a client left out.

`apply_defaults(group, resource, obj)` mutates a decoded object the way
kube-apiserver 1.32 does when it decodes a create or update body: the
SetDefaults_* functions of pkg/apis/{core,apps,batch,discovery}/v1/defaults.go
and the generated defaulters that walk nested types (pod templates, volumes,
probes, ports, `+default=` markers), with 1.32's default feature gates
(InPlacePodVerticalScaling, PodLevelResources, ImageVolume and
MaxUnavailableStatefulSet off; StatefulSetAutoDeletePVC,
JobPodReplacementPolicy and LoadBalancerIPMode on).

It also owns two things that happen at the same point upstream, because
megaplane has no Go structs and no internal version for them to happen in:

* Go's zero values (`fill_zero_values`). Upstream decodes into structs, so a
  field without `omitempty` is always written back, as 0, "" or false. The
  official Python client's models mark such fields required (ReplicaSet
  status.replicas, Node status.nodeInfo.*, a container status's
  ready/restartCount/image/imageID...) and refuse an object without them.
* Secret `stringData`, which v1->internal conversion folds into `data`.

Not here: what registry strategies and admission do (status reset, namespace
phase and finalizers, pod phase and QoS class, service IP and port allocation
and IP families, Job selectors, service accounts, priorities, tolerations),
names, and canonicalising resource quantities.

`obj` is plain decoded JSON and need not be valid: defaulting never raises,
it leaves a field it cannot interpret for validation to reject. An explicit
JSON null counts as unset, as it does for Go's decoder.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

__all__ = ["apply_defaults", "fill_zero_values", "image_pull_policy"]

Obj = Dict[str, Any]


def apply_defaults(group: str, resource: str, obj: Obj) -> None:
    """Apply upstream defaulting for `group`/`resource` to `obj`, in place.

    Idempotent. Unknown resources are left alone.
    """
    if not isinstance(obj, dict):
        return
    run_defaulters(group, resource, obj)
    fill_zero_values(group, resource, obj)


def run_defaulters(group: str, resource: str, obj: Obj) -> None:
    """The kind's defaulting functions alone; the API server fills zero values once, after its strategy."""
    defaulter = _DEFAULTERS.get((group, resource))
    if defaulter is not None:
        defaulter(obj)


# --------------------------------------------------------------------------
# Tolerant access to decoded JSON
# --------------------------------------------------------------------------


def _dict(parent: Any, key: str, create: bool = False) -> Optional[Obj]:
    """parent[key] if it is an object; with `create`, an empty one is put
    there when the key is unset. None when it holds something else."""
    if not isinstance(parent, dict):
        return None
    value = parent.get(key)
    if value is None and create:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def _dicts(parent: Any, key: str) -> Iterator[Obj]:
    """The objects in the list parent[key], skipping anything malformed."""
    value = parent.get(key) if isinstance(parent, dict) else None
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield item


def _default(obj: Obj, key: str, value: Any) -> None:
    """Default a pointer field: only when unset (missing or null)."""
    if obj.get(key) is None:
        obj[key] = value


def _default_if_zero(obj: Obj, key: str, value: Any) -> None:
    """Default a non-pointer field: when unset or holding Go's zero value ("" or 0)."""
    current = obj.get(key)
    if current is None or current == "" or current == 0:
        obj[key] = value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------
# Image names (imagePullPolicy depends on the tag)
# --------------------------------------------------------------------------

# The docker reference grammar (github.com/distribution/reference, which
# kubelet's parsers.ParseImageName uses), ASCII only as in Go.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}))?",
    re.ASCII,
)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}", re.ASCII)


def _image_tag(image: str) -> Optional[str]:
    """The tag `parsers.ParseImageName` finds: "latest" when the reference has
    neither tag nor digest, None when it has only a digest or does not parse."""
    if _IDENTIFIER.fullmatch(image):
        return None  # a bare image ID is refused by ParseNormalizedNamed
    # ParseNormalizedNamed: the first path element is a registry only if it
    # looks like one (has "." or ":", is "localhost", or has upper case).
    first, slash, rest = image.partition("/")
    if slash and (any(ch in first for ch in ".:") or first == "localhost" or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = "docker.io", image
    if remainder.split(":", 1)[0].lower() != remainder.split(":", 1)[0]:
        return None  # repository names must be lower case
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    match = _REFERENCE.fullmatch(f"{domain}/{remainder}")
    if match is None or len(match.group("name")) > 255:
        return None
    if match.group("tag"):
        return match.group("tag")
    return None if match.group("digest") else "latest"


def image_pull_policy(image: Any) -> str:
    """The imagePullPolicy a container gets by default: Always for a ":latest"
    or untagged image, IfNotPresent otherwise (including unparseable names)."""
    if not isinstance(image, str):
        return "IfNotPresent"
    policy = _PULL_POLICIES.get(image)
    if policy is None:
        policy = "Always" if _image_tag(image) == "latest" else "IfNotPresent"
        if len(_PULL_POLICIES) >= 4096:  # a fleet runs few distinct images; bound it anyway
            _PULL_POLICIES.clear()
        _PULL_POLICIES[image] = policy
    return policy


_PULL_POLICIES: Dict[str, str] = {}


# --------------------------------------------------------------------------
# core/v1: containers, probes, volumes, pod specs
# --------------------------------------------------------------------------


def _default_http_get(action: Optional[Obj]) -> None:
    if action is not None:
        _default_if_zero(action, "path", "/")
        _default_if_zero(action, "scheme", "HTTP")


def _default_probe(probe: Optional[Obj]) -> None:
    if probe is None:
        return
    _default_if_zero(probe, "timeoutSeconds", 1)
    _default_if_zero(probe, "periodSeconds", 10)
    _default_if_zero(probe, "successThreshold", 1)
    _default_if_zero(probe, "failureThreshold", 3)
    _default_http_get(_dict(probe, "httpGet"))
    grpc = _dict(probe, "grpc")
    if grpc is not None:
        _default(grpc, "service", "")


def _default_field_ref(holder: Obj) -> None:
    field_ref = _dict(holder, "fieldRef")
    if field_ref is not None:
        _default_if_zero(field_ref, "apiVersion", "v1")


def _default_container(container: Obj) -> None:
    """SetDefaults_Container plus what the generated defaulter does inside one
    (also used for ephemeral containers, which share the fields)."""
    if not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = image_pull_policy(container.get("image"))
    _default_if_zero(container, "terminationMessagePath", "/dev/termination-log")
    _default_if_zero(container, "terminationMessagePolicy", "File")
    for port in _dicts(container, "ports"):
        _default_if_zero(port, "protocol", "TCP")
    for env in _dicts(container, "env"):
        value_from = _dict(env, "valueFrom")
        if value_from is not None:
            _default_field_ref(value_from)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(_dict(container, probe))
    lifecycle = _dict(container, "lifecycle")
    for hook in ("postStart", "preStop"):
        _default_http_get(_dict(_dict(lifecycle, hook), "httpGet"))


# Volume mode 0644, as upstream writes it (decimal).
_DEFAULT_FILE_MODE = 420


def _default_pvc_spec(spec: Optional[Obj]) -> None:
    if spec is not None:
        _default(spec, "volumeMode", "Filesystem")


def _default_mode(source: Obj) -> None:
    _default(source, "defaultMode", _DEFAULT_FILE_MODE)


def _default_downward_api(source: Obj) -> None:
    _default(source, "defaultMode", _DEFAULT_FILE_MODE)
    for item in _dicts(source, "items"):
        _default_field_ref(item)


def _default_projected(source: Obj) -> None:
    _default(source, "defaultMode", _DEFAULT_FILE_MODE)
    for projection in _dicts(source, "sources"):
        for item in _dicts(_dict(projection, "downwardAPI"), "items"):
            _default_field_ref(item)
        token = _dict(projection, "serviceAccountToken")
        if token is not None:
            _default(token, "expirationSeconds", 3600)


def _default_rbd(source: Obj) -> None:
    _default_if_zero(source, "pool", "rbd")
    _default_if_zero(source, "user", "admin")
    _default_if_zero(source, "keyring", "/etc/ceph/keyring")


def _default_azure_disk(source: Obj) -> None:
    _default(source, "cachingMode", "ReadWrite")
    _default(source, "fsType", "ext4")
    _default(source, "readOnly", False)
    _default(source, "kind", "Shared")


def _default_scale_io(source: Obj) -> None:
    _default_if_zero(source, "storageMode", "ThinProvisioned")
    _default_if_zero(source, "fsType", "xfs")


# Per volume source, its defaulter: a volume has one source, so dispatching on
# the keys it has beats asking for every source it might have.
_VOLUME_SOURCE_DEFAULTS: Dict[str, Callable[[Obj], None]] = {
    "hostPath": lambda source: _default(source, "type", ""),
    "secret": _default_mode,
    "configMap": _default_mode,
    "downwardAPI": _default_downward_api,
    "projected": _default_projected,
    "iscsi": lambda source: _default_if_zero(source, "iscsiInterface", "default"),
    "rbd": _default_rbd,
    "azureDisk": _default_azure_disk,
    "scaleIO": _default_scale_io,
    "ephemeral": lambda source: _default_pvc_spec(_dict(_dict(source, "volumeClaimTemplate"), "spec")),
}


def _default_volume(volume: Obj) -> None:
    # A volume naming no source at all is an emptyDir.
    if all(value is None for key, value in volume.items() if key != "name"):
        volume["emptyDir"] = {}
    for key, source in list(volume.items()):
        defaulter = _VOLUME_SOURCE_DEFAULTS.get(key)
        if defaulter is not None and isinstance(source, dict):
            defaulter(source)


def _default_pod_spec(spec: Optional[Obj]) -> None:
    """SetDefaults_PodSpec and everything nested: what every pod template gets.

    Pod-only defaults (enableServiceLinks, requests from limits, host ports)
    are in `_default_pod`: upstream keeps them out of templates so that adding
    one never changes every Deployment's template hash.
    """
    if spec is None:
        return
    _default_if_zero(spec, "dnsPolicy", "ClusterFirst")
    _default_if_zero(spec, "restartPolicy", "Always")
    _default(spec, "securityContext", {})
    _default(spec, "terminationGracePeriodSeconds", 30)
    _default_if_zero(spec, "schedulerName", "default-scheduler")
    for volume in _dicts(spec, "volumes"):
        _default_volume(volume)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in _dicts(spec, key):
            _default_container(container)


def _default_template(workload: Obj) -> None:
    """The pod template of a workload (Deployment, Job, ...): spec.template.spec."""
    template = _dict(_dict(workload, "spec"), "template")
    if template is not None:
        _default_pod_spec(_dict(template, "spec", create=True))


def _default_pod(pod: Obj) -> None:
    spec = _dict(pod, "spec")
    if spec is not None:
        for key in ("containers", "initContainers"):
            for container in _dicts(spec, key):
                # Requests default to limits, resource by resource.
                resources = _dict(container, "resources")
                limits = _dict(resources, "limits")
                if limits:
                    requests = _dict(resources, "requests", create=True)
                    if requests is not None:
                        for name, quantity in limits.items():
                            requests.setdefault(name, quantity)
        _default(spec, "enableServiceLinks", True)
        if spec.get("hostNetwork") is True:
            # On the host's network a container port is a host port.
            for key in ("containers", "initContainers"):
                for container in _dicts(spec, key):
                    for port in _dicts(container, "ports"):
                        if not port.get("hostPort") and _is_int(port.get("containerPort")):
                            port["hostPort"] = port["containerPort"]
    _default_pod_spec(spec)


# --------------------------------------------------------------------------
# core/v1: the other kinds
# --------------------------------------------------------------------------

# DefaultClientIPServiceAffinitySeconds: three hours.
_CLIENT_IP_AFFINITY_SECONDS = 10800


def _default_service(service: Obj) -> None:
    spec = _dict(service, "spec")
    if spec is None:
        return
    _default_if_zero(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _dict(_dict(spec, "sessionAffinityConfig"), "clientIP")
        if client_ip is None or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": _CLIENT_IP_AFFINITY_SECONDS}}
    _default_if_zero(spec, "type", "ClusterIP")
    for port in _dicts(spec, "ports"):
        _default_if_zero(port, "protocol", "TCP")
        # An unset (0 or "") targetPort means "the same as port".
        if port.get("targetPort") in (None, 0, "") and _is_int(port.get("port")):
            port["targetPort"] = port["port"]
    svc_type = spec["type"]
    externally_accessible = svc_type in ("LoadBalancer", "NodePort") or (
        svc_type == "ClusterIP" and bool(spec.get("externalIPs"))
    )
    if externally_accessible:
        _default_if_zero(spec, "externalTrafficPolicy", "Cluster")
    if svc_type in ("ClusterIP", "NodePort", "LoadBalancer"):
        _default(spec, "internalTrafficPolicy", "Cluster")
    if svc_type == "LoadBalancer":
        _default(spec, "allocateLoadBalancerNodePorts", True)
        load_balancer = _dict(_dict(service, "status"), "loadBalancer")
        for ingress in _dicts(load_balancer, "ingress"):
            if ingress.get("ip") and ingress.get("ipMode") is None:
                ingress["ipMode"] = "VIP"


def _default_endpoints(endpoints: Obj) -> None:
    for subset in _dicts(endpoints, "subsets"):
        for port in _dicts(subset, "ports"):
            _default_if_zero(port, "protocol", "TCP")


def _default_namespace(namespace: Obj) -> None:
    # Every named namespace carries its name as a label, for selectors.
    metadata = _dict(namespace, "metadata")
    name = metadata.get("name") if metadata is not None else None
    if isinstance(name, str) and name:
        labels = _dict(metadata, "labels", create=True)
        if labels is not None:
            labels["kubernetes.io/metadata.name"] = name


def _default_node(node: Obj) -> None:
    # A node that reports capacity but not allocatable can allocate all of it.
    status = _dict(node, "status")
    if status is not None and status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


def _default_secret(secret: Obj) -> None:
    _default_if_zero(secret, "type", "Opaque")
    # v1 -> internal conversion: stringData is write-only sugar for data; its
    # entries overwrite data's and it is never stored or returned.
    if "stringData" in secret and secret["stringData"] is None:
        del secret["stringData"]
    string_data = secret.get("stringData")
    if not isinstance(string_data, dict) or not all(isinstance(v, str) for v in string_data.values()):
        return  # malformed: left for validation to reject
    if string_data:
        data = _dict(secret, "data", create=True)
        if data is None:
            return
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()
    del secret["stringData"]


# --------------------------------------------------------------------------
# apps/v1, batch/v1, discovery/v1
# --------------------------------------------------------------------------


def _default_deployment(deployment: Obj) -> None:
    spec = _dict(deployment, "spec")
    if spec is not None:
        _default(spec, "replicas", 1)
        strategy = _dict(spec, "strategy", create=True)
        if strategy is not None:
            _default_if_zero(strategy, "type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = _dict(strategy, "rollingUpdate", create=True)
                if rolling is not None:
                    _default(rolling, "maxUnavailable", "25%")
                    _default(rolling, "maxSurge", "25%")
        _default(spec, "revisionHistoryLimit", 10)
        _default(spec, "progressDeadlineSeconds", 600)
    _default_template(deployment)


def _default_replicaset(replicaset: Obj) -> None:
    spec = _dict(replicaset, "spec")
    if spec is not None:
        _default(spec, "replicas", 1)
    _default_template(replicaset)


def _default_daemonset(daemonset: Obj) -> None:
    spec = _dict(daemonset, "spec")
    if spec is not None:
        strategy = _dict(spec, "updateStrategy", create=True)
        if strategy is not None:
            _default_if_zero(strategy, "type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = _dict(strategy, "rollingUpdate", create=True)
                if rolling is not None:
                    _default(rolling, "maxUnavailable", 1)
                    _default(rolling, "maxSurge", 0)
        _default(spec, "revisionHistoryLimit", 10)
    _default_template(daemonset)


def _default_statefulset(statefulset: Obj) -> None:
    spec = _dict(statefulset, "spec")
    if spec is not None:
        _default_if_zero(spec, "podManagementPolicy", "OrderedReady")
        strategy = _dict(spec, "updateStrategy", create=True)
        if strategy is not None:
            # rollingUpdate is only added when the type itself was defaulted.
            if not strategy.get("type"):
                strategy["type"] = "RollingUpdate"
                _dict(strategy, "rollingUpdate", create=True)
            rolling = _dict(strategy, "rollingUpdate")
            if strategy["type"] == "RollingUpdate" and rolling is not None:
                _default(rolling, "partition", 0)
        retention = _dict(spec, "persistentVolumeClaimRetentionPolicy", create=True)
        if retention is not None:
            _default_if_zero(retention, "whenDeleted", "Retain")
            _default_if_zero(retention, "whenScaled", "Retain")
        _default(spec, "replicas", 1)
        _default(spec, "revisionHistoryLimit", 10)
        for claim in _dicts(spec, "volumeClaimTemplates"):
            status = _dict(claim, "status", create=True)
            if status is not None:
                _default_if_zero(status, "phase", "Pending")
            _default_pvc_spec(_dict(claim, "spec", create=True))
    _default_template(statefulset)


# math.MaxInt32: with a per-index backoff limit the job-wide one is "no limit".
_MAX_INT32 = 2**31 - 1


def _default_job(job: Obj) -> None:
    spec = _dict(job, "spec")
    if spec is not None:
        # A non-parallel job may leave both unset: then both are 1.
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
        _default(spec, "parallelism", 1)
        _default(spec, "backoffLimit", 6 if spec.get("backoffLimitPerIndex") is None else _MAX_INT32)
        template_labels = _dict(_dict(_dict(spec, "template"), "metadata"), "labels")
        metadata = _dict(job, "metadata")
        if template_labels and metadata is not None and not metadata.get("labels"):
            metadata["labels"] = dict(template_labels)
        _default(spec, "completionMode", "NonIndexed")
        _default(spec, "suspend", False)
        failure_policy = _dict(spec, "podFailurePolicy")
        _default(spec, "podReplacementPolicy", "TerminatingOrFailed" if failure_policy is None else "Failed")
        _default(spec, "manualSelector", False)
        for rule in _dicts(failure_policy, "rules"):
            for pattern in _dicts(rule, "onPodConditions"):
                _default_if_zero(pattern, "status", "True")
    _default_template(job)


def _default_cronjob(cronjob: Obj) -> None:
    spec = _dict(cronjob, "spec")
    if spec is not None:
        _default_if_zero(spec, "concurrencyPolicy", "Allow")
        _default(spec, "suspend", False)
        _default(spec, "successfulJobsHistoryLimit", 3)
        _default(spec, "failedJobsHistoryLimit", 1)
        # The job template's pod template is defaulted as a pod's (not as a Job: completions stay unset).
        _default_template(_dict(spec, "jobTemplate") or {})


def _default_endpointslice(endpointslice: Obj) -> None:
    for port in _dicts(endpointslice, "ports"):
        _default(port, "name", "")
        _default(port, "protocol", "TCP")


_DEFAULTERS: Dict[Tuple[str, str], Callable[[Obj], None]] = {
    ("", "pods"): _default_pod,
    ("", "services"): _default_service,
    ("", "endpoints"): _default_endpoints,
    ("", "namespaces"): _default_namespace,
    ("", "nodes"): _default_node,
    ("", "secrets"): _default_secret,
    ("apps", "deployments"): _default_deployment,
    ("apps", "replicasets"): _default_replicaset,
    ("apps", "daemonsets"): _default_daemonset,
    ("apps", "statefulsets"): _default_statefulset,
    ("batch", "jobs"): _default_job,
    ("batch", "cronjobs"): _default_cronjob,
    ("discovery.k8s.io", "endpointslices"): _default_endpointslice,
    # configmaps, serviceaccounts, events (both groups) and leases have no
    # visible defaults: SetDefaults_ConfigMap's empty data map is omitted on
    # the wire.
}


# --------------------------------------------------------------------------
# Go zero values that are always on the wire
# --------------------------------------------------------------------------

_NODE_INFO_FIELDS = (
    "machineID",
    "systemUUID",
    "bootID",
    "kernelVersion",
    "osImage",
    "containerRuntimeVersion",
    "kubeletVersion",
    "kubeProxyVersion",
    "operatingSystem",
    "architecture",
)

# Status counters without omitempty, by resource.
_STATUS_COUNTERS: Dict[Tuple[str, str], Tuple[str, ...]] = {
    ("apps", "replicasets"): ("replicas",),
    ("apps", "daemonsets"): (
        "currentNumberScheduled",
        "numberMisscheduled",
        "desiredNumberScheduled",
        "numberReady",
    ),
    ("apps", "statefulsets"): ("replicas", "availableReplicas"),
}


def _fill_container_status(status: Obj) -> None:
    for key, zero in (("name", ""), ("ready", False), ("restartCount", 0), ("image", ""), ("imageID", "")):
        _default(status, key, zero)
    # state and lastState are structs: always written, terminated with its exit code.
    for key in ("state", "lastState"):
        terminated = _dict(_dict(status, key, create=True), "terminated")
        if terminated is not None:
            _default(terminated, "exitCode", 0)


def fill_zero_values(group: str, resource: str, obj: Obj) -> None:
    """Add the fields upstream always serialises even when they hold Go's
    zero value, and which the official Python client therefore requires.

    Part of `apply_defaults`; exposed for a caller that rebuilds a status
    (say, a strategy resetting it on create) after defaulting has run.
    """
    if not isinstance(obj, dict):
        return
    counters = _STATUS_COUNTERS.get((group, resource))
    if counters:
        status = _dict(obj, "status", create=True)
        if status is not None:
            for counter in counters:
                _default(status, counter, 0)
    elif (group, resource) == ("", "nodes"):
        status = _dict(obj, "status", create=True)
        if status is not None:
            endpoint = _dict(_dict(status, "daemonEndpoints", create=True), "kubeletEndpoint", create=True)
            if endpoint is not None:
                _default(endpoint, "Port", 0)
            info = _dict(status, "nodeInfo", create=True)
            if info is not None:
                for field in _NODE_INFO_FIELDS:
                    _default(info, field, "")
    elif (group, resource) == ("", "pods"):
        status = _dict(obj, "status")
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            for container_status in _dicts(status, key):
                _fill_container_status(container_status)
