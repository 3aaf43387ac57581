"""The arithmetic of Deployments, without I/O (upstream's pkg/controller/deployment/util/deployment_util.go).

maxSurge / maxUnavailable as ints or percentages (`scaled_value`,
`resolve_fenceposts`), how far a rolling update may scale its new
ReplicaSet (`new_rs_new_replicas`), proportional scaling of several active
sets (`proportion`), the pod-template-hash (`compute_hash`), revisions and
the annotations a Deployment writes on its sets, status and the
Progressing / Available conditions. ReplicaSets are the API's dicts.

`compute_hash` is upstream's shape (32-bit FNV-1a, the collision count
appended as 4 little-endian bytes, rendered by SafeEncodeString) over the
template's canonical JSON; upstream hashes Go's spew dump of the struct,
which has no equivalent outside Go, so a name has the same form
(`web-7c5ddbdf54`) but not the same letters as kube-controller-manager's.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import orjson

from megaplane.apimachinery.meta import parse_rfc3339

__all__ = [
    "DEFAULT_UNIQUE_LABEL",
    "DESIRED_REPLICAS",
    "MAX_REPLICAS",
    "REVISION",
    "REVISION_HISTORY",
    "InvalidIntOrString",
    "compute_hash",
    "deployment_complete",
    "deployment_progressing",
    "deployment_timed_out",
    "equal_ignore_hash",
    "find_active_or_latest",
    "is_saturated",
    "max_revision",
    "max_surge",
    "max_unavailable",
    "new_rs_new_replicas",
    "proportion",
    "resolve_fenceposts",
    "safe_encode_string",
    "scaled_value",
    "set_condition",
]

Obj = Dict[str, Any]

DEFAULT_UNIQUE_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_ROLLBACK_TO = "deprecated.deployment.rollback.to"
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: Deployment annotations never copied onto its ReplicaSets (annotationsToSkip).
SKIPPED_ANNOTATIONS = frozenset((_LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
                                 _ROLLBACK_TO))
#: Upstream's MaxInt32: progressDeadlineSeconds at this value means "no deadline".
MAX_INT32 = 2**31 - 1

_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


class InvalidIntOrString(ValueError):
    """An IntOrString that is neither an integer nor a percentage ("25%")."""


# -- IntOrString ----------------------------------------------------------------------------------


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, "N%" of `total` rounded up or down."""
    if isinstance(value, bool):
        raise InvalidIntOrString(f"invalid value for IntOrString: invalid type: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if not value.endswith("%"):
            raise InvalidIntOrString("invalid value for IntOrString: invalid type: string is not a percentage")
        try:
            percent = int(value[:-1])
        except ValueError:
            raise InvalidIntOrString(f"invalid value {value!r}: {value[:-1]!r} is not an integer") from None
        scaled = percent * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    raise InvalidIntOrString(f"invalid value for IntOrString: invalid type: {type(value).__name__}")


def resolve_fenceposts(max_surge_value: Any, max_unavailable_value: Any, desired: int) -> Tuple[int, int]:
    """(surge, unavailable): surge rounded up, unavailable down; both 0 resolve unavailable to 1."""
    surge = scaled_value(0 if max_surge_value is None else max_surge_value, desired, True)
    unavailable = scaled_value(0 if max_unavailable_value is None else max_unavailable_value, desired, False)
    if surge == 0 and unavailable == 0:
        # Rounding down may make both zero, which validation forbids when explicit: assume surge may not work.
        unavailable = 1
    return surge, unavailable


def _replicas(obj: Mapping[str, Any]) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _rolling(d: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    strategy = (d.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    return strategy.get("rollingUpdate") or {"maxSurge": "25%", "maxUnavailable": "25%"}


def max_surge(d: Mapping[str, Any]) -> int:
    rolling = _rolling(d)
    if rolling is None:
        return 0
    return resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), _replicas(d))[0]


def max_unavailable(d: Mapping[str, Any]) -> int:
    rolling = _rolling(d)
    replicas = _replicas(d)
    if rolling is None or replicas == 0:
        return 0
    unavailable = resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), replicas)[1]
    return min(unavailable, replicas)


# -- replica counts -------------------------------------------------------------------------------


def replica_count(rss: Sequence[Optional[Mapping[str, Any]]]) -> int:
    """Sum of spec.replicas (GetReplicaCountForReplicaSets)."""
    return sum(_replicas(rs) for rs in rss if rs is not None)


