"""Leader election as client-go's tools/leaderelection, on a coordination.k8s.io/v1 Lease.

Candidates (`LeaderElector`, one per process) share one Lease
(`--leader-elect-resource-namespace`/`--leader-elect-resource-name`). The
record in its spec is client-go's: holderIdentity (`<hostname>_<uuid>`),
leaseDurationSeconds, acquireTime, renewTime (metav1.MicroTime,
`2006-01-02T15:04:05.000000Z`) and leaseTransitions, counted up whenever
the holder changes. Every write is an update with the resourceVersion last
read (or written), so of two candidates racing for the same record the
server lets exactly one through; the other gets 409 Conflict and stays a
candidate (`LeaseLock`).

Time, as upstream: a candidate never trusts the timestamps in the record
(they come from another machine's clock). It notes, on its own clock, when
it last saw the record change, and takes the Lease over only once
leaseDurationSeconds have passed since then without a change. A leader
renews every retry period; `acquire` retries every retry period with
wait.Jitter's 1.2 factor.

The renew deadline (stricter than client-go, on purpose). A leader leads
until `renew_deadline` after it *sent* its last successful write of the
record, on its own clock (`is_leader()`). A standby cannot have seen that
write before it was sent, so it waits at least `lease_duration` from then:
with lease duration > renew deadline, the leader has stopped leading
before anyone else can start. client-go measures the deadline from the
start of the current renewal round, up to one retry period plus a round
trip later. `is_leader()` is a pure function of the clock, so it turns
false at the deadline even when the loop is late (a SIGSTOPped process
resumed): `LeaderOnlyTransport` refuses every write of the components that
lead once it is false, and `LeaderElected` stops them when `renew()`
returns.

ReleaseOnCancel: a leader stopping on purpose stops what it leads first,
then writes the record with no holder and a one-second duration, so a
standby takes over on its next retry instead of after a lease duration.
A process that lost the lease does the same before it exits, over its last
resourceVersion, so only a record still its own is released.

Events: with `event_component`, "<identity> became leader" / "stopped
leading" (reason LeaderElection) on the Lease, as upstream's lock records
them with the component's recorder.

Metrics (`LeaderElectionMetrics`): `leader_election_master_status{name}`
(upstream's gauge: 1 while this process leads), `leader_election_slowpath_total{name}`
(upstream's: renewals that had to read the Lease first), and megaplane's
`megaplane_leader_election_leader_changes_total{name}` (upstream has no
such counter): changes of the Lease's holder this candidate observed.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import os
import random
import socket
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Union

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from megaplane.runtime import REAL_CLOCK, Clock, Component, Runner, Statistics, cancel_tasks

from .client import Client
from .errors import ConflictError, NotFoundError
from .resources import ResourceRef
from .transport import Params, Transport, WatchStream

__all__ = [
    "JITTER_FACTOR",
    "LeaderElected",
    "LeaderElectionConfig",
    "LeaderElectionMetrics",
    "LeaderElectionRecord",
    "LeaderElector",
    "LeaderOnlyTransport",
    "LeaseLock",
    "NotLeaderError",
    "default_identity",
    "exit_when_lost",
    "format_micro_time",
    "leader_only_client",
]

log = logging.getLogger("megaplane.leaderelection")

#: wait.Jitter's factor for the acquire loop; also the bound renewDeadline must exceed (x retryPeriod).
JITTER_FACTOR = 1.2

#: kube-controller-manager's leaderElection healthz check tolerates this much past an expired lease.
HEALTHZ_TOLERANCE = 20.0

Obj = Dict[str, Any]


def default_identity() -> str:
    """`<hostname>_<uuid>`, as kube-controller-manager and kube-scheduler name themselves."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def format_micro_time(wall: float) -> str:
    """metav1.MicroTime as the API writes it: RFC 3339, UTC, microseconds (2006-01-02T15:04:05.000000Z)."""
    at = datetime.datetime.fromtimestamp(wall, datetime.timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaderElectionConfig:
    """One election: the Lease, who we are, and client-go's three durations (seconds)."""

    name: str
    namespace: str = "kube-system"
    identity: str = field(default_factory=default_identity)
    #: How long a standby waits without seeing the record change before it takes over (15 s).
    lease_duration: float = 15.0
    #: How long after its last successful write a leader still leads (10 s).
    renew_deadline: float = 10.0
    #: Between attempts to acquire or renew (2 s).
    retry_period: float = 2.0
    #: Give the Lease up on a graceful stop (after what it leads has stopped).
    release_on_cancel: bool = True
    #: Record "<identity> became leader" / "stopped leading" Events (reason LeaderElection) on the Lease with
    #: this source component, as upstream's lock does with the component's recorder ("": none).
    event_component: str = ""

    def validate(self) -> None:
        """client-go's checks (NewLeaderElector); ValueError with its wording."""
        if not self.name or not self.namespace:
            raise ValueError("the lease needs a name and a namespace")
        if not self.identity:
            raise ValueError("Lock identity is empty")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("leaseDuration must be greater than renewDeadline")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError("renewDeadline must be greater than retryPeriod*JitterFactor")
        if self.lease_duration < 1:
            raise ValueError("leaseDuration must be greater than zero (at least 1s: the Lease holds whole seconds)")
        if self.renew_deadline <= 0:
            raise ValueError("renewDeadline must be greater than zero")
        if self.retry_period <= 0:
            raise ValueError("retryPeriod must be greater than zero")
        if int(self.lease_duration) <= self.renew_deadline:
            # Standbys read leaseDurationSeconds, which is the duration truncated to seconds.
            raise ValueError(f"leaseDuration is written in whole seconds ({int(self.lease_duration)}s), "
                             "which must be greater than renewDeadline")

    @property
    def lease_duration_seconds(self) -> int:
        return int(self.lease_duration)

    def describe(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class LeaderElectionRecord:
    """client-go's LeaderElectionRecord as the Lease's spec holds it (times as the API wrote them)."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: Optional[str] = None
    renew_time: Optional[str] = None
    leader_transitions: int = 0

    @classmethod
    def from_spec(cls, spec: Optional[Obj]) -> "LeaderElectionRecord":
        spec = spec or {}
        return cls(str(spec.get("holderIdentity") or ""), int(spec.get("leaseDurationSeconds") or 0),
                   spec.get("acquireTime"), spec.get("renewTime"), int(spec.get("leaseTransitions") or 0))

    def to_spec(self) -> Obj:
        spec: Obj = {"holderIdentity": self.holder_identity, "leaseDurationSeconds": self.lease_duration_seconds,
                     "leaseTransitions": self.leader_transitions}
        if self.acquire_time is not None:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            spec["renewTime"] = self.renew_time
        return spec


LEASES = ResourceRef("coordination.k8s.io", "v1", "leases", "Lease", True)


class LeaseLock:
    """resourcelock.LeaseLock: the record in one Lease, written only over the resourceVersion last seen."""

    def __init__(self, client: Client, namespace: str, name: str) -> None:
        self.leases = client.resource(LEASES)
        self.namespace = namespace
        self.lease_name = name
        #: The Lease as last read or written: its resourceVersion is the next update's precondition.
        self.lease: Optional[Obj] = None

    async def get(self) -> LeaderElectionRecord:
        """The record now (NotFoundError when there is no Lease)."""
        self.lease = await self.leases.get(self.lease_name, self.namespace)
        return LeaderElectionRecord.from_spec(self.lease.get("spec"))

    async def create(self, record: LeaderElectionRecord) -> None:
        self.lease = await self.leases.create(
            {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": self.lease_name, "namespace": self.namespace}, "spec": record.to_spec()},
            self.namespace)

    async def update(self, record: LeaderElectionRecord) -> None:
        """PUT the record over the Lease last seen; 409 (ConflictError) if anyone wrote it since."""
        if self.lease is None:
            raise RuntimeError("lease not initialized, call get or create first")
        lease = dict(self.lease)
        lease["spec"] = record.to_spec()
        self.lease = await self.leases.update(lease, self.namespace)

    @property
    def resource_version(self) -> str:
        return str(((self.lease or {}).get("metadata") or {}).get("resourceVersion") or "")


class NotLeaderError(Exception):
    """A write by a component that leads only while its elector does, refused because it no longer does."""


class LeaderElector:
    """One candidate: `acquire()` until leading, `renew()` until not, `release()` on a graceful stop.

    `try_acquire_or_renew()` is one attempt (client-go's tryAcquireOrRenew),
    usable on its own in tests. Times come from `clock` (monotonic for
    every decision, wall only for the record's timestamps).
    """

    def __init__(self, client: Client, config: LeaderElectionConfig, *, clock: Clock = REAL_CLOCK,
                 on_new_leader: Optional[Callable[[str], None]] = None,
                 jitter: Callable[[], float] = random.random) -> None:
        config.validate()
        self.config = config
        self.clock = clock
        self.lock = LeaseLock(client, config.namespace, config.name)
        self._events = client.resource("events")
        self._event_tasks: Set["asyncio.Task[None]"] = set()
        self.on_new_leader = on_new_leader
        self._jitter = jitter
        self.observed = LeaderElectionRecord()
        #: Monotonic time the observed record last changed (or was written by us).
        self.observed_time = -math.inf
        #: Monotonic time until which we lead (last successful write sent + renew deadline).
        self._leading_until = -math.inf
        self._leading = False
        self._reported = ""
        #: Holder changes observed (megaplane_leader_election_leader_changes_total).
        self.leader_changes = 0
        #: Renewals that had to read the Lease first (leader_election_slowpath_total).
        self.slowpath = 0

    # -- state -----------------------------------------------------------------------------------

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def name(self) -> str:
        return self.config.name

    def is_leader(self) -> bool:
        """True while we lead: acquired, and not past the renew deadline of our last successful write."""
        return self._leading and self.clock.monotonic() < self._leading_until

    @property
    def leader(self) -> str:
        """The holder last observed ("" for none)."""
        return self.observed.holder_identity

    def check(self, tolerance: float = HEALTHZ_TOLERANCE) -> Optional[str]:
        """kube-controller-manager's leaderElection healthz check: a leader whose renewals stopped long ago
        (its loop is stuck) is unhealthy; a standby is always healthy."""
        if not self._leading or self.observed.holder_identity != self.identity:
            return None
        if self.clock.monotonic() - self.observed_time > self.config.lease_duration + tolerance:
            return f"failed election to renew leadership on lease {self.config.name}"
        return None

    def _holds_observed(self) -> bool:
        return self.observed.holder_identity == self.identity

    def _observed_valid(self, now: float) -> bool:
        return self.observed_time + self.observed.lease_duration_seconds > now

    def _observe(self, record: LeaderElectionRecord) -> None:
        self.observed = record
        self.observed_time = self.clock.monotonic()
        self._report_transition()

    def _report_transition(self) -> None:
        holder = self.observed.holder_identity
        if not holder or holder == self._reported:
            return
        if self._reported:
            self.leader_changes += 1
        self._reported = holder
        log.info("%s: new leader %s", self.config.describe(), holder)
        if self.on_new_leader is not None:
            self.on_new_leader(holder)

    # -- one attempt -----------------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """Acquire the Lease if free or expired, renew it if ours; False if another holds it or a write failed."""
        now = self.clock.monotonic()
        stamp = format_micro_time(self.clock.time())
        record = LeaderElectionRecord(self.identity, self.config.lease_duration_seconds, stamp, stamp, 0)
        desc = self.config.describe()

        # 1. The leader's fast path: write over the Lease as we last wrote it.
        if self._holds_observed() and self._observed_valid(now) and self.lock.lease is not None:
            mine = LeaderElectionRecord(self.identity, record.lease_duration_seconds, self.observed.acquire_time,
                                        stamp, self.observed.leader_transitions)
            try:
                await self.lock.update(mine)
            except Exception as exc:
                log.info("%s: failed to update lease optimistically, falling back to slow path: %s", desc, exc)
            else:
                self._observe(mine)
                return True

        # 2. Read the record, or create the Lease.
        try:
            old = await self.lock.get()
        except NotFoundError:
            try:
                await self.lock.create(record)
            except Exception as exc:
                log.warning("%s: error initially creating lease lock: %s", desc, exc)
                return False
            self._observe(record)
            return True
        except Exception as exc:
            log.warning("%s: error retrieving lease lock: %s", desc, exc)
            return False

        # 3. A changed record restarts the wait, on our clock.
        if old != self.observed:
            self._observe(old)
        if old.holder_identity and self._observed_valid(now) and not self._holds_observed():
            log.debug("%s: lease is held by %s and has not yet expired", desc, old.holder_identity)
            return False

        # 4. Ours to renew, or free or expired: write it over the resourceVersion just read.
        if self._holds_observed():
            record = LeaderElectionRecord(self.identity, record.lease_duration_seconds, old.acquire_time, stamp,
                                          old.leader_transitions)
            self.slowpath += 1
        else:
            record = LeaderElectionRecord(self.identity, record.lease_duration_seconds, stamp, stamp,
                                          old.leader_transitions + 1)
        try:
            await self.lock.update(record)
        except ConflictError:
            log.info("%s: another candidate wrote the lease first (409 Conflict)", desc)
            return False
        except Exception as exc:
            log.warning("%s: failed to update lease: %s", desc, exc)
            return False
        self._observe(record)
        return True

    async def _until(self, call: Awaitable[bool], deadline: float) -> bool:
        """`call`'s answer, or False if it has none by `deadline` on our clock (it is cancelled then)."""
        attempt = asyncio.ensure_future(call)
        timer = asyncio.ensure_future(self.clock.sleep_until(deadline))
        try:
            await asyncio.wait({attempt, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (attempt, timer):
                if not task.done():
                    task.cancel()
        if attempt.done() and not attempt.cancelled():
            return attempt.result()
        try:
            await attempt
        except (asyncio.CancelledError, Exception):
            pass
        return False

    async def _attempt_until(self, deadline: float) -> bool:
        """One attempt, abandoned at `deadline` (its answer would come too late to lead on)."""
        return await self._until(self.try_acquire_or_renew(), deadline)

    # -- the loops -------------------------------------------------------------------------------

    async def acquire(self, attempted: Optional[Callable[[bool], None]] = None) -> None:
        """Return once we lead; retry every retry period (+ up to 1.2x jitter) until then.

        `attempted(leading)` is called after every attempt.
        """
        cfg = self.config
        log.info("attempting to acquire leader lease %s...", cfg.describe())
        while True:
            sent = self.clock.monotonic()
            ok = await self._attempt_until(sent + cfg.renew_deadline)
            if ok and self.clock.monotonic() < sent + cfg.renew_deadline:
                self._leading_until = sent + cfg.renew_deadline
                self._leading = True
                log.info("successfully acquired lease %s", cfg.describe())
                self.record_event("became leader")
                if attempted is not None:
                    attempted(True)
                return
            if attempted is not None:
                attempted(False)
            await self.clock.sleep(cfg.retry_period * (1.0 + JITTER_FACTOR * self._jitter()))

    async def renew(self) -> None:
        """Renew every retry period while we lead; return once we no longer do (the renew deadline passed)."""
        try:
            await self._renew()
        finally:
            self.record_event("stopped leading")

    async def _renew(self) -> None:
        cfg = self.config
        while True:
            await self.clock.sleep_until(min(self.clock.monotonic() + cfg.retry_period, self._leading_until))
            deadline = self._leading_until
            renewed = False
            while self.clock.monotonic() < deadline:
                sent = self.clock.monotonic()
                renewed = await self._attempt_until(deadline)
                if renewed:
                    self._leading_until = sent + cfg.renew_deadline
                    break
                await self.clock.sleep_until(min(self.clock.monotonic() + cfg.retry_period, deadline))
            if not renewed or not self.is_leader():
                self._leading = False
                log.error("failed to renew lease %s: timed out waiting for the condition", cfg.describe())
                return

    def record_event(self, what: str) -> None:
        """client-go's LeaseLock.RecordEvent: a Normal LeaderElection Event "<identity> <what>" on the Lease,
        written in the background (best effort: an Event that cannot be written is logged and dropped)."""
        component = self.config.event_component
        if not component or self.lock.lease is None or len(self._event_tasks) >= 8:
            return
        meta = self.lock.lease.get("metadata") or {}
        now = self.clock.time()
        stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body: Obj = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{self.config.name}.{int(now * 1e9):x}", "namespace": self.config.namespace},
            "involvedObject": {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                               "namespace": self.config.namespace, "name": self.config.name,
                               "uid": meta.get("uid", ""), "resourceVersion": meta.get("resourceVersion", "")},
            "reason": "LeaderElection", "message": f"{self.identity} {what}", "type": "Normal",
            "source": {"component": component}, "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": component, "reportingInstance": self.identity,
        }

        async def write() -> None:
            try:
                await self._events.create(body, self.config.namespace)
            except Exception as exc:
                log.info("%s: LeaderElection event not written: %s", self.config.describe(), exc)

        task = asyncio.get_running_loop().create_task(write())
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    async def release(self) -> bool:
        """Give the Lease up if we hold it (holder "", 1 s): a standby takes over on its next retry.

        Bounded by the renew deadline, as client-go's; False if it could not be written by then.
        """
        self._leading = False
        self._leading_until = -math.inf
        if not self._holds_observed():
            return True
        return await self._until(self._release(), self.clock.monotonic() + self.config.renew_deadline)

    async def _release(self) -> bool:
        stamp = format_micro_time(self.clock.time())
        desc = self.config.describe()
        for _ in range(3):
            record = LeaderElectionRecord("", 1, stamp, stamp, self.observed.leader_transitions)
            try:
                await self.lock.update(record)
            except ConflictError:
                # Our own renewal may have landed meanwhile: release over it, but only if still ours.
                try:
                    current = await self.lock.get()
                except Exception as exc:
                    log.warning("%s: failed to release lease: %s", desc, exc)
                    return False
                if current.holder_identity != self.identity:
                    return True
                continue
            except Exception as exc:
                log.warning("%s: failed to release lease: %s", desc, exc)
                return False
            self._observe(record)
            log.info("released lease %s", desc)
            return True
        return False


class LeaderOnlyTransport:
    """A `Transport` whose writes go through only while `elector.is_leader()`: the fence of what leads.

    Reads and watches pass (a standby may keep caches warm). A write asked
    for after leadership ended raises `NotLeaderError` before anything is
    sent. One admitted just before the deadline and then kept waiting inside
    the inner transport (its rate limiter, a busy connection) may still go
    out after it; it still lands before anyone else can lead unless it
    waited longer than lease duration - renew deadline (5 s by default),
    since no standby may take over earlier than that after our deadline.
    """

    def __init__(self, inner: Transport, elector: LeaderElector) -> None:
        self.inner = inner
        self.elector = elector
        #: Writes refused because we no longer led.
        self.refused = 0

    def _check(self, verb: str, ref: ResourceRef, name: str = "") -> None:
        if not self.elector.is_leader():
            self.refused += 1
            what = f"{ref.plural}/{name}" if name else ref.plural
            raise NotLeaderError(f"{verb} {what}: not the leader of lease {self.elector.config.describe()}")

    async def get(self, ref: ResourceRef, namespace: Optional[str], name: str, subresource: str = "",
                  params: Optional[Params] = None) -> bytes:
        return await self.inner.get(ref, namespace, name, subresource, params)

    async def list(self, ref: ResourceRef, namespace: Optional[str], params: Optional[Params] = None) -> bytes:
        return await self.inner.list(ref, namespace, params)

    async def create(self, ref: ResourceRef, namespace: Optional[str], body: bytes, subresource: str = "",
                     params: Optional[Params] = None, name: str = "") -> bytes:
        self._check("create", ref, name)
        return await self.inner.create(ref, namespace, body, subresource, params, name)

    async def update(self, ref: ResourceRef, namespace: Optional[str], name: str, body: bytes,
                     subresource: str = "", params: Optional[Params] = None) -> bytes:
        self._check("update", ref, name)
        return await self.inner.update(ref, namespace, name, body, subresource, params)

    async def patch(self, ref: ResourceRef, namespace: Optional[str], name: str, content_type: str, body: bytes,
                    subresource: str = "", params: Optional[Params] = None) -> bytes:
        self._check("patch", ref, name)
        return await self.inner.patch(ref, namespace, name, content_type, body, subresource, params)

    async def delete(self, ref: ResourceRef, namespace: Optional[str], name: str, body: Optional[bytes] = None,
                     params: Optional[Params] = None) -> bytes:
        self._check("delete", ref, name)
        return await self.inner.delete(ref, namespace, name, body, params)

    async def delete_collection(self, ref: ResourceRef, namespace: Optional[str], body: Optional[bytes] = None,
                                params: Optional[Params] = None) -> bytes:
        self._check("deletecollection", ref)
        return await self.inner.delete_collection(ref, namespace, body, params)

    async def watch(self, ref: ResourceRef, namespace: Optional[str], params: Optional[Params] = None) -> WatchStream:
        return await self.inner.watch(ref, namespace, params)

    async def close(self) -> None:
        pass  # the inner transport belongs to its own Client, closed by its owner


def leader_only_client(client: Client, elector: LeaderElector) -> Client:
    """A Client over `client`'s transport whose writes go through only while `elector` leads."""
    return Client(LeaderOnlyTransport(client.transport, elector), namespace=client.namespace)


def exit_when_lost() -> None:
    """A process's `on_lost`, as kube-controller-manager's OnStoppedLeading: flush and exit with status 1
    at once, so a supervisor restarts it as a fresh candidate (what it led has already stopped)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


class LeaderElected:
    """A Component running the components `build()` makes only while `elector` leads.

    `start()` returns after the first attempt: leading (the built
    components started) or standing by. When leadership is lost the built
    components are stopped (bounded by the time left before a standby can
    take over), the Lease is released if it is still ours, then `on_lost()`
    runs: a process exits there, as kube-controller-manager does
    ("leaderelection lost"); without it the elector campaigns again (without
    releasing) and a fresh `build()` runs on the next win.
    `stop()` stops the built components first, then releases the Lease
    (`release_on_cancel`).
    """

    def __init__(self, elector: LeaderElector, build: Callable[[], Sequence[Component]], *,
                 name: str = "leader-election", on_lost: Optional[Callable[[], Union[None, Awaitable[None]]]] = None,
                 announce: Callable[[str], None] = log.info) -> None:
        self.elector = elector
        self.build = build
        self._name = name
        self.on_lost = on_lost
        self.announce = announce
        self.runner: Optional[Runner] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._first: Optional[asyncio.Future[None]] = None
        self.terms = 0

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        self._task = loop.create_task(self._campaign(), name=f"leader-election:{self.elector.config.describe()}")
        await asyncio.wait({self._first, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            self._task.result()  # the campaign failed (a build or start error): raise it here

    def _first_done(self) -> None:
        if self._first is not None and not self._first.done():
            self._first.set_result(None)

    async def _campaign(self) -> None:
        cfg = self.elector.config
        while True:
            await self.elector.acquire(lambda leading: None if leading else self._first_done())
            self.terms += 1
            self.announce(f"became leader of lease {cfg.describe()} as {cfg.identity}")
            # What it leads may stop within the time left before a standby can take over.
            margin = max(1.0, cfg.lease_duration - cfg.renew_deadline)
            self.runner = Runner(self.build(), name=self._name, stop_timeout=margin)
            # Renew while the led components start (informers may take longer than a renew deadline to sync),
            # as client-go runs OnStartedLeading next to its renew loop.
            renewing = asyncio.ensure_future(self.elector.renew())
            starting = asyncio.ensure_future(self.runner.start())
            try:
                await asyncio.wait({renewing, starting}, return_when=asyncio.FIRST_COMPLETED)
                if starting.done():
                    starting.result()  # a start error ends the campaign (and fails start())
                    self._first_done()
                    await renewing
                else:
                    await cancel_tasks([starting])
            finally:
                await cancel_tasks([t for t in (renewing, starting) if not t.done()])
            log.error("leaderelection lost: lease %s", cfg.describe())
            self.announce(f"leaderelection lost: lease {cfg.describe()}; stopping what it leads")
            runner, self.runner = self.runner, None
            try:
                # Bounded as a whole: their writes are already refused (LeaderOnlyTransport), so a slow stop
                # only delays on_lost.
                await asyncio.wait_for(runner.stop(), margin)
            except Exception:
                log.exception("%s: stopping after the lease was lost", self._name)
            if self.on_lost is not None:
                if cfg.release_on_cancel:
                    # As client-go's renew() with ReleaseOnCancel: if the record is still ours (renewals were
                    # only slow), a standby or this process's restart need not wait a lease duration. The
                    # write is over our last resourceVersion, so a lease someone else took is left alone.
                    await self.elector.release()
                result = self.on_lost()
                if result is not None:
                    await result
                return

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.stop()
        if self.elector.config.release_on_cancel:
            await self.elector.release()

    def ready(self) -> bool:
        """Leading with everything it leads ready, or standing by (a standby is a healthy process)."""
        if self._task is None or self._task.done():
            return False
        runner = self.runner
        return runner.ready() if runner is not None else not self.elector.is_leader()

    def statistics(self) -> Statistics:
        out: Statistics = {"leading": self.elector.is_leader(), "terms": self.terms,
                           "leader_changes": self.elector.leader_changes}
        if self.runner is not None:
            out.update(self.runner.statistics())
        return out


class LeaderElectionMetrics(Collector):
    """The electors' metrics, read at scrape time (see the module docstring for the names)."""

    def __init__(self, electors: Iterable[LeaderElector]) -> None:
        self.electors: List[LeaderElector] = list(electors)

    def collect(self) -> Iterator[Metric]:
        status = GaugeMetricFamily(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates "
            "master. 'name' is the string used to identify the lease. Please make sure to group by name.",
            labels=["name"])
        slowpath = CounterMetricFamily(
            "leader_election_slowpath",
            "Total number of slow path exercised in renewing leader leases. 'name' is the string used to "
            "identify the lease. Please make sure to group by name.", labels=["name"])
        changes = CounterMetricFamily(
            "megaplane_leader_election_leader_changes",
            "Changes of the lease's holder this candidate observed (megaplane's; not in upstream). 'name' is "
            "the string used to identify the lease.", labels=["name"])
        for e in self.electors:
            status.add_metric([e.name], 1.0 if e.is_leader() else 0.0)
            slowpath.add_metric([e.name], e.slowpath)
            changes.add_metric([e.name], e.leader_changes)
        yield status
        yield slowpath
        yield changes
