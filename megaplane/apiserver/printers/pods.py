"""The Pod printer: the READY / STATUS / RESTARTS / IP / NODE cells of `kubectl get pods`.

It follows printPod in k8s.io/kubernetes pkg/printers/internalversion/printers.go, which has the
most involved logic of all printers (init containers, sidecars, readiness gates, deletion).
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional, Tuple

from megaplane.apiserver.printers.base import (
    Obj,
    Printer,
    _age,
    _age_col,
    _col,
    _condition_true,
    _d,
    _i,
    _l,
    _name,
    _name_col,
    _s,
)
from megaplane.apiserver.printers.format import NONE, _since, parse_timestamp

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


def _is_restartable_init_container(container: Any) -> bool:
    # A sidecar: an init container with restartPolicy Always.
    return isinstance(container, dict) and container.get("restartPolicy") == "Always"


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


# What this module prints, by (API group, resource).
TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("", "pods"): (_POD_COLUMNS, _print_pod),
}
