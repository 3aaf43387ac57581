"""Unknown-field detection and the fieldValidation directive, checked against upstream's wording.

Known-good objects (as users write them and as controllers fill them in, with
status, managedFields and the free-form corners of the schemas) must produce
no unknown fields for every served kind; typos must be reported with
upstream's paths ("spec.containers[0].foo") and messages.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Tuple

import pytest

from megaplane.apiserver.schema import fieldschema
from megaplane.apiserver.schema import fieldvalidation as fv
from megaplane.apiserver.schema.fieldvalidation import (
    FieldValidationError,
    InvalidDirectiveError,
    unknown_fields,
    validate,
)

META: Dict[str, Any] = {
    "name": "x",
    "namespace": "default",
    "uid": "6b1e1c1e-0000-4000-8000-000000000001",
    "resourceVersion": "42",
    "generation": 3,
    "creationTimestamp": "2024-01-01T00:00:00Z",
    "labels": {"app.kubernetes.io/name": "web", "tier": ""},
    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "weird key/with.dots": "v"},
    "finalizers": ["example.com/cleanup"],
    "ownerReferences": [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web-1",
            "uid": "u",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ],
    "managedFields": [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": "2024-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            # FieldsV1 is free-form: anything goes below it
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {'k:{"name":"c"}': {}},
            },
        }
    ],
}

CONTAINER: Dict[str, Any] = {
    "name": "c",
    "image": "nginx:1.27",
    "imagePullPolicy": "IfNotPresent",
    "command": ["sh", "-c"],
    "args": ["exec nginx"],
    "workingDir": "/",
    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
    "env": [
        {"name": "A", "value": "1"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}}},
    ],
    "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
    # Quantity: strings or plain numbers
    "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": 0.25, "memory": 134217728}},
    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
    # IntOrString: named port and number
    "livenessProbe": {
        "httpGet": {"path": "/healthz", "port": "http", "httpHeaders": [{"name": "X", "value": "y"}]},
        "initialDelaySeconds": 3,
        "periodSeconds": 10,
    },
    "readinessProbe": {"tcpSocket": {"port": 80}, "failureThreshold": 3},
    "startupProbe": {"exec": {"command": ["true"]}},
    "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "terminationMessagePolicy": "FallbackToLogsOnError",
    "stdin": False,
    "tty": False,
}

POD_SPEC: Dict[str, Any] = {
    "containers": [CONTAINER],
    "initContainers": [{"name": "init", "image": "busybox", "restartPolicy": "Always"}],
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "serviceAccountName": "default",
    "nodeName": "node-1",
    "hostNetwork": False,
    "securityContext": {"fsGroup": 2000, "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
    "imagePullSecrets": [{"name": "regcred"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
                ]
            }
        },
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": "web"}},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        },
    },
    "tolerations": [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        }
    ],
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}},
        }
    ],
    "volumes": [
        {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "a", "path": "a.txt"}]}},
        {"name": "sec", "secret": {"secretName": "s", "defaultMode": 420}},
        {"name": "pvc", "persistentVolumeClaim": {"claimName": "data"}},
        {
            "name": "proj",
            "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]},
        },
    ],
    "overhead": {"cpu": "10m"},
    "priority": 0,
    "schedulerName": "default-scheduler",
    "enableServiceLinks": True,
    "preemptionPolicy": "PreemptLowerPriority",
}

POD_TEMPLATE: Dict[str, Any] = {
    "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
    "spec": POD_SPEC,
}
SELECTOR = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}
CONDITION = {
    "type": "Ready",
    "status": "True",
    "lastTransitionTime": "2024-01-01T00:00:00Z",
    "reason": "R",
    "message": "m",
}
NOW = "2024-01-01T00:00:00Z"
MICRO = "2024-01-01T00:00:00.123456Z"

GOOD: List[Tuple[str, str, str, Dict[str, Any]]] = [
    (
        "",
        "v1",
        "Namespace",
        {
            "metadata": {"name": "x", "labels": {"kubernetes.io/metadata.name": "x"}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {
                "phase": "Active",
                "conditions": [{"type": "NamespaceDeletionContentFailure", "status": "False"}],
            },
        },
    ),
    (
        "",
        "v1",
        "Node",
        {
            "spec": {
                "podCIDR": "10.0.0.0/24",
                "podCIDRs": ["10.0.0.0/24"],
                "providerID": "fake://n",
                "taints": [{"key": "k", "value": "v", "effect": "NoSchedule", "timeAdded": NOW}],
                "unschedulable": False,
            },
            "status": {
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "3900m", "memory": "15Gi", "pods": 110},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastHeartbeatTime": NOW,
                        "lastTransitionTime": NOW,
                        "reason": "KubeletReady",
                        "message": "ok",
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "10.0.0.1"},
                    {"type": "Hostname", "address": "n"},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": "m",
                    "systemUUID": "s",
                    "bootID": "b",
                    "kernelVersion": "6",
                    "osImage": "o",
                    "containerRuntimeVersion": "containerd://1",
                    "kubeletVersion": "v1.32.0",
                    "kubeProxyVersion": "v1.32.0",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
                "images": [{"names": ["nginx:1.27"], "sizeBytes": 1000}],
                "volumesInUse": [],
                "volumesAttached": [],
            },
        },
    ),
    (
        "",
        "v1",
        "Pod",
        {
            "spec": POD_SPEC,
            "status": {
                "phase": "Running",
                "conditions": [CONDITION],
                "hostIP": "10.0.0.1",
                "hostIPs": [{"ip": "10.0.0.1"}],
                "podIP": "10.1.0.5",
                "podIPs": [{"ip": "10.1.0.5"}],
                "startTime": NOW,
                "qosClass": "Burstable",
                "containerStatuses": [
                    {
                        "name": "c",
                        "ready": True,
                        "restartCount": 0,
                        "image": "nginx:1.27",
                        "imageID": "sha256:x",
                        "containerID": "containerd://x",
                        "started": True,
                        "state": {"running": {"startedAt": NOW}},
                        "lastState": {
                            "terminated": {
                                "exitCode": 1,
                                "reason": "Error",
                                "startedAt": NOW,
                                "finishedAt": NOW,
                            }
                        },
                        "allocatedResources": {"cpu": "250m"},
                    }
                ],
            },
        },
    ),
    (
        "",
        "v1",
        "Service",
        {
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": [
                    {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080},
                    {"name": "metrics", "port": 9090, "targetPort": 9090},
                ],
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                "externalTrafficPolicy": "Local",
                "internalTrafficPolicy": "Cluster",
            },
            "status": {
                "loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ports": [{"port": 80, "protocol": "TCP"}]}]},
                "conditions": [
                    {"type": "T", "status": "True", "lastTransitionTime": NOW, "reason": "R", "message": ""}
                ],
            },
        },
    ),
    (
        "",
        "v1",
        "Endpoints",
        {
            "subsets": [
                {
                    "addresses": [
                        {
                            "ip": "10.1.0.5",
                            "nodeName": "n",
                            "targetRef": {"kind": "Pod", "name": "p", "namespace": "default"},
                        }
                    ],
                    "notReadyAddresses": [{"ip": "10.1.0.6"}],
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                }
            ],
        },
    ),
    (
        "",
        "v1",
        "ConfigMap",
        {
            "data": {"a.txt": "hello", "config.yaml": "x: 1\n"},
            "binaryData": {"blob": "AAEC"},
            "immutable": False,
        },
    ),
    (
        "",
        "v1",
        "Secret",
        {
            "type": "Opaque",
            "data": {"password": "cGFzcw=="},
            "stringData": {"user": "admin"},
            "immutable": True,
        },
    ),
    (
        "",
        "v1",
        "Event",
        {
            "involvedObject": {
                "kind": "Pod",
                "namespace": "default",
                "name": "p",
                "uid": "u",
                "apiVersion": "v1",
                "resourceVersion": "1",
                "fieldPath": "spec.containers{c}",
            },
            "reason": "Pulled",
            "message": "pulled",
            "source": {"component": "kubelet", "host": "n"},
            "firstTimestamp": NOW,
            "lastTimestamp": NOW,
            "count": 2,
            "type": "Normal",
            "eventTime": MICRO,
            "series": {"count": 2, "lastObservedTime": MICRO},
            "action": "Pull",
            "related": {"kind": "Node", "name": "n"},
            "reportingComponent": "kubelet",
            "reportingInstance": "n",
        },
    ),
    (
        "",
        "v1",
        "ServiceAccount",
        {
            "secrets": [{"name": "tok"}],
            "imagePullSecrets": [{"name": "regcred"}],
            "automountServiceAccountToken": False,
        },
    ),
    (
        "coordination.k8s.io",
        "v1",
        "Lease",
        {
            "spec": {
                "holderIdentity": "node-1",
                "leaseDurationSeconds": 40,
                "acquireTime": MICRO,
                "renewTime": MICRO,
                "leaseTransitions": 1,
            },
        },
    ),
    (
        "apps",
        "v1",
        "Deployment",
        {
            "spec": {
                "replicas": 3,
                "selector": SELECTOR,
                "template": POD_TEMPLATE,
                "minReadySeconds": 5,
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
                "paused": False,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1},
                },
            },
            "status": {
                "observedGeneration": 3,
                "replicas": 3,
                "updatedReplicas": 3,
                "readyReplicas": 3,
                "availableReplicas": 3,
                "unavailableReplicas": 0,
                "collisionCount": 0,
                "conditions": [dict(CONDITION, type="Available", lastUpdateTime=NOW)],
            },
        },
    ),
    (
        "apps",
        "v1",
        "ReplicaSet",
        {
            "spec": {"replicas": 1, "selector": SELECTOR, "template": POD_TEMPLATE, "minReadySeconds": 0},
            "status": {
                "replicas": 1,
                "fullyLabeledReplicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "observedGeneration": 1,
                "conditions": [{"type": "ReplicaFailure", "status": "False"}],
            },
        },
    ),
    (
        "apps",
        "v1",
        "DaemonSet",
        {
            "spec": {
                "selector": SELECTOR,
                "template": POD_TEMPLATE,
                "revisionHistoryLimit": 10,
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "10%", "maxSurge": 0},
                },
            },
            "status": {
                "currentNumberScheduled": 1,
                "numberMisscheduled": 0,
                "desiredNumberScheduled": 1,
                "numberReady": 1,
                "updatedNumberScheduled": 1,
                "numberAvailable": 1,
                "observedGeneration": 2,
            },
        },
    ),
    (
        "apps",
        "v1",
        "StatefulSet",
        {
            "spec": {
                "serviceName": "db",
                "replicas": 2,
                "selector": SELECTOR,
                "template": POD_TEMPLATE,
                "podManagementPolicy": "Parallel",
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"partition": 0, "maxUnavailable": 1},
                },
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"},
                "ordinals": {"start": 0},
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data", "labels": {"a": "b"}},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "10Gi"}},
                            "storageClassName": "standard",
                        },
                    }
                ],
            },
            "status": {
                "replicas": 2,
                "readyReplicas": 2,
                "currentReplicas": 2,
                "updatedReplicas": 2,
                "currentRevision": "db-1",
                "updateRevision": "db-1",
                "availableReplicas": 2,
                "observedGeneration": 1,
                "collisionCount": 0,
            },
        },
    ),
    (
        "batch",
        "v1",
        "Job",
        {
            "spec": {
                "parallelism": 2,
                "completions": 4,
                "backoffLimit": 6,
                "activeDeadlineSeconds": 600,
                "ttlSecondsAfterFinished": 100,
                "completionMode": "Indexed",
                "suspend": False,
                "manualSelector": False,
                "template": dict(POD_TEMPLATE, spec=dict(POD_SPEC, restartPolicy="Never")),
                "podFailurePolicy": {
                    "rules": [
                        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
                        {
                            "action": "Ignore",
                            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                        },
                    ]
                },
                "successPolicy": {"rules": [{"succeededIndexes": "0-2", "succeededCount": 1}]},
            },
            "status": {
                "active": 1,
                "succeeded": 2,
                "failed": 0,
                "ready": 1,
                "startTime": NOW,
                "completionTime": NOW,
                "completedIndexes": "0-1",
                "uncountedTerminatedPods": {"succeeded": ["u1"], "failed": []},
                "conditions": [dict(CONDITION, type="Complete", lastProbeTime=NOW)],
            },
        },
    ),
    (
        "events.k8s.io",
        "v1",
        "Event",
        {
            "eventTime": MICRO,
            "series": {"count": 1, "lastObservedTime": MICRO},
            "reportingController": "kubelet",
            "reportingInstance": "n",
            "action": "Pull",
            "reason": "Pulled",
            "note": "pulled",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
            "related": {"kind": "Node", "name": "n"},
            "type": "Normal",
            "deprecatedSource": {"component": "kubelet"},
            "deprecatedFirstTimestamp": NOW,
            "deprecatedLastTimestamp": NOW,
            "deprecatedCount": 1,
        },
    ),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        {
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": ["10.1.0.5"],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "nodeName": "n",
                    "zone": "a",
                    "targetRef": {"kind": "Pod", "name": "p"},
                    "hints": {"forZones": [{"name": "a"}]},
                }
            ],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "appProtocol": "http"}],
        },
    ),
]


def full(group: str, version: str, kind: str, body: Dict[str, Any]) -> Dict[str, Any]:
    obj = {
        "apiVersion": f"{group}/{version}" if group else version,
        "kind": kind,
        "metadata": copy.deepcopy(META),
    }
    obj.update(copy.deepcopy(body))
    return obj


@pytest.mark.parametrize("group,version,kind,body", GOOD, ids=[f"{g or 'core'}/{k}" for g, _, k, _ in GOOD])
def test_known_good_objects_have_no_unknown_fields(
    group: str, version: str, kind: str, body: Dict[str, Any]
) -> None:
    obj = full(group, version, kind, body)
    assert unknown_fields(group, version, kind, obj) == []
    for directive in ("Strict", "Warn", "", "Ignore"):
        assert validate(group, version, kind, obj, directive) == []


@pytest.mark.parametrize("group,version,kind,body", GOOD, ids=[f"{g or 'core'}/{k}" for g, _, k, _ in GOOD])
def test_top_level_typo_for_every_kind(group: str, version: str, kind: str, body: Dict[str, Any]) -> None:
    obj = full(group, version, kind, body)
    obj["metadata"]["lables"] = {"a": "b"}
    obj["spek"] = {}
    assert unknown_fields(group, version, kind, obj) == ["metadata.lables", "spek"]


def pod(**spec_extra: Any) -> Dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec_extra},
    }


def test_paths_use_upstream_format() -> None:
    obj = pod()
    obj["spec"]["containers"].append(
        {"name": "d", "image": "x", "ports": [{"containerPort": 1}, {"containerPortZ": 8080}]}
    )
    obj["spec"]["containers"][0]["foo"] = "bar"
    assert unknown_fields("", "v1", "Pod", obj) == [
        "spec.containers[0].foo",
        "spec.containers[1].ports[1].containerPortZ",
    ]

    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "spec": {
            "selector": {},
            "template": {"spec": {"containers": [{"name": "c", "imagePullPolicyy": "x"}]}},
        },
    }
    assert unknown_fields("apps", "v1", "Deployment", dep) == [
        "spec.template.spec.containers[0].imagePullPolicyy"
    ]


def test_map_values_of_struct_type_are_checked_with_dotted_keys() -> None:
    # JSONSchemaProps.properties is a map of structs: upstream appends ".key" to the path.
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "w"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "ws", "kind": "W"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "tyype": "x",
                                    "default": {"free": ["form"]},
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    assert unknown_fields("apiextensions.k8s.io", "v1", "CustomResourceDefinition", crd) == [
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.tyype"
    ]


def test_values_of_unknown_fields_are_not_descended() -> None:
    obj = pod(foo={"bar": {"baz": 1}})
    assert unknown_fields("", "v1", "Pod", obj) == ["spec.foo"]


def test_free_form_parts_are_free() -> None:
    obj = pod()
    obj["metadata"]["labels"] = {"anything/goes": "x", "": ""}
    obj["metadata"]["annotations"] = {"k": '{"json": true}'}
    obj["metadata"]["managedFields"] = [{"manager": "m", "fieldsV1": {"f:anything": {'k:{"x":1}': {}}}}]
    obj["spec"]["overhead"] = {"cpu": 1, "memory": "1Gi"}
    obj["spec"]["nodeSelector"] = {"a.b/c": "d"}
    assert unknown_fields("", "v1", "Pod", obj) == []


def test_wrong_json_types_are_not_unknown_fields() -> None:
    # A type error is the decoder's other error; it is not reported as an unknown field.
    obj = pod()
    obj["spec"]["containers"][0]["image"] = {"repo": "nginx"}
    obj["spec"]["containers"][0]["ports"] = {"not": "a list"}
    obj["spec"]["containers"][0]["resources"] = {"limits": {"cpu": {"weird": 1}}}
    assert unknown_fields("", "v1", "Pod", obj) == []


def test_field_names_are_case_sensitive() -> None:
    obj = pod()
    obj["Spec"] = obj.pop("spec")
    obj["metadata"]["Name"] = "p"
    assert unknown_fields("", "v1", "Pod", obj) == ["metadata.Name", "Spec"]


def test_null_values_and_unknown_kinds() -> None:
    obj = pod(affinity=None, tolerations=None)
    obj["status"] = None
    assert unknown_fields("", "v1", "Pod", obj) == []
    assert unknown_fields("example.com", "v1", "Widget", {"spec": {"anything": 1}}) == []
    assert validate("example.com", "v1", "Widget", {"spec": {"x": 1}}, "Strict") == []
    assert unknown_fields("", "v1", "Pod", ["not", "an", "object"]) == []


def test_strict_raises_upstream_message_in_document_order() -> None:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"foo": 1, "replicas": 1, "bar": 2},
    }
    with pytest.raises(FieldValidationError) as info:
        validate("apps", "v1", "Deployment", obj, "Strict")
    err = info.value
    assert str(err) == 'strict decoding error: unknown field "spec.foo", unknown field "spec.bar"'
    assert err.message == str(err)
    assert err.errors == ['unknown field "spec.foo"', 'unknown field "spec.bar"']
    assert (err.code, err.reason) == (400, "BadRequest")
    assert fv.decode_error_message("Deployment", "v1", str(err)) == (
        'Deployment in version "v1" cannot be handled as a Deployment: '
        'strict decoding error: unknown field "spec.foo", unknown field "spec.bar"'
    )


def test_warn_and_default_return_warnings_ignore_returns_nothing() -> None:
    obj = pod(foo=1)
    obj["spec"]["containers"][0]["bar"] = 2
    expected = ['unknown field "spec.containers[0].bar"', 'unknown field "spec.foo"']
    assert validate("", "v1", "Pod", obj, "Warn") == expected
    assert validate("", "v1", "Pod", obj, "") == expected  # no parameter: upstream defaults to Warn
    assert validate("", "v1", "Pod", obj, "Ignore") == []
    assert validate("", "v1", "Pod", pod(), "Warn") == []


def test_duplicates_from_the_raw_json_join_the_same_report() -> None:
    obj = pod(foo=1)
    with pytest.raises(FieldValidationError) as info:
        validate("", "v1", "Pod", obj, "Strict", duplicates=["spec.containers[0].image"])
    assert str(info.value) == (
        'strict decoding error: unknown field "spec.foo", duplicate field "spec.containers[0].image"'
    )
    with pytest.raises(FieldValidationError):
        validate("", "v1", "Pod", pod(), "Strict", duplicates=["metadata.name"])
    assert validate("", "v1", "Pod", pod(), "Warn", duplicates=["metadata.name"]) == [
        'duplicate field "metadata.name"'
    ]
    assert validate("", "v1", "Pod", pod(), "Ignore", duplicates=["metadata.name"]) == []


def test_errors_are_capped_like_upstream() -> None:
    obj = pod(**{f"f{i:03d}": i for i in range(150)})
    fields = unknown_fields("", "v1", "Pod", obj)
    assert len(fields) == fv.MAX_ERRORS == 100
    assert fields[0] == "spec.f000" and fields[-1] == "spec.f099"


@pytest.mark.parametrize("directive", ["strict", "STRICT", "Foo", "true", " Strict"])
def test_unknown_directive(directive: str) -> None:
    with pytest.raises(ValueError) as info:
        validate("", "v1", "Pod", pod(), directive)
    err = info.value
    assert isinstance(err, InvalidDirectiveError)
    quoted = '"' + directive + '"'
    assert str(err) == (
        f'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: {quoted}: '
        'supported values: "", "Ignore", "Strict", "Warn"'
    )
    status = err.status()
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueNotSupported",
            "field": "fieldValidation",
            "message": f'Unsupported value: {quoted}: supported values: "", "Ignore", "Strict", "Warn"',
        }
    ]


def test_unknown_directive_names_the_verbs_options() -> None:
    with pytest.raises(InvalidDirectiveError, match=r'^PatchOptions\.meta\.k8s\.io "" is invalid: '):
        validate("apps", "v1", "Deployment", {}, "bogus", options_kind="PatchOptions")
    with pytest.raises(InvalidDirectiveError, match=r'Unsupported value: "a\\"b"'):
        validate("apps", "v1", "Deployment", {}, 'a"b', options_kind="UpdateOptions")


# --- the struct fast path agrees with the walk ---------------------------------------------


def _mutations(obj: Any, rng: Any, depth: int = 0) -> Any:
    """`obj` with random damage: unknown keys, nulls, values of another JSON type."""
    if isinstance(obj, dict):
        out = {k: _mutations(v, rng, depth + 1) for k, v in obj.items()}
        roll = rng.random()
        if roll < 0.05:
            out["zzUnknown"] = rng.choice([1, "x", {"a": 1}, [1], None])
        elif roll < 0.10 and out:
            out[rng.choice(list(out))] = rng.choice([None, 7, "s", [], {}, {"bogus": True}])
        return out
    if isinstance(obj, list):
        return [_mutations(v, rng, depth + 1) for v in obj]
    return obj


@pytest.mark.parametrize("group,version,kind,body", GOOD, ids=[f"{g or 'core'}/{k}" for g, _, k, _ in GOOD])
def test_struct_fast_path_matches_the_walk(group: str, version: str, kind: str, body: Dict[str, Any]) -> None:
    import random

    import msgspec

    root = fieldschema.kind_node(group, version, kind)
    assert root is not None
    fast = fieldschema.struct_type(root)
    assert fast is not None, f"{kind} has no struct form"
    rng = random.Random(kind)
    disagreements = []
    for _ in range(300):
        obj = _mutations(full(group, version, kind, body), rng)
        found = fv._Findings()
        fv._walk(obj, root, [], [], "", found)
        walk: List[str] = found.unknown
        try:
            msgspec.convert(obj, fast)
            converted = True
        except msgspec.ValidationError:
            converted = False
        # Converting may refuse a clean object (a value of another type); it must never pass an unclean one.
        if converted and (walk or found.type_error):
            disagreements.append(walk or [found.type_error])
        assert fv.unknown_fields(group, version, kind, obj) == fv._dedupe(walk)
    assert not disagreements
