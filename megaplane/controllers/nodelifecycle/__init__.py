"""megaplane.controllers.nodelifecycle: kube-controller-manager's node-lifecycle-controller (upstream 1.32).

Owns node health (probe times from Leases and Ready heartbeats, conditions
set Unknown past the grace period, pods marked not Ready), the NoExecute
not-ready/unreachable taints with per-zone rate limits and the zone states,
the NoSchedule taints of node conditions, and the rule that the control
plane's own outage is never held against a node (`sight`).

Modules: `controller` (the component), `zones` (zone states, token
buckets, the rate-limited tainting queue), `sight` (blindness detection
and the rule), `reflector` (a lean list-watch into msgspec records),
`records` (the fields read of Nodes and Leases).
"""

from .controller import NodeLifecycleConfig, NodeLifecycleController
from .sight import Sight
from .zones import RateLimitedTimedQueue, TokenBucket, ZoneRates, compute_zone_state

__all__ = ["NodeLifecycleConfig", "NodeLifecycleController", "RateLimitedTimedQueue", "Sight", "TokenBucket",
           "ZoneRates", "compute_zone_state"]
