"""Sharded scatter/gather (`megaplane scheduler --shards N`): N shard processes, one coordinator, every feature kept.

The coordinator is the ordinary scheduler component (informers, queue,
events, preemption, binding, leader election: `ShardedScheduler` is a
`Scheduler`), whose `NodeTable` journals its changes (`replica`); it
starts N shard processes (`shard`) while it runs and feeds them those
changes over pipes ahead of each batch of pods. Why this shape and not N
`megaplane scheduler` processes each running informers: a shard needs all
pods anyway (affinity and spreading count pods on every node), so N
informer sets would decode every pod event N+1 times over N+1 watches,
and their tables would drift apart by watch timing, so a slot or a
topology count would mean different things in different shards. Fed from
one journal, every replica is the coordinator's table as of the last
message, slot for slot, and restarting a shard is sending it a snapshot.

One batch (up to `batch` pods popped from the queue in priority order):

1. A pod nominated by preemption whose node still fits takes it
   (evaluateNominatedNode), checked on the coordinator's own table.
2. Scatter: every shard gets the ops since its last message and the
   pods; per pod it returns the raw score parts of its candidates and its
   own best slot, which it reserves in its replica, or its reason counts
   (`shard`).
3. Gather, pod by pod in order: the parts of all shards are joined and
   finished over their union (`scoreparts`: the normalising plugins need
   every candidate), the best total wins, ties broken uniformly at random
   over all shards' tied nodes, as selectHost. No candidate anywhere: the
   FitError of the summed counts over all nodes (upstream's message), then
   DefaultPreemption on the coordinator's table, which holds every node:
   its PostFilter sees all shards' candidates. The pod is requeued
   unschedulable, never dropped.
4. The gather check. A shard proposed pod k+1 without knowing where pod k
   of the same batch went in another shard, and with its own reservation
   for pod k even where pod k lost. Its own reservations make per-node
   filters (resources, ports) stricter, never looser, as long as pod k
   went where the shard reserved or to another shard; so the winner is
   re-filtered on the coordinator's table (which has every earlier winner)
   when something changed since the scatter and either the pod has
   cross-pod filter constraints (DoNotSchedule spreading, required pod
   affinity or anti-affinity, existing pods' required anti-affinity) or
   its shard's replica diverged (an earlier winner in that shard was not
   the slot it reserved). A winner that no longer fits, e.g. two
   anti-affine pods in one zone through two shards, or a maxSkew broken
   by two placements each fine alone, is not bound: it goes first into
   the next batch, whose first pod sees an exact replica. Likewise a pod
   no shard found room for after an earlier pod of its batch reserved
   some is retried, not declared unschedulable. A node change
   between scatter and gather (a slot may name another node) retries
   the pods still to be gathered.

A shard that dies (SIGKILL, a crash) is restarted with a snapshot; the
pods of the batch it was in are retried; nothing is lost. Shards die with
the coordinator (PR_SET_PDEATHSIG) and stop when it loses leadership.

On 2 cores the shards, the coordinator and the API server share two
CPUs; `benchmarks/scheduler_shards.py` measures 1 vs 2 shards. Measured
so far, 2 shards are slower than 1 there (README): a shard's fixed cost
per pod is about a whole in-process cycle at 5K-100K nodes, and one batch
is in flight at a time, so the coordinator's gather and the shards'
filtering do not overlap. Pipelining (scattering batch k+1 before
gathering batch k) fits this design, since the gather check already
re-filters what replicas may have missed, but is not done yet.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import sys
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from megaplane.runtime import die_with_parent

from .algorithm import Algorithm, FitError
from .podspec import PodSpecInfo
from .queue import QueuedPod
from .replica import JournaledNominations, ReplicatedTable
from .scheduler import Scheduler
from .scoreparts import ScoreParts, totals
from .shard import HEADER, Proposal, Snapshot, owner_of
from .topologyspread import DO_NOT_SCHEDULE, constraints_for

__all__ = ["ShardedScheduler", "ShardProcesses", "ShardLost", "Gatherer", "RETRY", "DEFAULT_BATCH"]

log = logging.getLogger("megaplane.scheduler.shards")

RESTART_DELAY = 0.5
DEFAULT_BATCH = 16


class ShardLost(Exception):
    """A shard died (or its pipe broke) during a batch: the batch's pods are retried once it is back."""


class _Shard:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: Optional[asyncio.subprocess.Process] = None
        self.alive = asyncio.Event()
        self.needs_snapshot = True
        self.starts = 0


