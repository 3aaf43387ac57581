"""Zone health and the per-zone rate limits of NoExecute tainting (upstream's ComputeZoneState and RateLimitedTimedQueue).

A zone is `Normal`, `PartialDisruption` (more than 2 nodes not Ready and
at least `--unhealthy-zone-threshold` of them) or `FullDisruption` (no
Ready node). Each zone has its own queue of nodes waiting for a NoExecute
taint, drained through a token bucket of burst 1 at a rate that depends on
the zone's state: `--node-eviction-rate` when Normal or FullDisruption,
`--secondary-node-eviction-rate` when PartialDisruption in a zone of more
than `--large-cluster-size-threshold` nodes, and 0 (nothing is tainted) in
a smaller partially disrupted zone. When every zone is fully disrupted the
controller assumes the control plane is the problem: every rate is 0.
"""

from __future__ import annotations

import heapq
from typing import Awaitable, Callable, Dict, List, Optional, Set, Tuple

from megaplane.runtime import REAL_CLOCK, Clock

__all__ = [
    "EVICTION_BURST",
    "FULL_DISRUPTION",
    "INITIAL",
    "NORMAL",
    "PARTIAL_DISRUPTION",
    "RateLimitedTimedQueue",
    "TokenBucket",
    "ZoneRates",
    "compute_zone_state",
    "zone_key",
]

INITIAL, NORMAL, FULL_DISRUPTION, PARTIAL_DISRUPTION = "Initial", "Normal", "FullDisruption", "PartialDisruption"
#: Upstream's EvictionRateLimiterBurst.
EVICTION_BURST = 1

REGION_LABEL, ZONE_LABEL = "topology.kubernetes.io/region", "topology.kubernetes.io/zone"
BETA_REGION_LABEL, BETA_ZONE_LABEL = "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone"


def zone_key(labels: Dict[str, str]) -> str:
    """nodetopology.GetZoneKey: "region:\\x00:zone", "" when the node names neither."""
    region = labels.get(REGION_LABEL) or labels.get(BETA_REGION_LABEL) or ""
    zone = labels.get(ZONE_LABEL) or labels.get(BETA_ZONE_LABEL) or ""
    if not region and not zone:
        return ""
    return f"{region}:\x00:{zone}"


def compute_zone_state(ready: int, not_ready: int, unhealthy_threshold: float) -> str:
    """ComputeZoneState over a zone's counted nodes (Ready True vs anything else, absent conditions included)."""
    if ready == 0 and not_ready > 0:
        return FULL_DISRUPTION
    if not_ready > 2 and not_ready / (not_ready + ready) >= unhealthy_threshold:
        return PARTIAL_DISRUPTION
    return NORMAL


class ZoneRates:
    """The tainting rate of a zone in a state (HealthyQPSFunc / ReducedQPSFunc)."""

    def __init__(self, eviction_rate: float, secondary_rate: float, large_cluster_threshold: int) -> None:
        self.eviction_rate = eviction_rate
        self.secondary_rate = secondary_rate
        self.large_cluster_threshold = large_cluster_threshold

    def rate(self, state: str, zone_size: int) -> float:
        if state == PARTIAL_DISRUPTION:
            return self.secondary_rate if zone_size > self.large_cluster_threshold else 0.0
        return self.eviction_rate


class TokenBucket:
    """flowcontrol.NewTokenBucketRateLimiter's TryAccept: `qps` tokens a second, at most `burst` saved.

    qps <= 0 is the never-accepting limiter (NewFakeNeverRateLimiter).
    """

    def __init__(self, qps: float, burst: int = EVICTION_BURST, *, clock: Clock = REAL_CLOCK) -> None:
        self.qps = qps
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._last = clock.monotonic()

    def try_accept(self) -> bool:
        if self.qps <= 0:
            return False
        now = self.clock.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimitedTimedQueue:
    """Nodes waiting for a NoExecute taint in one zone: unique, ordered by when to process, rate limited.

    As upstream's UniqueQueue + RateLimitedTimedQueue: `add` refuses a node
    already in the set; a node processed successfully leaves the queue but
    stays in the set (so it is not queued again) until `remove`; a failed
    attempt is retried after the action's delay. `added_at` of each entry is
    kept so stale decisions can be dropped (`drop_added_before`).
    """

    def __init__(self, qps: float, *, clock: Clock = REAL_CLOCK) -> None:
        self.clock = clock
        self.limiter = TokenBucket(qps, clock=clock)
        self._heap: List[Tuple[float, int, str]] = []
        self._entries: Dict[str, Tuple[float, int, float]] = {}  # name -> (process_at, seq, added_at)
        self._set: Set[str] = set()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._set

    def waiting(self, name: str) -> bool:
        """In the queue proper (not only in the set, as a node already processed is)."""
        return name in self._entries

    @property
    def qps(self) -> float:
        return self.limiter.qps

    def swap_limiter(self, qps: float) -> None:
        """SwapLimiter: a new bucket at `qps`; drained when the old one had no token (burst 1)."""
        if self.limiter.qps == qps:
            return
        old = self.limiter
        new = TokenBucket(qps, clock=self.clock)
        if qps > 0 and not old.try_accept():
            new.try_accept()
        self.limiter = new

    def add(self, name: str) -> bool:
        if name in self._set:
            return False
        now = self.clock.monotonic()
        self._seq += 1
        self._set.add(name)
        self._entries[name] = (now, self._seq, now)
        heapq.heappush(self._heap, (now, self._seq, name))
        return True

    def remove(self, name: str) -> bool:
        """Out of the queue and the set, so it may be added again; True if it was in the set."""
        self._entries.pop(name, None)
        if name in self._set:
            self._set.discard(name)
            return True
        return False

    def clear(self) -> None:
        self._heap.clear()
        self._entries.clear()
        self._set.clear()

    def drop_added_before(self, cutoff: float) -> int:
        """Forget queued decisions made before `cutoff` (they are made again from fresh data); how many."""
        stale = [n for n, (_, _, added) in self._entries.items() if added < cutoff]
        for name in stale:
            self.remove(name)
        return len(stale)

    def _head(self) -> Optional[Tuple[float, int, str]]:
        heap, entries = self._heap, self._entries
        while heap:
            at, seq, name = heap[0]
            entry = entries.get(name)
            if entry is not None and entry[1] == seq:
                return heap[0]
            heapq.heappop(heap)  # removed or replaced: lazy deletion
        return None

    async def try_(self, action: Callable[[str], Awaitable[Tuple[bool, float]]]) -> int:
        """Upstream's Try: while a token is available and the head is due, run `action(name)`.

        `action` returns (done, retry_after); done leaves the node in the set
        only. A token is spent per attempt, as upstream's loop spends it
        before looking at the head's time. The queue may change while an
        action awaits; an entry removed or re-added meanwhile is left as it
        now is. Returns the attempts made.
        """
        attempts = 0
        while True:
            head = self._head()
            if head is None or not self.limiter.try_accept():
                return attempts
            at, seq, name = head
            if self.clock.monotonic() < at:
                return attempts
            attempts += 1
            done, wait = await action(name)
            entry = self._entries.get(name)
            if entry is None or entry[1] != seq:
                continue
            if done:
                del self._entries[name]
            else:
                self._seq += 1
                process_at = self.clock.monotonic() + wait + 1e-9
                self._entries[name] = (process_at, self._seq, entry[2])
                heapq.heappush(self._heap, (process_at, self._seq, name))

    def queued(self) -> List[str]:
        entries = self._entries
        return [name for _, seq, name in sorted(self._heap) if name in entries and entries[name][1] == seq]
