"""Printers for apps/v1: deployments, replicasets, daemonsets, statefulsets, controllerrevisions.

Each follows its print<Kind> function in k8s.io/kubernetes pkg/printers/internalversion/printers.go.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Tuple

from megaplane.apiserver.printers.base import (
    _DESC_CONTAINERS,
    _DESC_IMAGES,
    Obj,
    Printer,
    _age,
    _age_col,
    _col,
    _container_cells,
    _d,
    _i,
    _name,
    _name_col,
    _template_spec,
)
from megaplane.apiserver.printers.format import format_label_selector, format_labels, label_selector_string

_DESC_NODE_SELECTOR = (
    "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must "
    "match a node's labels for the pod to be scheduled on that node. More info: "
    "https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"
)

_DESC_UPDATED_REPLICAS = (
    "Total number of non-terminated pods targeted by this deployment that have the desired template spec."
)
_DESC_AVAILABLE_REPLICAS = (
    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."
)

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


_CONTROLLERREVISION_COLUMNS = [
    _name_col(),
    _col("Controller", "string", "Controller of the object"),
    _col("Revision", "string", "Revision indicates the revision of the state represented by Data."),
    _age_col(),
]


def _print_controllerrevision(cr: Obj, now: datetime.datetime) -> List[Any]:
    controller = "<none>"
    for ref in _d(cr.get("metadata")).get("ownerReferences") or ():
        ref = _d(ref)
        if ref.get("controller"):
            group = str(ref.get("apiVersion") or "").rpartition("/")[0]
            kind = str(ref.get("kind") or "")
            # formatResourceName: lower-cased Kind.group/name (no group for the core group).
            controller = f"{(kind + '.' + group) if group else kind}".lower() + f"/{ref.get('name', '')}"
            break
    return [_name(cr), controller, _i(cr.get("revision")), _age(cr, now)]


# What this module prints, by (API group, resource).
TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("apps", "deployments"): (_DEPLOYMENT_COLUMNS, _print_deployment),
    ("apps", "replicasets"): (_REPLICASET_COLUMNS, _print_replicaset),
    ("apps", "daemonsets"): (_DAEMONSET_COLUMNS, _print_daemonset),
    ("apps", "statefulsets"): (_STATEFULSET_COLUMNS, _print_statefulset),
    ("apps", "controllerrevisions"): (_CONTROLLERREVISION_COLUMNS, _print_controllerrevision),
}