class ShardProcesses:
    """N shard processes kept running while this runs, and the scatter/gather of one batch over them."""

    def __init__(self, count: int, announce: Any = None) -> None:
        if count < 1:
            raise ValueError(f"--shards must be >= 1, got {count}")
        self.count = count
        self.announce = announce or (lambda line: log.info("%s", line))
        self.shards = [_Shard(i) for i in range(count)]
        self.restarts = 0
        self._tasks: List["asyncio.Task[None]"] = []
        self._stopping = False

    async def _spawn(self, shard: _Shard) -> asyncio.subprocess.Process:
        argv = [sys.executable, "-c", "from megaplane.scheduler.shard import main; main()", str(shard.index),
                str(self.count)]
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, preexec_fn=die_with_parent,
                                                    limit=1 << 20)
        shard.proc = proc
        shard.needs_snapshot = True
        shard.starts += 1
        shard.alive.set()
        return proc

    async def _supervise(self, shard: _Shard) -> None:
        while not self._stopping:
            proc = await self._spawn(shard)
            self.announce(f"scheduler shard {shard.index}/{self.count} started (pid {proc.pid})")
            code = await proc.wait()
            shard.alive.clear()
            if self._stopping:
                return
            self.restarts += 1
            self.announce(f"scheduler shard {shard.index}/{self.count} exited with {code}; restarting")
            await asyncio.sleep(RESTART_DELAY)

    async def start(self) -> None:
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._supervise(s), name=f"scheduler-shard-{s.index}") for s in self.shards]

    async def stop(self) -> None:
        self._stopping = True
        procs = [s.proc for s in self.shards if s.proc is not None and s.proc.returncode is None]
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def ready(self) -> bool:
        return all(s.proc is not None and s.proc.returncode is None for s in self.shards)

    def pids(self) -> List[int]:
        return [s.proc.pid for s in self.shards if s.proc is not None]

    async def scatter(self, table: ReplicatedTable, snapshot: Any, pods: Sequence[PodSpecInfo]) -> List[List[Proposal]]:
        """Send every shard the ops since its last message and `pods`; per shard its proposals, in pod order.

        `snapshot()` builds the Snapshot a (re)started shard gets instead of the ops. Raises ShardLost when a
        shard dies meanwhile (after every other shard's reply was read, so the pipes stay in step)."""
        for shard in self.shards:
            await shard.alive.wait()
        if table.overflowed():
            for shard in self.shards:
                shard.needs_snapshot = True
        ops = table.take_journal()
        common: Optional[bytes] = None
        frames: List[bytes] = []
        for shard in self.shards:
            if shard.needs_snapshot:
                body = pickle.dumps((snapshot(), [], list(pods)), protocol=pickle.HIGHEST_PROTOCOL)
                shard.needs_snapshot = False
            else:
                if common is None:
                    common = pickle.dumps((None, ops, list(pods)), protocol=pickle.HIGHEST_PROTOCOL)
                body = common
            frames.append(body)
        replies = await asyncio.gather(*(self._exchange(s, f) for s, f in zip(self.shards, frames)),
                                       return_exceptions=True)
        lost = [r for r in replies if isinstance(r, BaseException)]
        if lost:
            for r in lost:
                if not isinstance(r, ShardLost):
                    raise r
            raise lost[0]
        return [r for r in replies if not isinstance(r, BaseException)]

    async def _exchange(self, shard: _Shard, body: bytes) -> List[Proposal]:
        proc = shard.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(HEADER.pack(len(body)))
            proc.stdin.write(body)
            await proc.stdin.drain()
            (size,) = HEADER.unpack(await proc.stdout.readexactly(HEADER.size))
            out: List[Proposal] = pickle.loads(await proc.stdout.readexactly(size))
            return out
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
            shard.needs_snapshot = True
            if shard.proc is proc:
                shard.alive.clear()  # until the supervisor has started its successor
            raise ShardLost(f"scheduler shard {shard.index} was lost: {exc!r}") from None


def _has_cross_pod_filters(table: ReplicatedTable, pod: PodSpecInfo) -> bool:
    """The pod's feasibility on a node depends on pods on other nodes (what a shard may not have seen)."""
    affinity = pod.affinity
    if affinity is not None and (affinity.required_affinity or affinity.required_anti_affinity):
        return True
    if next(iter(table.pod_index.groups_where("required_anti_affinity")), None) is not None:
        return True
    return bool(constraints_for(table, pod, DO_NOT_SCHEDULE))


#: Why a pod of a batch was not placed: a FitError (unschedulable), or RETRY (first into the next batch).
RETRY = "retry"
Outcome = Union[None, FitError, str]


