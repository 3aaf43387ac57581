"""What the Job controller decides from a Job and its pods, without the API (upstream's job_controller.go helpers).

Conditions (newCondition, ensureJobConditionStatus), which pods count as
failed (isPodFailed, podReplacementPolicy), podFailurePolicy matching
(FailJob / Ignore / Count on exit codes and pod conditions), finish times
and the failure backoff (10 s doubling to 6 min after the last success's
failures, backoffRecord), and Indexed jobs' completion indexes
(`batch.kubernetes.io/job-completion-index`, completedIndexes intervals
such as "1,3-5").
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from megaplane.apimachinery.meta import format_rfc3339, parse_rfc3339

__all__ = [
    "COMPLETION_INDEX_ANNOTATION",
    "COMPLETION_INDEX_ENV",
    "DEFAULT_POD_FAILURE_BACKOFF",
    "JOB_TRACKING_FINALIZER",
    "MAX_POD_FAILURE_BACKOFF",
    "BackoffRecord",
    "completion_index",
    "ensure_condition_status",
    "find_condition",
    "finish_time",
    "format_indexes",
    "has_tracking_finalizer",
    "is_finished",
    "is_pod_failed",
    "match_pod_failure_policy",
    "new_backoff_record",
    "new_condition",
    "parse_indexes",
    "remaining_backoff",
]

Obj = Dict[str, Any]

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
#: Upstream's DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff.
DEFAULT_POD_FAILURE_BACKOFF = 10.0
MAX_POD_FAILURE_BACKOFF = 360.0


def _time(stamp: Any) -> Optional[float]:
    at = parse_rfc3339(stamp) if isinstance(stamp, str) else None
    return at.timestamp() if at is not None else None


# -- conditions -----------------------------------------------------------------------------------------

def new_condition(kind: str, status: str, reason: str, message: str, now: float) -> Obj:
    stamp = format_rfc3339(datetime.datetime.fromtimestamp(now, datetime.timezone.utc))
    cond: Obj = {"type": kind, "status": status, "lastProbeTime": stamp, "lastTransitionTime": stamp}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def find_condition(conditions: Iterable[Obj], kind: str) -> Optional[Obj]:
    for c in conditions:
        if c.get("type") == kind:
            return c
    return None


def ensure_condition_status(conditions: List[Obj], kind: str, status: str, reason: str, message: str,
                            now: float) -> bool:
    """Set condition `kind` to `status` (a False one is not added when absent); True if anything changed."""
    cond = find_condition(conditions, kind)
    if cond is not None:
        if (cond.get("status"), cond.get("reason", ""), cond.get("message", "")) != (status, reason, message):
            conditions[conditions.index(cond)] = new_condition(kind, status, reason, message, now)
            return True
        return False
    if status != "False":
        conditions.append(new_condition(kind, status, reason, message, now))
        return True
    return False


def is_finished(job: Mapping[str, Any]) -> bool:
    """A Complete or Failed condition that is True (IsJobFinished)."""
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return True
    return False


# -- pods -----------------------------------------------------------------------------------------------

def has_tracking_finalizer(pod: Mapping[str, Any]) -> bool:
    return JOB_TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or ())


def only_replace_failed_pods(job: Mapping[str, Any]) -> bool:
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def is_pod_failed(pod: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    """Failed phase; or, unless only failed pods are replaced, deleted before it succeeded (an orphan's end)."""
    phase = (pod.get("status") or {}).get("phase")
    if (job.get("spec") or {}).get("podFailurePolicy") is not None:
        return phase == "Failed"  # disruption conditions mark terminated pods Failed
    if phase == "Failed":
        return True
    if only_replace_failed_pods(job):
        return False
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) and phase != "Succeeded"


def finish_time(pod: Mapping[str, Any], now: float) -> float:
    """When the pod finished: its containers' last finishedAt, else its deletion, else now (getFinishedTime)."""
    status = pod.get("status") or {}
    latest: Optional[float] = None
    for cs in list(status.get("containerStatuses") or ()) + list(status.get("initContainerStatuses") or ()):
        at = _time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if at is not None and (latest is None or at > latest):
            latest = at
    if latest is not None:
        return latest
    for c in status.get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "False":
            at = _time(c.get("lastTransitionTime"))
            if at is not None:
                return at
    deleted = _time((pod.get("metadata") or {}).get("deletionTimestamp"))
    return deleted if deleted is not None else now


# -- podFailurePolicy ------------------------------------------------------------------------------------

