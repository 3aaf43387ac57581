"""Whether the controller can see the cluster right now, and since when: the control plane's outage is never the nodes' fault.

Upstream's node lifecycle controller trusts its informers: a node whose
Lease it has not seen renewed for the grace period is marked Unknown,
tainted and, after the pods' tolerations, emptied. When the API server
itself stalls (a SIGSTOP, a long GC pause, congestion), or the controller
does (its own process stopped, its watches broken), every node looks dead
at once, and the first writes after the recovery mark healthy nodes
NotReady and evict their pods (kubernetes/kubernetes #6228, #24200, #32510,
#85221, #125824).

THE RULE (enforced by `NodeLifecycleController` through this class): the
time the controller was blind does not count against any node. A node is
judged stale only against `since`, the moment the controller last regained
sight: its effective probe time is max(its own probe time, `since`), so
every node gets a fresh grace period when the controller sees again; and
while the controller is blind (`seeing()` is False) it writes nothing that
would hurt a node (no Unknown condition, no NoExecute taint, and decisions
queued before `since` are dropped and made again from fresh data).

How blindness is detected, with the controller's own clock:

- A canary. Every `probe_interval` the controller writes its own Lease and
  waits for the write to come back through its Lease watch, the same path
  (write -> store -> watch cache -> watch -> this process) a kubelet's
  renewal takes. A confirmation proves the pipeline worked at the write's
  send time. No confirmation for `threshold` seconds (the API server does
  not answer, answers slowly, its watch fan-out is stuck, or this process
  was not running) is blindness, whatever the cause.
- Broken watches: while a reflector is failing or relisting it reports
  itself broken; confirmations do not count until it is back.
- Stalls of the controller itself: a monitor pass that starts more than
  `threshold` after it was due restarts sight (the canary would show it
  too, this is faster).
- Late renewals: when most of the Lease renewals seen in a monitor period
  were written (their renewTime) long before they arrived, the API server
  was congested and the renewals still on their way are as late: sight
  restarts. One late node cannot trigger this (a majority of the period's
  renewals must be late), so a kubelet with a skewed clock does not.

A blind spot shorter than `threshold` (a scheduling hiccup on a busy
machine) is not blindness: sight restarts only after a real gap, so a
noisy machine cannot postpone the detection of dead nodes forever.
"""

from __future__ import annotations

import logging
import math
from typing import Dict, Set, Union

from megaplane.runtime import REAL_CLOCK, Clock

__all__ = ["Sight"]

log = logging.getLogger("megaplane.controllers.nodelifecycle")


class Sight:
    """The controller's view of its own ability to observe (see the module docstring for the rule)."""

    def __init__(self, threshold: float, *, clock: Clock = REAL_CLOCK) -> None:
        self.threshold = threshold
        self.clock = clock
        #: When sight was last (re)gained: the floor of every node's probe time.
        self.since = clock.monotonic()
        #: Send time of the latest confirmed canary (-inf: never, so blind until the first).
        self.confirmed = -math.inf
        self.broken: Set[str] = set()
        self.restarts: Dict[str, int] = {}
        self.blind_seconds = 0.0
        self._blind_from = self.since

    def seeing(self, now: float) -> bool:
        """True while nothing is broken and the latest confirmation is at most `threshold` old."""
        return not self.broken and now - self.confirmed <= self.threshold

    def confirm(self, sent: float) -> None:
        """The canary written at `sent` came back through the watch."""
        if self.broken:
            return  # another watch is down: the data is not whole yet
        now = self.clock.monotonic()
        if not self.seeing(now):
            self.blind_seconds += max(0.0, now - max(self._blind_from, self.confirmed))
            self.restart("blind" if self.confirmed > -math.inf else "start", now)
        self.confirmed = max(self.confirmed, sent)

    def restart(self, reason: str, now: Union[float, None] = None) -> None:
        """Sight is (re)gained now: every node's grace period starts again from here."""
        at = self.clock.monotonic() if now is None else now
        self.since = max(self.since, at)
        self.restarts[reason] = self.restarts.get(reason, 0) + 1
        if reason != "start":
            log.warning("node-lifecycle-controller: could not observe the cluster (%s); every node's grace period "
                        "restarts now", reason)

    def break_(self, what: str) -> None:
        """A watch of `what` failed: blind until it is back and a canary confirms."""
        if not self.broken:
            self._blind_from = self.clock.monotonic()
        self.broken.add(what)
        self.confirmed = min(self.confirmed, self.clock.monotonic() - self.threshold - 1.0)

    def mend(self, what: str) -> None:
        self.broken.discard(what)