class Gatherer:
    """One batch's scatter and gather over `processes` for the coordinator's `table` and `algorithm` (the
    module docstring's steps 1-4), without the component around it, so a benchmark drives the same code."""

    def __init__(self, table: ReplicatedTable, algorithm: Algorithm, processes: ShardProcesses) -> None:
        self.table = table
        self.algorithm = algorithm
        self.processes = processes
        self.conflicts = 0
        self.retried = 0
        self.batches = 0

    def snapshot(self) -> Snapshot:
        return Snapshot(self.table, dict(self.algorithm.nominated), dict(self.algorithm.profiles),
                        self.algorithm.percentage_of_nodes_to_score)

    async def sync(self) -> None:
        """Bring every shard up to date now (a new shard's snapshot, the ops since the last batch)."""
        await self.processes.scatter(self.table, self.snapshot, [])

    def _select(self, parts: ScoreParts, proposals: List[Proposal], found: List[ScoreParts],
                info: PodSpecInfo) -> int:
        """selectHost over the union: uniformly random among the best totals. The draw picks a shard with
        probability its share of the tied nodes; when its own best (the slot it reserved, uniform among its
        ties) is among them and it ranked its candidates as the union does, that slot is the one taken (the
        same distribution, and the shard's replica then already holds the placement)."""
        if len(parts.slots) == 1:
            return int(parts.slots[0])
        profile = self.algorithm.profile(info)
        total = totals(parts, profile)
        top = total.max()
        best = np.flatnonzero(total == top)
        weights = parts.weights()[best]
        drawn = self.algorithm.rng.randrange(int(weights.sum()))
        pick = int(best[int(np.searchsorted(np.cumsum(weights), drawn, side="right"))])
        if parts.multiplicity is not None and parts.multiplicity[pick] > 1:
            return int(parts.slots[pick])  # a compact row: the shard's own pick among the candidates it stands for
        offset = 0
        for own in found:
            end = offset + len(own.slots)
            if offset <= pick < end:
                tentative = next(p.tentative for p in proposals if p.parts is own)
                mine = total[offset:end]
                if tentative in own.slots[mine == top] and _ranks_alike(own, parts, mine, profile):
                    return int(tentative)
                break
            offset = end
        return int(parts.slots[pick])

    async def batch(self, pods: Sequence[PodSpecInfo],
                    place: Callable[[int, int], Awaitable[None]]) -> List[Outcome]:
        """Schedule `pods` in order: `place(j, slot)` assumes pod j on the slot's node (the table must show it when
        it returns); per pod None (placed), its FitError, or RETRY."""
        table, algorithm = self.table, self.algorithm
        self.batches += 1
        outcomes: List[Outcome] = [None] * len(pods)
        rest: List[int] = []
        for j, info in enumerate(pods):
            slot = table.index.get(info.nominated_node_name) if info.nominated_node_name else None
            if slot is not None and algorithm.fits(info, slot):
                await place(j, slot)
            else:
                rest.append(j)
        if not rest:
            return outcomes
        generation, epoch = table.generation, table.node_epoch
        try:
            replies = await self.processes.scatter(table, self.snapshot, [pods[j] for j in rest])
        except ShardLost as exc:
            log.info("%s; retrying %d pods", exc, len(rest))
            self.retried += len(rest)
            for j in rest:
                outcomes[j] = RETRY
            return outcomes
        count = self.processes.count
        diverged = set()
        reserved = False  # an earlier pod of the batch has tentative placements in the replicas
        for i, j in enumerate(rest):
            info = pods[j]
            if table.node_epoch != epoch:  # a slot may name another node now
                self.retried += len(rest) - i
                for k in rest[i:]:
                    outcomes[k] = RETRY
                return outcomes
            proposals = [shard[i] for shard in replies]
            found = [p.parts for p in proposals if p.parts is not None]
            if not found:
                if reserved:
                    # Judged on replicas holding this batch's reservations and missing its placements: only an
                    # exact replica's "fits nowhere" is believed; first in the next batch, it gets one. (Events
                    # since the scatter are the race one scheduler has too: the queue's move request covers it.)
                    self.retried += 1
                    outcomes[j] = RETRY
                    continue
                reasons: Dict[str, int] = {}
                for p in proposals:
                    for reason, n in (p.reasons or {}).items():
                        reasons[reason] = reasons.get(reason, 0) + n
                outcomes[j] = FitError(info, table.count, reasons)
                continue
            reserved = True
            slot = self._select(ScoreParts.join(found), proposals, found, info)
            winner = owner_of(slot, count)
            if table.generation != generation and (winner in diverged or _has_cross_pod_filters(
                    table, algorithm.profile(info).for_pod(table, info))):
                if not algorithm.fits(info, slot):
                    self.conflicts += 1
                    log.debug("gather check: %s does not fit %s with this batch's placements; retried",
                              info.key, table.names[slot])
                    outcomes[j] = RETRY
                    continue
            if proposals[winner].tentative != slot:
                diverged.add(winner)
            await place(j, slot)
        return outcomes


