"""Controller expectations: what a controller is still waiting to see from its own writes.

As upstream's ControllerExpectations / UIDTrackingControllerExpectations
(pkg/controller/controller_utils.go). A controller that creates N pods
records "N creates expected" before it sends them; each pod ADDED event
it observes lowers the count. Until the count reaches zero (or the record
is older than EXPECTATIONS_TIMEOUT, 5 minutes, for writes whose events
were lost), the controller does not act on its informer's view again, so a
view that does not yet show its own pods never makes it create them twice.
Deletes are tracked by pod key, so a delete observed twice (a DELETED event
after the pod's MODIFIED with a deletionTimestamp) lowers the count once.

Worked example, replicas 3 and no pods: sync -> expect 3 creates, send 3
creates; a second sync before the informer saw them sees 0 pods but the
expectations are not satisfied, so it creates nothing; three ADDED events
-> add reaches 0 -> satisfied; the next sync sees 3 pods and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional, Set

from megaplane.runtime import REAL_CLOCK, Clock

__all__ = ["ControllerExpectations", "EXPECTATIONS_TIMEOUT"]

#: Upstream's ExpectationsTimeout: after this, unmet expectations no longer hold a controller back.
EXPECTATIONS_TIMEOUT = 5 * 60.0


@dataclass
class _Expectation:
    add: int
    delete: int
    timestamp: float
    #: Keys of the pods whose deletion is expected (UIDTrackingControllerExpectations).
    deleting: Set[str] = field(default_factory=set)

    def fulfilled(self) -> bool:
        return self.add <= 0 and self.delete <= 0


class ControllerExpectations:
    """Expected creates and deletes per controller key (see the module docstring)."""

    def __init__(self, clock: Clock = REAL_CLOCK, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self.clock = clock
        self.timeout = timeout
        self._items: Dict[str, _Expectation] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Optional["tuple[int, int]"]:
        """(creates, deletes) still expected for `key`, or None when nothing is recorded."""
        exp = self._items.get(key)
        return None if exp is None else (exp.add, exp.delete)

    def satisfied(self, key: str) -> bool:
        """True when the controller may act on its view: nothing expected, all observed, or expired."""
        exp = self._items.get(key)
        if exp is None:
            return True  # a new controller, or one whose expectations were deleted
        if exp.fulfilled():
            return True
        return self.clock.monotonic() - exp.timestamp > self.timeout

    def expect_creations(self, key: str, count: int) -> None:
        """Replace the record for `key`: `count` creates expected (SetExpectations(key, count, 0))."""
        self._items[key] = _Expectation(count, 0, self.clock.monotonic())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        """Replace the record for `key`: the deletes of exactly these pods are expected."""
        keys = set(pod_keys)
        self._items[key] = _Expectation(0, len(keys), self.clock.monotonic(), keys)

    def expect(self, key: str, creations: int, pod_keys: Iterable[str]) -> None:
        """Replace the record for `key`: `creations` creates and the deletes of these pods, in one sync
        (SetExpectations(key, add, del) for a controller that does both at once, as the DaemonSet's)."""
        keys = set(pod_keys)
        self._items[key] = _Expectation(creations, len(keys), self.clock.monotonic(), keys)

    def creation_observed(self, key: str) -> None:
        """One expected create was seen (or will never happen: a create that failed or was skipped)."""
        exp = self._items.get(key)
        if exp is not None:
            exp.add -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        """The delete of `pod_key` was seen; counted once per pod, and only for pods we deleted."""
        exp = self._items.get(key)
        if exp is not None and pod_key in exp.deleting:
            exp.deleting.discard(pod_key)
            exp.delete -= 1

    def delete(self, key: str) -> None:
        """Forget `key` (its controller object is gone)."""
        self._items.pop(key, None)