def _status_sum(rss: Sequence[Optional[Mapping[str, Any]]], field: str) -> int:
    return sum(int((rs.get("status") or {}).get(field) or 0) for rs in rss if rs is not None)


def actual_replica_count(rss: Sequence[Optional[Mapping[str, Any]]]) -> int:
    return _status_sum(rss, "replicas")


def ready_replica_count(rss: Sequence[Optional[Mapping[str, Any]]]) -> int:
    return _status_sum(rss, "readyReplicas")


def available_replica_count(rss: Sequence[Optional[Mapping[str, Any]]]) -> int:
    return _status_sum(rss, "availableReplicas")


def new_rs_new_replicas(d: Mapping[str, Any], all_rss: Sequence[Optional[Mapping[str, Any]]],
                        new_rs: Mapping[str, Any]) -> int:
    """How many replicas the new set may have now (NewRSNewReplicas)."""
    replicas = _replicas(d)
    rolling = _rolling(d)
    if rolling is None:
        return replicas  # Recreate: all at once, once the old pods are gone
    surge = scaled_value(rolling.get("maxSurge") if rolling.get("maxSurge") is not None else 0, replicas, True)
    current = replica_count(all_rss)
    most = replicas + surge
    new = _replicas(new_rs)
    if current >= most:
        return new
    return new + min(most - current, replicas - new)


