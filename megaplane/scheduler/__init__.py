"""megaplane.scheduler: kube-scheduler's default profile, vectorised over a numpy node table.

Owns `megaplane scheduler` and the scheduler inside `megaplane up`:
quantities (`quantity`), what a pod asks for (`podspec`), the cluster as
columns (`nodetable`), the default filter and score plugins
(`plugins`), one cycle's algorithm (`algorithm`), the scheduling queue
(`queue`), events (`events`), metrics (`metrics`, served with
/healthz and /readyz by `megaplane.serving`) and the component tying
them together (`scheduler`).

Built only on megaplane.client (a Client over HTTP, or the loopback
transport inside `megaplane up`): it must not import megaplane.apiserver,
megaplane.storage, megaplane.store or megaplane.etcd, so it schedules for
any Kubernetes API server.
"""

from __future__ import annotations

from typing import Any, List, Sequence

from .algorithm import Algorithm, FitError, NoNodesAvailableError, num_feasible_nodes_to_find
from .nodetable import NodeTable
from .podspec import PodSpecInfo, parse_pod
from .queue import SchedulingQueue
from .scheduler import DEFAULT_SCHEDULER_NAME, Scheduler

__all__ = [
    "Algorithm",
    "DEFAULT_SCHEDULER_NAME",
    "FitError",
    "NoNodesAvailableError",
    "NodeTable",
    "PodSpecInfo",
    "Scheduler",
    "SchedulingQueue",
    "num_feasible_nodes_to_find",
    "parse_pod",
    "run",
]


def run(kubeconfig: str, context: str = "", *, qps: float = 50.0, burst: int = 100, bind_address: str = "",
        port: int = 0, profiles: Sequence[str] = (DEFAULT_SCHEDULER_NAME,), percentage_of_nodes_to_score: int = 0,
        max_connections: int = 8) -> None:
    """`megaplane scheduler`: schedule over HTTP until SIGINT / SIGTERM."""
    from megaplane.client import Client
    from megaplane.client.component import ClientComponent
    from megaplane.runtime import run_forever
    from megaplane.serving import EndpointServer

    holder: List[Any] = []

    def build() -> List[Any]:
        client = Client.from_kubeconfig(kubeconfig, context or None, qps=qps, burst=burst,
                                        max_connections=max_connections)
        scheduler = Scheduler(client, profiles=profiles, percentage_of_nodes_to_score=percentage_of_nodes_to_score)
        holder.append(scheduler)
        parts: List[Any] = [ClientComponent(client), scheduler]
        if port:
            parts.append(EndpointServer(bind_address or "0.0.0.0", port, [scheduler.metrics], scheduler.ready,
                                        name="scheduler-endpoints"))
        return parts

    def started() -> None:
        where = f"; /healthz and /metrics on http://{bind_address or '0.0.0.0'}:{port}" if port else ""
        print(f"megaplane scheduler: scheduling pods of {', '.join(profiles)} "
              f"({holder[0].table.count} nodes known){where}; no leader election", flush=True)

    run_forever(build, on_started=started)
