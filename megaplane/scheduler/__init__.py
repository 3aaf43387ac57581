"""megaplane.scheduler: kube-scheduler's default profile, vectorised over a numpy node table.

Owns `megaplane scheduler` and the scheduler inside `megaplane up`:
quantities (`quantity`), label selectors (`labels`), what a pod asks for
(`podspec`), the cluster as columns (`nodetable`) with which placed pods
match what per node (`podindex`) and the other objects plugins read
(`objects`), the default filter and score plugins (`plugins`,
`topologyspread`, `interpodaffinity`, in order and weighted by
`profile`; `--config` files read by `config`), one cycle's algorithm (`algorithm`), preemption
(`preemption`), the scheduling queue (`queue`), events (`events`),
metrics (`metrics`, served with /healthz and /readyz by
`megaplane.serving`) and the component tying them together
(`scheduler`). With `--shards N` (`shards`) the component coordinates N
shard processes (`shard`), each filtering and scoring its slice of a
replica of the coordinator's table (`replica`), whose score parts are
finished over all shards' candidates (`scoreparts`).

Built only on megaplane.client (a Client over HTTP, or the loopback
transport inside `megaplane up`): it must not import megaplane.apiserver,
megaplane.storage, megaplane.store or megaplane.etcd, so it schedules for
any Kubernetes API server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Union

from .algorithm import Algorithm, FitError, NoNodesAvailableError, num_feasible_nodes_to_find
from .nodetable import NodeTable
from .podspec import PodSpecInfo, parse_pod
from .profile import Profile
from .queue import SchedulingQueue
from .scheduler import DEFAULT_SCHEDULER_NAME, Scheduler
from .tenants import TenantPartition

if TYPE_CHECKING:
    from megaplane.client.leaderelection import LeaderElectionConfig

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
        port: int = 0, profiles: Sequence[Union[str, Profile]] = (DEFAULT_SCHEDULER_NAME,),
        percentage_of_nodes_to_score: int = 0, max_connections: int = 8,
        leader_election: Optional["LeaderElectionConfig"] = None, pod_initial_backoff: float = 1.0,
        pod_max_backoff: float = 10.0, partition: Optional["TenantPartition"] = None,
        worker_argv: Optional[Sequence[str]] = None, shards: int = 1) -> None:
    """`megaplane scheduler`: schedule over HTTP until SIGINT / SIGTERM.

    `profiles` are schedulerNames (the default plugins) or `Profile`s of a `--config` file.

    With `leader_election` (the CLI's default, lease kube-system/kube-scheduler) the scheduler starts
    only once this process leads and binds through a client that refuses writes once it no longer
    does; losing the lease exits the process with status 1 ("leaderelection lost"), as kube-scheduler.
    With `partition` (--tenant-label) this process schedules its share of the tenants' pods; `worker_argv`
    (the parent of --tenant-workers N: its own command line) also runs workers 1..N-1 while it leads.
    With `shards` > 1 (--shards) this process coordinates that many shard processes, started while it leads
    (`shards`).
    """
    from megaplane.client import Client
    from megaplane.client.component import ClientComponent
    from megaplane.client.leaderelection import (
        LeaderElected,
        LeaderElectionMetrics,
        LeaderElector,
        exit_when_lost,
        leader_only_client,
    )
    from megaplane.runtime import run_forever
    from megaplane.serving import EndpointServer, HealthCheck

    holder: List[Any] = []

    def say(line: str) -> None:
        print(f"megaplane scheduler: {line}", flush=True)

    def make_scheduler(scheduler_client: Any) -> Scheduler:
        kwargs: Dict[str, Any] = dict(profiles=profiles, percentage_of_nodes_to_score=percentage_of_nodes_to_score,
                                      pod_initial_backoff=pod_initial_backoff, pod_max_backoff=pod_max_backoff,
                                      partition=partition)
        if shards > 1:
            from .shards import ShardedScheduler

            return ShardedScheduler(scheduler_client, shards=shards, announce=say, **kwargs)
        return Scheduler(scheduler_client, **kwargs)

    def build() -> List[Any]:
        client = Client.from_kubeconfig(kubeconfig, context or None, qps=qps, burst=burst,
                                        max_connections=max_connections)
        parts: List[Any] = [ClientComponent(client)]
        collectors: List[Any] = []
        checks: Dict[str, HealthCheck] = {}
        workers: List[Any] = []
        if worker_argv is not None and partition is not None and partition.workers > 1:
            from .workers import TenantWorkers

            workers.append(TenantWorkers(worker_argv, partition.workers, announce=say))
        if leader_election is None:
            scheduler = make_scheduler(client)
            parts.append(scheduler)
            parts.extend(workers)
            ready = scheduler.ready
        else:
            # Its own client (as upstream's "leader-election" one): renewals never queue behind bindings.
            election_client = Client.from_kubeconfig(kubeconfig, context or None, qps=qps, burst=burst,
                                                     max_connections=2)
            parts.append(ClientComponent(election_client, name="leader-election-client"))
            elector = LeaderElector(election_client, leader_election)
            scheduler = make_scheduler(leader_only_client(client, elector))
            led: List[Any] = [scheduler, *workers]
            elected = LeaderElected(elector, lambda: led, name="scheduler-election", on_lost=exit_when_lost,
                                    announce=say)
            parts.append(elected)
            collectors.append(LeaderElectionMetrics([elector]))
            checks["leaderElection"] = elector.check
            ready = elected.ready
        holder.append(scheduler)
        if port:
            parts.append(EndpointServer(bind_address or "0.0.0.0", port, [scheduler.metrics, *collectors], ready,
                                        checks, name="scheduler-endpoints"))
        return parts

    def started() -> None:
        where = f"; /healthz and /metrics on http://{bind_address or '0.0.0.0'}:{port}" if port else ""
        election = (f"leader election on lease {leader_election.describe()} as {leader_election.identity}"
                    if leader_election is not None else "no leader election")
        if partition is not None:
            election += (f"; tenant worker {partition.index} of {partition.workers} by label {partition.label}")
        if shards > 1:
            election += f"; {shards} shards"

        say(f"scheduling pods of {', '.join(holder[0].profiles)} ({holder[0].table.count} nodes known){where}; {election}")

    run_forever(build, on_started=started)