def _exit_codes_match(code: int, requirement: Mapping[str, Any]) -> bool:
    values = requirement.get("values") or ()
    if requirement.get("operator") == "In":
        return code in values
    if requirement.get("operator") == "NotIn":
        return code not in values
    return False


def _matching_container(statuses: Sequence[Obj], requirement: Mapping[str, Any]) -> Optional[Obj]:
    for cs in statuses:
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated is None:
            continue  # still terminating: no exit code to match
        name = requirement.get("containerName")
        code = int(terminated.get("exitCode") or 0)
        if (name is None or name == cs.get("name")) and code != 0 and _exit_codes_match(code, requirement):
            return cs
    return None


def match_pod_failure_policy(policy: Optional[Mapping[str, Any]], pod: Mapping[str, Any]
                             ) -> Tuple[Optional[str], bool, Optional[str]]:
    """(FailJob message, whether the failure counts against backoffLimit, the action) for a failed pod."""
    if policy is None:
        return None, True, None
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    for index, rule in enumerate(policy.get("rules") or ()):
        action = rule.get("action")
        on_exit = rule.get("onExitCodes")
        if on_exit is not None:
            cs = _matching_container(status.get("containerStatuses") or (), on_exit) or \
                _matching_container(status.get("initContainerStatuses") or (), on_exit)
            if cs is None:
                continue
            if action == "Ignore":
                return None, False, action
            if action == "Count":
                return None, True, action
            if action == "FailJob":
                code = cs["state"]["terminated"].get("exitCode")
                return (f"Container {cs.get('name')} for pod {meta.get('namespace')}/{meta.get('name')} failed with "
                        f"exit code {code} matching {action} rule at index {index}"), True, action
            continue  # FailIndex needs backoffLimitPerIndex (not supported): the rule is skipped
        patterns = rule.get("onPodConditions")
        if patterns is not None:
            for cond in status.get("conditions") or ():
                if any(cond.get("type") == p.get("type") and cond.get("status") == p.get("status", "True")
                       for p in patterns):
                    if action == "Ignore":
                        return None, False, action
                    if action == "Count":
                        return None, True, action
                    if action == "FailJob":
                        return (f"Pod {meta.get('namespace')}/{meta.get('name')} has condition {cond.get('type')} "
                                f"matching {action} rule at index {index}"), True, action
                    break
    return None, True, None


# -- backoff ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackoffRecord:
    """Failures since the last success and when the last of them finished (the job's backoffRecord)."""

    failures_after_last_success: int = 0
    last_failure_time: Optional[float] = None


def new_backoff_record(old: BackoffRecord, succeeded: Sequence[Mapping[str, Any]],
                       failed: Sequence[Mapping[str, Any]], now: float) -> BackoffRecord:
    """The record after these newly finished pods: a success resets it, later failures count again."""
    fail_times = sorted(finish_time(p, now) for p in failed)
    if not succeeded:
        if not fail_times:
            return old
        return BackoffRecord(old.failures_after_last_success + len(fail_times), fail_times[-1])
    last_success = max(finish_time(p, now) for p in succeeded)
    after = [t for t in fail_times if t > last_success]
    return BackoffRecord(len(after), after[-1] if after else None)


def remaining_backoff(record: BackoffRecord, now: float, base: float = DEFAULT_POD_FAILURE_BACKOFF,
                      cap: float = MAX_POD_FAILURE_BACKOFF) -> float:
    """Seconds until the next pod may be created: base * 2**(failures-1), capped, since the last failure."""
    if record.failures_after_last_success == 0 or record.last_failure_time is None:
        return 0.0
    delay = base
    for _ in range(1, record.failures_after_last_success):
        delay *= 2
        if delay >= cap:
            delay = cap
            break
    elapsed = now - record.last_failure_time
    return 0.0 if delay < elapsed else delay - elapsed


# -- completion indexes ---------------------------------------------------------------------------------------

def completion_index(pod: Mapping[str, Any]) -> Optional[int]:
    """The pod's completion index annotation (None: absent or not a non-negative integer)."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
    if not isinstance(value, str) or not value.isdigit():
        return None
    return int(value)


def parse_indexes(text: str, completions: int) -> Set[int]:
    """completedIndexes ("1,3-5") as a set, dropping what is not below `completions`."""
    out: Set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            continue
        out.update(i for i in range(first, last + 1) if 0 <= i < completions)
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """A set of indexes as completedIndexes writes them: sorted intervals, "1,3-5"."""
    parts: List[str] = []
    run: List[int] = []
    for i in sorted(set(indexes)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)
