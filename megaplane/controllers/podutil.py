"""What workload controllers ask of pods and owner references (upstream's pkg/controller/controller_utils.go).

Pod facts (active, ready, available after minReadySeconds), the order in
which a controller deletes surplus pods (`rank_for_deletion`: upstream's
ActivePodsWithRanks), the pod a template makes (`pod_from_template`),
controller references, and `slow_start_batch`: creates in batches of 1, 2,
4, ... that stop at the first failing batch, so a controller whose creates
all fail (quota, a bad template) sends one request, not thousands.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import math
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from megaplane.apimachinery.meta import parse_rfc3339

__all__ = [
    "CONTROLLER_UID_INDEX",
    "POD_DELETION_COST",
    "SLOW_START_INITIAL_BATCH_SIZE",
    "controller_of",
    "controller_ref",
    "controller_uid_index",
    "is_pod_active",
    "is_pod_available",
    "is_pod_ready",
    "pod_from_template",
    "rank_for_deletion",
    "slow_start_batch",
]

Obj = Dict[str, Any]

#: Upstream's SlowStartInitialBatchSize.
SLOW_START_INITIAL_BATCH_SIZE = 1
#: Annotation whose integer value ranks pods for scale-down (lower deleted first).
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def _time(stamp: Any) -> Optional[float]:
    at = parse_rfc3339(stamp) if isinstance(stamp, str) else None
    return at.timestamp() if at is not None else None


def is_pod_active(pod: Mapping[str, Any]) -> bool:
    """Not terminal and not being deleted (FilterActivePods)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get("deletionTimestamp")


