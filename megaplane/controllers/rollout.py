"""The two rollout strategies of the Deployment controller (upstream's rolling.go and recreate.go).

RollingUpdate, one step per sync: scale the new set up as far as maxSurge
allows (`new_rs_new_replicas`); if nothing scaled up, scale old sets down
as far as maxUnavailable allows, their unhealthy replicas first (they do
not count as available, so removing them costs nothing), then the oldest
sets' available ones. Each scale writes a ReplicaSet; its status change
brings the Deployment back for the next step.

Recreate: every old set to 0, wait until none of their pods is left
(Pending, Running or Unknown), then the new set straight to spec.replicas.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, Tuple

from . import deploymentutil as du

__all__ = ["rollout_rolling", "rollout_recreate", "old_pods_running", "old_scale_down_plan", "max_scaled_down"]

Obj = Dict[str, Any]


class RolloutHost(Protocol):
    """What a rollout asks of the Deployment controller (deployment.DeploymentController)."""

    async def get_all_replica_sets(self, d: Obj, rs_list: List[Obj],
                                   create: bool) -> Tuple[Optional[Obj], List[Obj]]:
        """(new set, old sets); the new one created when `create` and missing."""

    async def scale_replica_set(self, rs: Obj, new_scale: int, d: Obj) -> bool:
        """Write `rs`'s new size; True when it changed."""

    async def sync_rollout_status(self, all_rss: List[Obj], new_rs: Optional[Obj], d: Obj) -> None:
        """Status and the Progressing condition."""

    async def cleanup(self, old_rss: List[Obj], d: Obj) -> None:
        """Old sets beyond revisionHistoryLimit deleted."""


def _replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _available(rs: Obj) -> int:
    return int((rs.get("status") or {}).get("availableReplicas") or 0)


def _with(old_rss: List[Obj], new_rs: Optional[Obj]) -> List[Obj]:
    return old_rss + ([new_rs] if new_rs is not None else [])


async def rollout_rolling(dc: RolloutHost, d: Obj, rs_list: List[Obj]) -> None:
    new_rs, old_rss = await dc.get_all_replica_sets(d, rs_list, True)
    assert new_rs is not None  # created when missing
    all_rss = _with(old_rss, new_rs)
    if await _reconcile_new(dc, all_rss, new_rs, d):
        await dc.sync_rollout_status(all_rss, new_rs, d)
        return
    if await _reconcile_old(dc, old_rss, new_rs, d):
        await dc.sync_rollout_status(all_rss, new_rs, d)
        return
    if du.deployment_complete(d, d.get("status") or {}):
        await dc.cleanup(old_rss, d)
    await dc.sync_rollout_status(all_rss, new_rs, d)


async def _reconcile_new(dc: RolloutHost, all_rss: List[Obj], new_rs: Obj, d: Obj) -> bool:
    want = _replicas(d)
    have = _replicas(new_rs)
    if have == want:
        return False
    if have > want:
        return await dc.scale_replica_set(new_rs, want, d)
    return await dc.scale_replica_set(new_rs, du.new_rs_new_replicas(d, all_rss, new_rs), d)


def max_scaled_down(d: Obj, all_rss: List[Obj], new_rs: Obj) -> int:
    """How many old replicas may go now: all pods - minimum available - the new set's unavailable ones."""
    min_available = _replicas(d) - du.max_unavailable(d)
    new_unavailable = _replicas(new_rs) - _available(new_rs)
    return du.replica_count(all_rss) - min_available - new_unavailable


def old_scale_down_plan(d: Obj, old_rss: List[Obj], new_rs: Obj) -> List[Tuple[Obj, int]]:
    """[(old set, new size)] for one step of reconcileOldReplicaSets.

    First the unhealthy replicas (spec - available) of the oldest sets, at
    most `max_scaled_down`; then, counted against the sets' available pods,
    whatever stays above replicas - maxUnavailable, oldest sets first.
    """
    active = [rs for rs in old_rss if _replicas(rs) > 0]
    if not active:
        return []
    all_rss = active + [new_rs]
    allowed = max_scaled_down(d, all_rss, new_rs)
    if allowed <= 0:
        return []
    ordered = du.by_creation(active)
    sizes = [_replicas(rs) for rs in ordered]
    cleaned = 0
    for i, rs in enumerate(ordered):  # cleanupUnhealthyReplicas
        if cleaned >= allowed:
            break
        if sizes[i] == 0 or sizes[i] == _available(rs):
            continue
        count = min(allowed - cleaned, sizes[i] - _available(rs))
        sizes[i] -= count
        cleaned += count
    min_available = _replicas(d) - du.max_unavailable(d)
    available = du.available_replica_count(all_rss)
    if available > min_available:  # scaleDownOldReplicaSetsForRollingUpdate
        budget = available - min_available
        done = 0
        for i in range(len(ordered)):
            if done >= budget:
                break
            if sizes[i] == 0:
                continue
            count = min(sizes[i], budget - done)
            sizes[i] -= count
            done += count
    return [(rs, size) for rs, size in zip(ordered, sizes) if size != _replicas(rs)]


async def _reconcile_old(dc: RolloutHost, old_rss: List[Obj], new_rs: Obj, d: Obj) -> bool:
    plan = old_scale_down_plan(d, old_rss, new_rs)
    for rs, size in plan:
        await dc.scale_replica_set(rs, size, d)
    return bool(plan)


def old_pods_running(new_rs: Optional[Obj], old_rss: List[Obj], pods_by_rs: Dict[str, List[Obj]]) -> bool:
    """Any old set still reporting replicas, or any pod of an old set not Succeeded/Failed (oldPodsRunning)."""
    if du.actual_replica_count(old_rss) > 0:
        return True
    new_uid = (new_rs or {}).get("metadata", {}).get("uid")
    for uid, pods in pods_by_rs.items():
        if uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return True
    return False


async def rollout_recreate(dc: RolloutHost, d: Obj, rs_list: List[Obj],
                           pods_by_rs: Dict[str, List[Obj]]) -> None:
    new_rs, old_rss = await dc.get_all_replica_sets(d, rs_list, False)
    all_rss = _with(old_rss, new_rs)
    scaled_down = False
    for rs in old_rss:
        if _replicas(rs) > 0 and await dc.scale_replica_set(rs, 0, d):
            scaled_down = True
    if scaled_down:
        await dc.sync_rollout_status(all_rss, new_rs, d)
        return
    if old_pods_running(new_rs, old_rss, pods_by_rs):
        await dc.sync_rollout_status(all_rss, new_rs, d)
        return
    if new_rs is None:
        new_rs, old_rss = await dc.get_all_replica_sets(d, rs_list, True)
        all_rss = _with(old_rss, new_rs)
    assert new_rs is not None
    await dc.scale_replica_set(new_rs, _replicas(d), d)
    if du.deployment_complete(d, d.get("status") or {}):
        await dc.cleanup(old_rss, d)
    await dc.sync_rollout_status(all_rss, new_rs, d)
