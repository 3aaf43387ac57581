"""megaplane.bench: clusterloader2's role for megaplane, and the operations kit's checks.

Owns `megaplane bench` (scenarios leases, density, load, stall and
zone-outage over the components started as separate processes or an
attached cluster; SLIs under clusterloader2's measurement names; a
results.json and a self-contained report.html) and `megaplane doctor`
(a running cluster checked against the seeds' checklist).

Modules: `procfs` (CPU, RSS, run-queue wait from /proc; shared with
benchmarks/), `promtext` (Prometheus text parsing, histogram deltas and
quantiles), `cluster` (the component processes), `tracking` (lean
list+watch counters of nodes and pods), `recorder` (time series),
`slis` (the measurements and SLOs), `runner` (the scenarios), `report`,
`config` and `flags`, `doctor`.

A component like the fleet: it reaches the API only through
megaplane.client (and the components through their processes and
/metrics), never the API server's, store's or components' internals
(`.importlinter`: bench-uses-the-client).
"""

from .config import SCENARIOS, BenchConfig
from .runner import run

__all__ = ["BenchConfig", "SCENARIOS", "run"]