def _ready_condition(pod: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    c = _ready_condition(pod)
    return c is not None and c.get("status") == "True"


def is_pod_available(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> bool:
    """Ready for at least `min_ready_seconds` (wall-clock `now`) by its Ready condition's lastTransitionTime."""
    c = _ready_condition(pod)
    if c is None or c.get("status") != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since = _time(c.get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds < now


def controller_of(obj: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """The ownerReference with `controller: true`, if any (metav1.GetControllerOf)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


#: The index of objects by their controller's uid (those without a controller under "").
CONTROLLER_UID_INDEX = "controllerUID"


def controller_uid_index(obj: Obj) -> List[str]:
    """One function for the index, so controllers sharing an informer share the index (informerfactory)."""
    ref = controller_of(obj)
    return [str(ref.get("uid") or "")] if ref is not None else [""]


def controller_ref(owner: Mapping[str, Any], api_version: str, kind: str) -> Obj:
    """metav1.NewControllerRef: the owner as controller, blocking its foreground deletion."""
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def pod_from_template(template: Mapping[str, Any], owner: Mapping[str, Any], ref: Obj) -> Obj:
    """The pod `owner` creates from `template` (GetPodFromTemplate): generateName `<owner>-`, owned by `ref`.

    Raises ValueError for a template without labels, as upstream refuses
    to create pods its selector could never find.
    """
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    if not labels:
        raise ValueError("unable to create pods, no labels")
    meta: Obj = {"generateName": owner["metadata"]["name"] + "-", "labels": labels, "ownerReferences": [ref]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


# -- which pods go first on scale-down -------------------------------------------------------------


def _ready_time(pod: Mapping[str, Any]) -> Optional[float]:
    c = _ready_condition(pod)
    if c is None or c.get("status") != "True":
        return None
    return _time(c.get("lastTransitionTime"))


def _cost(pod: Mapping[str, Any]) -> int:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(POD_DELETION_COST)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _max_restarts(pod: Mapping[str, Any]) -> int:
    return max((int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or ()
                if isinstance(s, dict)), default=0)


def _log_rank(at: float, now: float) -> int:
    age = now - at
    return int(math.log2(age * 1e9)) if age > 0 else -1  # upstream ranks durations in nanoseconds


def _newer_first(t1: Optional[float], t2: Optional[float], uid1: str, uid2: str, now: float) -> int:
    """Upstream's LogarithmicScaleDown order for two different times: missing first, then the younger rank."""
    if t1 is None or t2 is None:
        return -1 if t1 is None and t2 is not None else (1 if t2 is None and t1 is not None else 0)
    diff = _log_rank(t1, now) - _log_rank(t2, now)
    if diff == 0:
        return -1 if uid1 < uid2 else (1 if uid1 > uid2 else 0)
    return -1 if diff < 0 else 1


def _compare(a: Tuple[Mapping[str, Any], int], b: Tuple[Mapping[str, Any], int], now: float) -> int:
    p1, rank1 = a
    p2, rank2 = b
    n1 = (p1.get("spec") or {}).get("nodeName") or ""
    n2 = (p2.get("spec") or {}).get("nodeName") or ""
    if n1 != n2 and (not n1 or not n2):  # unscheduled < scheduled
        return -1 if not n1 else 1
    o1 = _PHASE_ORDINAL.get((p1.get("status") or {}).get("phase") or "", 0)
    o2 = _PHASE_ORDINAL.get((p2.get("status") or {}).get("phase") or "", 0)
    if o1 != o2:  # pending < unknown < running
        return -1 if o1 < o2 else 1
    r1, r2 = is_pod_ready(p1), is_pod_ready(p2)
    if r1 != r2:  # not ready < ready
        return -1 if not r1 else 1
    c1, c2 = _cost(p1), _cost(p2)
    if c1 != c2:  # lower deletion cost first
        return -1 if c1 < c2 else 1
    if rank1 != rank2:  # doubled up on a node first
        return -1 if rank1 > rank2 else 1
    uid1 = str((p1.get("metadata") or {}).get("uid") or "")
    uid2 = str((p2.get("metadata") or {}).get("uid") or "")
    if r1 and r2:  # ready for less time first
        t1, t2 = _ready_time(p1), _ready_time(p2)
        if t1 != t2:
            return _newer_first(t1, t2, uid1, uid2, now)
    m1, m2 = _max_restarts(p1), _max_restarts(p2)
    if m1 != m2:  # more restarts first
        return -1 if m1 > m2 else 1
    t1 = _time((p1.get("metadata") or {}).get("creationTimestamp"))
    t2 = _time((p2.get("metadata") or {}).get("creationTimestamp"))
    if t1 != t2:  # newer first
        return _newer_first(t1, t2, uid1, uid2, now)
    return 0


def rank_for_deletion(pods: Sequence[Obj], related: Sequence[Mapping[str, Any]], now: float) -> List[Obj]:
    """`pods` in upstream's deletion order (first deleted first).

    `related` are the pods of every ReplicaSet under the same controller
    (getIndirectlyRelatedPods): a pod sharing its node with more of them
    goes earlier, so scale-down spreads what is left.
    """
    on_node: Dict[str, int] = {}
    for pod in related:
        if is_pod_active(pod):
            node = (pod.get("spec") or {}).get("nodeName") or ""
            on_node[node] = on_node.get(node, 0) + 1
    ranked: List[Tuple[Obj, int]] = [
        (pod, on_node.get((pod.get("spec") or {}).get("nodeName") or "", 0)) for pod in pods]

    def compare(a: Tuple[Obj, int], b: Tuple[Obj, int]) -> int:
        return _compare(a, b, now)

    ranked.sort(key=functools.cmp_to_key(compare))
    return [pod for pod, _ in ranked]


async def slow_start_batch(count: int, initial_batch_size: int, fn: Callable[[], Awaitable[None]]) -> Tuple[int, Optional[BaseException]]:
    """Call `fn` `count` times in batches of initial, 2x, 4x ...; stop after a batch with an error.

    Returns (successes, the first error or None). Calls not made because
    an earlier batch failed are neither successes nor errors: the caller
    lowers its expectations by `count - successes`.
    """
    remaining = count
    successes = 0
    batch = min(remaining, initial_batch_size)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(errors)
        if errors:
            return successes, errors[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None
