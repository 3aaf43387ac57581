"""One priority level's seats and queues: shuffle sharding and fair queuing, as upstream's queueset.

Seats: a request takes `width` seats (1, or more for a large LIST) from dispatch until its seats are
released. A level never runs more than `limit` seats at once. What a seat measures in a
single-threaded server is explained in `controller`; this module only counts.

Queues (k8s.io/apiserver pkg/util/flowcontrol/fairqueuing/queueset): a flow (a schema and its
distinguisher, e.g. one user) is dealt a hand of `hand_size` of the level's `queues` by its hash
(shuffle sharding, so two heavy flows rarely share all their queues); the request joins the hand's
shortest queue, or is rejected ("queue-full") when that queue already holds `queue_length_limit`
requests. Freed seats go to the queue whose virtual finish time is least (start-time fair queuing:
each dispatch advances its queue by the request's width), so every active flow gets an equal share of
the level whatever its request rate. Worked example: flows A (100 waiting) and B (1 waiting) in
different queues, 1 seat: A@0 is dispatched (A's finish 1), then B@0 (B's finish 1; B is empty
now), then A, A, ... B's single request waited for one of A's, not for all 100.

A level with no queues (catch-all: LimitResponse Reject) rejects ("concurrency-limit") instead.
Waiting requests hold their deadline; `expire` answers those past it ("time-out").
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from typing import Any, Deque, List, Optional, Tuple

from megaplane.apiserver.flowcontrol.bootstrap import PriorityLevel

__all__ = ["QueueSet", "Waiter", "deal"]


class Waiter:
    """One queued request: granted its seats when `future` completes (True), refused when it raises."""

    __slots__ = ("future", "width", "deadline", "enqueued", "queue", "route")

    def __init__(self, future: "asyncio.Future[bool]", width: int, deadline: float, enqueued: float,
                 route: Any) -> None:
        self.future = future
        self.width = width
        self.deadline = deadline
        self.enqueued = enqueued
        self.queue: Optional[_Queue] = None
        self.route = route


class _Queue:
    __slots__ = ("index", "waiting", "waiting_seats", "finish", "in_heap")

    def __init__(self, index: int) -> None:
        self.index = index
        self.waiting: Deque[Waiter] = deque()
        self.waiting_seats = 0
        self.finish = 0.0  # virtual finish time of the last request dispatched from it
        self.in_heap = False


def deal(hash_value: int, deck: int, hand: int) -> List[int]:
    """`hand` distinct card indices out of `deck`, chosen by `hash_value` (upstream's shufflesharding.Dealer).

    Each card is the hash's next mixed-radix digit (radix deck, deck-1, ...), shifted past the cards
    already dealt, so every hand is equally likely for a uniformly distributed hash.
    """
    cards: List[int] = []
    for i in range(hand):
        hash_value, digit = divmod(hash_value, deck - i)
        for c in sorted(cards):
            if digit >= c:
                digit += 1
        cards.append(digit)
    return cards


class QueueSet:
    """The seats and queues of one limited priority level."""

    __slots__ = ("level", "limit", "in_use", "waiting", "queues", "_heap", "_virtual", "_seq")

    def __init__(self, level: PriorityLevel, limit: int) -> None:
        self.level = level
        #: Seats this level may run at once (its nominal concurrency limit).
        self.limit = max(limit, 1)
        #: Seats held by dispatched requests.
        self.in_use = 0
        #: Requests waiting in all queues.
        self.waiting = 0
        self.queues = [_Queue(i) for i in range(level.queues)]
        self._heap: List[Tuple[float, int, _Queue]] = []  # non-empty queues by virtual finish time
        self._virtual = 0.0
        self._seq = 0

    def clamp(self, width: int) -> int:
        """A request never needs more seats than the level has (upstream clamps the same way)."""
        return width if width <= self.limit else self.limit

    def try_acquire_nowait(self, width: int) -> bool:
        """Take `width` seats at once if nobody is waiting and they are free (the uncontended path)."""
        if self.waiting or self.in_use + width > self.limit:
            return False
        self.in_use += width
        return True

    def enqueue(self, flow_hash: int, waiter: Waiter) -> Optional[str]:
        """Queue `waiter` in its flow's shortest queue; the rejection reason if it cannot wait."""
        if not self.queues:
            return "concurrency-limit"
        level = self.level
        best: Optional[_Queue] = None
        if level.hand_size >= len(self.queues):
            candidates = self.queues
        else:
            candidates = [self.queues[i] for i in deal(flow_hash, len(self.queues), level.hand_size)]
        for q in candidates:
            if best is None or q.waiting_seats < best.waiting_seats:
                best = q
        assert best is not None
        if len(best.waiting) >= level.queue_length_limit:
            return "queue-full"
        best.waiting.append(waiter)
        best.waiting_seats += waiter.width
        waiter.queue = best
        self.waiting += 1
        if not best.in_heap:
            best.in_heap = True
            if best.finish < self._virtual:
                best.finish = self._virtual  # an idle queue does not bank credit while idle
            self._seq += 1
            heapq.heappush(self._heap, (best.finish, self._seq, best))
        return None

    def release(self, width: int) -> None:
        self.in_use -= width

    def dispatch(self) -> List[Waiter]:
        """Grant free seats to waiting requests in fair order; the waiters granted (their futures set)."""
        granted: List[Waiter] = []
        heap = self._heap
        while heap:
            _, _, q = heap[0]
            if not q.waiting:
                heapq.heappop(heap)
                q.in_heap = False
                continue
            w = q.waiting[0]
            if self.in_use + w.width > self.limit:
                break
            heapq.heappop(heap)
            q.waiting.popleft()
            q.waiting_seats -= w.width
            self.waiting -= 1
            self.in_use += w.width
            start = q.finish if q.finish > self._virtual else self._virtual
            self._virtual = start
            q.finish = start + w.width
            if q.waiting:
                self._seq += 1
                heapq.heappush(heap, (q.finish, self._seq, q))
            else:
                q.in_heap = False
            w.queue = None
            if not w.future.done():
                w.future.set_result(True)
            granted.append(w)
        return granted

    def expire(self, now: float) -> List[Waiter]:
        """Remove the waiters whose deadline has passed (the caller answers them); each queue's head first."""
        expired: List[Waiter] = []
        if not self.waiting:
            return expired
        for q in self.queues:
            waiting = q.waiting
            while waiting and waiting[0].deadline <= now:
                w = waiting.popleft()
                q.waiting_seats -= w.width
                self.waiting -= 1
                w.queue = None
                expired.append(w)
        return expired