def _ranks_alike(own: ScoreParts, union: ScoreParts, mine: np.ndarray, profile: Any) -> bool:
    """A shard's totals of its own candidates are the union's (`mine`): each normalising plugin's range over its
    candidates is the union's (DefaultNormalizeScore needs the max; InterPodAffinity the min too), else the
    shard's own totals are recomputed and compared."""
    for name in ("taint", "node_affinity", "inter_pod"):
        col, whole = getattr(own, name), getattr(union, name)
        if col is None:
            continue
        if col.max() != whole.max() or (name == "inter_pod" and col.min() != whole.min()):
            return False
    if own.spread is None:
        return True
    return bool((totals(own, profile) == mine).all())


class ShardedScheduler(Scheduler):
    """The scheduler component with its filtering and scoring scattered over `shards` shard processes."""

    table_class = ReplicatedTable

    def __init__(self, *args: Any, shards: int = 2, batch: int = DEFAULT_BATCH,
                 announce: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert isinstance(self.table, ReplicatedTable)
        self.rtable: ReplicatedTable = self.table
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.batch = batch
        self.algorithm.nominated = JournaledNominations(self.rtable.journal, self.algorithm.nominated)
        self.shard_processes = ShardProcesses(shards, announce=announce)
        self.gatherer = Gatherer(self.rtable, self.algorithm, self.shard_processes)
        #: Pods to go first into the next batch (a gather check refused their winner, or a shard was lost).
        self._retry: List[QueuedPod] = []

    @property
    def shards(self) -> int:
        return self.shard_processes.count

    # -- the loop ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch = [qp for qp in self._retry if self.queue.pods.get(qp.key) is qp]
            self._retry = batch[self.batch:]
            batch = batch[: self.batch]
            if not batch:
                batch = [await self.queue.pop()]
            while len(batch) < self.batch:
                qp = self.queue.pop_nowait()
                if qp is None:
                    break
                batch.append(qp)
            try:
                await self._schedule_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling a batch of %d pods failed", len(batch))
                for qp in batch:
                    if qp.where == "in-flight" and qp.key not in self.table.pods:
                        self.queue.requeue_error(qp)
            await asyncio.sleep(0)

    async def _schedule_batch(self, batch: List[QueuedPod]) -> None:
        cycle = self.queue.scheduling_cycle
        started = time.perf_counter()
        if self.table.count == 0:
            for qp in batch:
                self.metrics.attempt("error", qp.info.scheduler_name, time.perf_counter() - started)
                self.queue.requeue_error(qp)
                self._failed(qp, "SchedulerError", "no nodes available to schedule pods")
            return

        async def place(j: int, slot: int) -> None:
            await self._place(batch[j], slot, started)

        outcomes = await self.gatherer.batch([qp.info for qp in batch], place)
        for qp, outcome in zip(batch, outcomes):
            if outcome is None:
                continue
            if isinstance(outcome, FitError):
                self._unschedulable(qp, outcome, cycle, started)
            else:
                self._retry.append(qp)

    async def _place(self, qp: QueuedPod, slot: int, started: float) -> None:
        assert self._bind_slots is not None
        await self._bind_slots.acquire()
        node = self.table.names[slot]
        self.table.add_pod(qp.info, node, assumed=True)
        self._spawn(self._bind(qp, qp.info, node, started))

    def _unschedulable(self, qp: QueuedPod, exc: FitError, cycle: int, started: float) -> None:
        """As Scheduler.schedule_one after a FitError: PostFilter, requeue, PodScheduled=False and the event."""
        info = qp.info
        message = exc.message
        post = self._post_filter(qp) if self.algorithm.profile(info).preemption else ""
        if post:
            message += " preemption: " + post
        self.metrics.attempt("unschedulable", info.scheduler_name, time.perf_counter() - started)
        self.queue.requeue_unschedulable(qp, cycle)
        self._failed(qp, "Unschedulable", message)

    # -- component -----------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.shard_processes.start()
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        await self.shard_processes.stop()
        self._retry = []

    def ready(self) -> bool:
        return super().ready() and self.shard_processes.ready()

    def statistics(self) -> Dict[str, float]:
        stats = super().statistics()
        stats["shards"] = float(self.shards)
        stats["shard_restarts"] = float(self.shard_processes.restarts)
        stats["gather_conflicts"] = float(self.gatherer.conflicts)
        stats["shard_retried_pods"] = float(self.gatherer.retried)
        return stats