def is_saturated(d: Mapping[str, Any], rs: Optional[Mapping[str, Any]]) -> bool:
    """The new set has exactly the Deployment's replicas, all available, and knows it (IsSaturated)."""
    if rs is None:
        return False
    try:
        desired = int(((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    replicas = _replicas(d)
    return (_replicas(rs) == replicas and desired == replicas
            and int((rs.get("status") or {}).get("availableReplicas") or 0) == replicas)


def _creation(rs: Mapping[str, Any]) -> str:
    return str((rs.get("metadata") or {}).get("creationTimestamp") or "")


def _name(rs: Mapping[str, Any]) -> str:
    return str((rs.get("metadata") or {}).get("name") or "")


def by_creation(rss: Sequence[Obj]) -> List[Obj]:
    """ReplicaSetsByCreationTimestamp: oldest first, ties by name."""
    return sorted(rss, key=lambda rs: (_creation(rs), _name(rs)))


def find_active_or_latest(new_rs: Optional[Obj], old_rss: Sequence[Obj]) -> Optional[Obj]:
    """The one set with replicas, or the newest when none has any; None when several have (FindActiveOrLatest)."""
    if new_rs is None and not old_rss:
        return None
    newest_first = list(reversed(by_creation(list(old_rss))))
    active = [rs for rs in newest_first + ([new_rs] if new_rs is not None else []) if _replicas(rs) > 0]
    if not active:
        return new_rs if new_rs is not None else newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


def _max_replicas_annotation(rs: Mapping[str, Any]) -> Optional[int]:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {})[MAX_REPLICAS])
    except (KeyError, ValueError):
        return None


def proportion(rs: Mapping[str, Any], d: Mapping[str, Any], to_add: int, added: int) -> int:
    """The share of `to_add` that `rs` takes when several sets are active (GetProportion)."""
    replicas = _replicas(rs)
    if replicas == 0 or to_add == 0 or to_add == added:
        return 0
    d_replicas = _replicas(d)
    if d_replicas == 0:
        fraction = -replicas
    else:
        allowed = d_replicas + max_surge(d)
        annotated = _max_replicas_annotation(rs)
        if annotated is None:
            annotated = int((d.get("status") or {}).get("replicas") or 0)
        # upstream divides float by the annotation; a zero gives +Inf which int32 conversion saturates
        size = replicas * allowed / annotated if annotated else float(allowed)
        fraction = int(math.floor(size + 0.5)) - replicas
    left = to_add - added
    return min(fraction, left) if to_add > 0 else max(fraction, left)


# -- templates and the hash -----------------------------------------------------------------------


def safe_encode_string(text: str) -> str:
    """rand.SafeEncodeString: each character mapped onto an alphabet without vowels or lookalikes."""
    return "".join(_ALPHANUMS[ord(ch) % len(_ALPHANUMS)] for ch in text)


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def compute_hash(template: Mapping[str, Any], collision_count: Optional[int]) -> str:
    """The pod-template-hash of a template (ComputeHash; see the module docstring for what differs)."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += int(collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return safe_encode_string(str(_fnv32a(data)))


def _without_hash(template: Mapping[str, Any]) -> Obj:
    t = copy.deepcopy(dict(template))
    meta = t.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    labels.pop(DEFAULT_UNIQUE_LABEL, None)
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    # Semantic.DeepEqual: an empty map or list is the same as none.
    dropped: Obj = _drop_empty(t)
    return dropped


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def equal_ignore_hash(t1: Mapping[str, Any], t2: Mapping[str, Any]) -> bool:
    """Two pod templates equal but for the pod-template-hash label (EqualIgnoreHash)."""
    return bool(_without_hash(t1) == _without_hash(t2))


# -- revisions and annotations --------------------------------------------------------------------


def revision(obj: Mapping[str, Any]) -> int:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return 0


def max_revision(rss: Sequence[Mapping[str, Any]]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def set_new_rs_annotations(d: Mapping[str, Any], rs: Obj, new_revision: str, exists: bool) -> bool:
    """Copy the Deployment's annotations, raise the revision, record desired/max replicas (SetNewReplicaSetAnnotations).

    Returns True when `rs`'s annotations changed. A set whose revision is
    raised (a rollback to it) keeps its former revisions in revision-history.
    """
    meta = rs.setdefault("metadata", {})
    annotations = meta.setdefault("annotations", {})
    changed = False
    for k, v in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if k in SKIPPED_ANNOTATIONS or annotations.get(k) == v:
            continue
        annotations[k] = v
        changed = True
    old = annotations.get(REVISION)
    try:
        old_int = int(old) if old is not None else 0
    except ValueError:
        old_int = 0
    if old_int < int(new_revision):
        annotations[REVISION] = new_revision
        changed = True
        if old is not None:
            history = annotations.get(REVISION_HISTORY, "")
            annotations[REVISION_HISTORY] = f"{history},{old}" if history else old
    if not exists:
        replicas = _replicas(d)
        changed = set_replicas_annotations(rs, replicas, replicas + max_surge(d)) or changed
    return changed


def set_replicas_annotations(rs: Obj, desired: int, most: int) -> bool:
    annotations = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(most))):
        if annotations.get(key) != value:
            annotations[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Mapping[str, Any], desired: int, most: int) -> bool:
    annotations = (rs.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DESIRED_REPLICAS) != str(desired) or annotations.get(MAX_REPLICAS) != str(most)


# -- conditions and progress ----------------------------------------------------------------------


def get_condition(status: Mapping[str, Any], ctype: str) -> Optional[Obj]:
    for c in status.get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == ctype:
            return c
    return None


def new_condition(ctype: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": ctype, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def set_condition(status: Obj, condition: Obj) -> None:
    """SetDeploymentCondition: same status and reason is no change; same status keeps lastTransitionTime."""
    current = get_condition(status, condition["type"])
    if current is not None and current.get("status") == condition["status"] \
            and current.get("reason") == condition["reason"]:
        return
    if current is not None and current.get("status") == condition["status"]:
        condition["lastTransitionTime"] = current.get("lastTransitionTime")
    status["conditions"] = [c for c in status.get("conditions") or () if c.get("type") != condition["type"]]
    status["conditions"].append(condition)


def remove_condition(status: Obj, ctype: str) -> None:
    conditions = [c for c in status.get("conditions") or () if c.get("type") != ctype]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def has_progress_deadline(d: Mapping[str, Any]) -> bool:
    deadline = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != MAX_INT32


def deployment_complete(d: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    replicas = _replicas(d)
    return (int(status.get("updatedReplicas") or 0) == replicas and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0) >= int((d.get("metadata") or {}).get("generation") or 0))


def deployment_progressing(d: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    old = d.get("status") or {}

    def n(s: Mapping[str, Any], f: str) -> int:
        return int(s.get(f) or 0)

    return (n(new, "updatedReplicas") > n(old, "updatedReplicas")
            or n(new, "replicas") - n(new, "updatedReplicas") < n(old, "replicas") - n(old, "updatedReplicas")
            or n(new, "readyReplicas") > n(old, "readyReplicas")
            or n(new, "availableReplicas") > n(old, "availableReplicas"))


def deployment_timed_out(d: Mapping[str, Any], status: Mapping[str, Any], now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    condition = get_condition(status, "Progressing")
    if condition is None or condition.get("reason") == "NewReplicaSetAvailable":
        return False
    if condition.get("reason") == "ProgressDeadlineExceeded":
        return True
    since = parse_rfc3339(str(condition.get("lastUpdateTime") or ""))
    if since is None:
        return False
    return since.timestamp() + int((d.get("spec") or {})["progressDeadlineSeconds"]) < now
