"""Every node's heartbeats from one scheduler: Lease renewals and node status reports, off one heap.

No task per node: a timer wheel of (due, kind, node) codes (`columns.
TimerWheel`: one wake-up per TICK however many nodes fall due in it), and
`workers` coroutines (as many as the requests the fleet keeps in flight)
taking due entries in order. Per-node state is flat columns (`columns`:
int64 resourceVersions, fixed-width UIDs, names computed from the index)
indexed by the node's fleet-local index; an entry whose node is no longer
due is stale and skipped (lazy deletion, so a fault can reschedule a node
without a search).

With a `wire.Channel` (`megaplane fleet` over HTTP), a renewal whose
resourceVersion is known does not take a worker: its PUT (the bytes
`HTTPTransport` would send) is queued on the channel when it falls due,
and every PUT due in one tick goes out in a write per connection,
pipelined. An answer other than 2xx, or a lost connection, hands the
renewal to the workers' path below for its remaining tries, counted as
that path counts them (conflicts, failures).

A renewal is client-go's lease client (component-helpers nodelease): PUT
the Lease with the resourceVersion of the last answer and a new renewTime,
the body assembled from pre-encoded pieces and the answer read only for
its resourceVersion (bytes in, bytes out); a conflict re-reads the Lease
and tries again, up to 5 tries (maxUpdateRetries), never a write without a
resourceVersion. The next renewal is due a renew interval (duration/4,
plus up to 4 % jitter: JitterUntil's factor 0.04) after this one ends.
A status report is a strategic-merge PATCH of nodes/status (see
`nodes.NodeFactory.heartbeat_patch`) every --node-status-report-frequency
(spread by up to 5 %), and at once when a fault changes what it says.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import math
import random
from array import array
from typing import Callable, Deque, List, Optional, Tuple

from megaplane.client import (
    ConflictError,
    NotFoundError,
    StatusError,
    TooManyRequestsError,
    Transport,
    error_from_response,
    lookup,
)
from megaplane.client.errors import retry_after_seconds
from megaplane.client.transport import PATCH_CONTENT_TYPES
from megaplane.runtime import REAL_CLOCK, Clock, Timer, cancel_tasks

from .columns import ByteSlots, NodeNames, ResourceVersions, TimerWheel
from .config import FleetConfig
from .nodes import FAULT_NONE, FAULT_NOT_READY, FAULT_SLOW, FAULT_STOP, NodeFactory, format_micro_time
from .wire import Channel, Endpoint

__all__ = ["Heartbeats", "LEASE_NAMESPACE", "RENEW_BUCKETS", "LATENESS_BUCKETS", "LATENESS_SAMPLES"]

log = logging.getLogger("megaplane.fleet")

LEASE_NAMESPACE = "kube-node-lease"
LEASES = lookup("coordination.k8s.io/v1", "leases")
NODES = lookup("nodes")
MAX_UPDATE_RETRIES = 5
RENEW_JITTER = 0.04
STATUS_JITTER = 0.05
#: Upper bounds (seconds) of the renew latency histogram.
RENEW_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Upper bounds (seconds) of the lateness histogram: a reader takes percentiles of any window from
#: two scrapes (the recent-samples quantiles below mix in whatever came before the window, start-up too).
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
#: How many of the latest renewals' lateness are kept for percentiles.
LATENESS_SAMPLES = 1 << 16

#: Width (seconds) of one timer wheel slot: entries due in one slot are taken together, up to this early.
TICK = 0.01
#: How often the channel's request deadlines are checked.
DEADLINE_CHECK_EVERY = 1.0
#: The width of a Node UID as Kubernetes writes one (a UUID); others are kept apart.
UID_WIDTH = 36
KIND_LEASE, KIND_STATUS = 0, 1
_RV = b'"resourceVersion":"'
_STRATEGIC = PATCH_CONTENT_TYPES["strategic"]

Entry = Tuple[float, int, int]
#: A renewal handed to the workers: (node, due, began, tries used, wait before the next try).
Retry = Tuple[int, float, float, int, float]


def resource_version(body: bytes) -> bytes:
    """The first resourceVersion in an object's JSON: a Lease's own (nothing else in it has one)."""
    at = body.find(_RV)
    if at < 0:
        return b""
    at += len(_RV)
    return body[at:body.find(b'"', at)]


class Heartbeats:
    """Lease renewals and status reports of every node of one fleet (see the module docstring)."""

    def __init__(self, transport: Transport, config: FleetConfig, factory: NodeFactory, *,
                 clock: Clock = REAL_CLOCK, rng: Callable[[], float] = random.random,
                 on_fault_change: Optional[Callable[[int, int, int], None]] = None,
                 endpoint: Optional[Endpoint] = None) -> None:
        self.transport = transport
        self.config = config
        self.factory = factory
        self.clock = clock
        self.rng = rng
        self.on_fault_change = on_fault_change
        count = config.nodes
        self.names = NodeNames(config.node_name_prefix, config.node_index_start, count)
        self.lease_rv = ResourceVersions(count)
        self.node_uid = ByteSlots(count, UID_WIDTH)
        self.fault = bytearray(count)
        self.slow_every = array("d", bytes(8 * count))
        self.posted_ready = bytearray(b"\x01" * count)
        self.due = (array("d", [math.inf]) * count, array("d", [math.inf]) * count)
        self.faulted = 0
        self._wheel = TimerWheel(TICK)
        self._ready: Deque[Entry] = collections.deque()
        self._retry: Deque[Retry] = collections.deque()
        self._next_deadline_check = 0.0
        self.channel: Optional[Channel] = None
        self._put_head = b""
        if endpoint is not None:
            depth = max(1, config.max_pipelined_requests)
            self.channel = Channel(endpoint, max(1, -(-config.max_connections // depth)), depth,
                                   on_answer=self._answered, on_failure=self._lost, read_delay=TICK,
                                   clock=clock)
            # The request line up to the name, as HTTPTransport writes it (ResourceRef.path, then the name).
            self._put_head = b"PUT " + endpoint.prefix + LEASES.path(LEASE_NAMESPACE).encode() + b"/"
            self._put_fixed = endpoint.fixed + b"Content-Type: application/json\r\nContent-Length: "
        self._waiters: Deque["asyncio.Future[None]"] = collections.deque()
        self._timer: Optional[Timer] = None
        self._armed = math.inf
        self._workers: List["asyncio.Task[None]"] = []
        self._running = False
        duration = b"%d" % config.node_lease_duration_seconds
        self._lease_pieces = (
            b'{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"',
            b'","namespace":"kube-node-lease","resourceVersion":"',
            b'","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"',
            b'","uid":"',
            b'"}]},"spec":{"holderIdentity":"',
            b'","leaseDurationSeconds":' + duration + b',"renewTime":"',
            b'"}}',
        )
        # Counters read by the metrics collector and statistics().
        self.renewals = 0
        self.renew_failures = 0
        self.renew_conflicts = 0
        self.lease_creates = 0
        self.status_reports = 0
        self.status_failures = 0
        self.renew_buckets = array("q", bytes(8 * (len(RENEW_BUCKETS) + 1)))
        self.renew_seconds_sum = 0.0
        self.lateness_buckets = array("q", bytes(8 * (len(LATENESS_BUCKETS) + 1)))
        self.lateness_seconds_sum = 0.0
        self.lateness = array("d", bytes(8 * LATENESS_SAMPLES))
        self.lateness_count = 0

    # -- bodies ------------------------------------------------------------------------------------

    def lease_body(self, local: int, now: float, rv: bytes) -> bytes:
        name = self.names.encoded(local)
        p = self._lease_pieces
        return b"".join((p[0], name, p[1], rv, p[2], name, p[3], self.node_uid[local], p[4], name, p[5],
                         format_micro_time(now), p[6]))

    def lease_request(self, local: int, now: float, rv: bytes) -> bytes:
        """The whole HTTP request renewing node `local`'s Lease (what HTTPTransport.update writes)."""
        body = self.lease_body(local, now, rv)
        return b"".join((self._put_head, self.names.encoded(local), self._put_fixed, b"%d" % len(body),
                         b"\r\n\r\n", body))

    def new_lease(self, local: int, now: float) -> bytes:
        """The Lease to create (no resourceVersion)."""
        body = self.lease_body(local, now, b"")
        return body.replace(b',"resourceVersion":""', b"", 1)

    # -- scheduling -------------------------------------------------------------------------------

    def schedule(self, local: int, kind: int, due: float) -> None:
        self.due[kind][local] = due
        wheel = self._wheel
        wheel.push(local * 2 + kind, due)
        if self._running:
            release = math.floor(due / TICK) * TICK
            if release < self._armed:
                self._arm(release)

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = deadline
        self._timer = self.clock.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._armed = math.inf
        clock = self.clock
        wheel, ready, due = self._wheel, self._ready, self.due
        now = clock.monotonic()
        horizon = wheel.horizon(now)
        lease_due, status_due, fault = due[KIND_LEASE], due[KIND_STATUS], self.fault
        channel = self.channel
        lease_rv = self.lease_rv
        queued = False
        for bucket in wheel.pop_due(now):
            for code in bucket:
                local = code >> 1
                if code & 1:
                    d = status_due[local]
                    if d < horizon:
                        status_due[local] = math.inf  # taken: a stale twin of this entry is skipped
                        ready.append((d, KIND_STATUS, local))
                    continue
                d = lease_due[local]
                if d >= horizon:
                    continue  # rescheduled since (stale), or never due
                lease_due[local] = math.inf
                if channel is None or fault[local] == FAULT_STOP:
                    ready.append((d, KIND_LEASE, local))
                    continue
                rv = lease_rv[local]
                if not rv:
                    ready.append((d, KIND_LEASE, local))  # the workers read (or create) it first
                    continue
                channel.queue((local, d, now), self.lease_request(local, clock.time(), rv))
                queued = True
        if queued:
            channel.flush()  # type: ignore[union-attr]
        if channel is not None and now >= self._next_deadline_check:
            self._next_deadline_check = now + DEADLINE_CHECK_EVERY
            channel.check_deadlines()
        release = wheel.next_release()  # after `now`: every slot up to now's was released
        if release != math.inf:
            self._arm(release)
        self._wake_workers()

    def _wake_workers(self) -> None:
        waiters = self._waiters
        for _ in range(min(len(self._ready) + len(self._retry), len(waiters))):
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def start(self, workers: int) -> None:
        self._running = True
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work(), name=f"fleet-heartbeats-{i}") for i in range(workers)]
        release = self._wheel.next_release()
        if release != math.inf:
            self._arm(release)

    async def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed = math.inf
        await cancel_tasks(self._workers)
        self._workers = []
        if self.channel is not None:
            await self.channel.close()

    async def _work(self) -> None:
        ready, retry = self._ready, self._retry
        loop = asyncio.get_running_loop()
        while True:
            if retry:
                local, due, began, tries, delay = retry.popleft()
                kind = KIND_LEASE
            elif ready:
                due, kind, local = ready.popleft()
                began, tries, delay = -1.0, 0, 0.0
            else:
                waiter = loop.create_future()
                self._waiters.append(waiter)
                await waiter
                continue
            try:
                if kind == KIND_LEASE:
                    if delay > 0:
                        await self.clock.sleep(delay)
                    await self._renew(local, due, began, tries)
                else:
                    await self._report(local)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug, not the API: keep the node beating and say so
                log.exception("fleet: heartbeat of %s failed", self.names[local])
                self.schedule(local, kind, self.clock.monotonic() + self.config.lease_renew_interval)

    # -- faults ---------------------------------------------------------------------------------

    def set_fault(self, local: int, fault: int, slow_every: float = 0.0) -> None:
        """Apply a node's fault annotation; a change reschedules what it affects at once."""
        old = self.fault[local]
        if old == fault and (fault != FAULT_SLOW or self.slow_every[local] == slow_every):
            return
        self.fault[local] = fault
        self.slow_every[local] = slow_every
        self.faulted += (fault != FAULT_NONE) - (old != FAULT_NONE)
        now = self.clock.monotonic()
        if fault != FAULT_STOP:
            # Recovering, or a new rhythm: the next renewal follows the new rule from now.
            self.schedule(local, KIND_LEASE, now if old == FAULT_STOP or fault == FAULT_NONE else
                          now + self._interval(local))
        if (old == FAULT_NOT_READY) != (fault == FAULT_NOT_READY) or old == FAULT_STOP:
            self.schedule(local, KIND_STATUS, now)
        if self.on_fault_change is not None:
            self.on_fault_change(local, old, fault)

    def _interval(self, local: int) -> float:
        if self.fault[local] == FAULT_SLOW:
            return self.slow_every[local]
        return self.config.lease_renew_interval * (1.0 + RENEW_JITTER * self.rng())

    # -- one renewal ----------------------------------------------------------------------------

    def _answered(self, item: Tuple[int, float, float], status: int, headers: "dict[str, str]",
                  body: bytes) -> None:
        """A pipelined renewal's answer (wire.Channel's on_answer)."""
        local, due, began = item
        if status < 300:
            self.lease_rv[local] = resource_version(body)
            ended = self.clock.monotonic()
            self._observe(ended - began, ended - due)
            self.schedule(local, KIND_LEASE, ended + self._interval(local))
            return
        error = error_from_response(status, headers, body)
        delay = 0.0
        tries = 1
        if isinstance(error, ConflictError):
            self.renew_conflicts += 1
            self.lease_rv[local] = b""  # re-read before the next try
        elif isinstance(error, NotFoundError):
            self.lease_rv[local] = b""  # deleted under us: ensure creates it again
        else:
            retry_after = retry_after_seconds(headers, error.details) if isinstance(error, TooManyRequestsError) \
                else None
            if retry_after is not None:
                # HTTPTransport waits and sends again without counting a try (nor a failure): so do we.
                tries, delay = 0, retry_after
            else:
                self.renew_failures += 1
                log.debug("fleet: renewing the lease of %s failed: %s", self.names[local], error)
        self._hand_over(local, due, began, tries, delay)

    def _lost(self, item: Tuple[int, float, float], error: StatusError) -> None:
        """A pipelined renewal that got no answer (wire.Channel's on_failure): a failed try."""
        local, due, began = item
        if not self._running:
            return  # stopping: the channel closed under it
        self.renew_failures += 1
        log.debug("fleet: renewing the lease of %s failed: %s", self.names[local], error)
        self._hand_over(local, due, began, 1, 0.0)

    def _hand_over(self, local: int, due: float, began: float, tries: int, delay: float) -> None:
        if not self._running:
            return
        self._retry.append((local, due, began, tries, delay))
        self._wake_workers()

    async def _renew(self, local: int, due: float, began: float = -1.0, tries: int = 0) -> None:
        clock = self.clock
        if self.fault[local] == FAULT_STOP:
            self.schedule(local, KIND_LEASE, clock.monotonic() + self._interval(local))
            return
        name = self.names[local]
        if began < 0:
            began = clock.monotonic()
        for _ in range(tries, MAX_UPDATE_RETRIES):
            try:
                rv = self.lease_rv[local]
                if not rv:
                    rv = await self._ensure_lease(local)
                    if not rv:
                        continue
                answer = await self.transport.update(LEASES, LEASE_NAMESPACE, name,
                                                     self.lease_body(local, clock.time(), rv))
            except ConflictError:
                self.renew_conflicts += 1
                self.lease_rv[local] = b""  # re-read before the next try
                continue
            except NotFoundError:
                self.lease_rv[local] = b""  # deleted under us: ensure creates it again
                continue
            except StatusError as exc:  # includes unreachable servers and timeouts
                self.renew_failures += 1
                log.debug("fleet: renewing the lease of %s failed: %s", name, exc)
                continue
            self.lease_rv[local] = resource_version(answer)
            ended = clock.monotonic()
            self._observe(ended - began, ended - due)
            break
        else:
            log.info("fleet: lease of %s not renewed after %d tries", name, MAX_UPDATE_RETRIES)
        self.schedule(local, KIND_LEASE, clock.monotonic() + self._interval(local))

    async def _ensure_lease(self, local: int) -> bytes:
        """The Lease's current resourceVersion, creating the Lease when it is missing (b"" on failure)."""
        name = self.names[local]
        try:
            body = await self.transport.get(LEASES, LEASE_NAMESPACE, name)
        except NotFoundError:
            try:
                body = await self.transport.create(LEASES, LEASE_NAMESPACE, self.new_lease(local, self.clock.time()))
                self.lease_creates += 1
            except StatusError as exc:  # AlreadyExists (a race) included: the next try reads it
                log.debug("fleet: creating the lease of %s failed: %s", name, exc)
                self.renew_failures += 1
                return b""
        except StatusError as exc:
            self.renew_failures += 1
            log.debug("fleet: reading the lease of %s failed: %s", name, exc)
            return b""
        rv = resource_version(body)
        self.lease_rv[local] = rv
        return rv

    def _observe(self, took: float, late: float) -> None:
        self.renewals += 1
        self.renew_seconds_sum += took
        self.renew_buckets[bisect.bisect_left(RENEW_BUCKETS, took)] += 1
        self.lateness[self.lateness_count & (LATENESS_SAMPLES - 1)] = late
        if late < 0.0:
            late = 0.0
        self.lateness_buckets[bisect.bisect_left(LATENESS_BUCKETS, late)] += 1
        self.lateness_seconds_sum += late
        self.lateness_count += 1

    def lateness_percentile(self, q: float) -> float:
        """The q-quantile (0..1) of the lateness of the latest renewals (completion minus due time)."""
        n = min(self.lateness_count, LATENESS_SAMPLES)
        if not n:
            return 0.0
        values = sorted(self.lateness[:n])
        return max(0.0, values[min(n - 1, int(q * n))])

    # -- one status report -------------------------------------------------------------------------

    async def _report(self, local: int) -> None:
        clock = self.clock
        fault = self.fault[local]
        frequency = self.config.node_status_report_frequency
        next_due = clock.monotonic() + frequency * (1.0 + STATUS_JITTER * self.rng())
        if fault == FAULT_STOP:
            self.schedule(local, KIND_STATUS, next_due)
            return
        ready = fault != FAULT_NOT_READY
        body = NodeFactory.heartbeat_patch(clock.time(), ready, transition=ready != bool(self.posted_ready[local]))
        try:
            await self.transport.patch(NODES, None, self.names[local], _STRATEGIC, body, "status")
        except StatusError as exc:
            self.status_failures += 1
            log.debug("fleet: status of %s not reported: %s", self.names[local], exc)
            # Retry soon, as kubelet retries nodeStatusUpdateRetry times within its 10 s loop.
            next_due = clock.monotonic() + min(10.0, frequency)
        else:
            self.status_reports += 1
            self.posted_ready[local] = ready
        self.schedule(local, KIND_STATUS, next_due)

    def nodes_by_state(self) -> "dict[str, int]":
        counts = collections.Counter(self.fault)
        return {"ready": counts.get(FAULT_NONE, 0), "slow-heartbeat": counts.get(FAULT_SLOW, 0),
                "not-ready": counts.get(FAULT_NOT_READY, 0), "stopped": counts.get(FAULT_STOP, 0)}
