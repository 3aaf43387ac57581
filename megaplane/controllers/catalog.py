"""The controllers kube-controller-manager runs, by upstream name, with their flags.

One `ControllerSpec` per controller: its kube-controller-manager 1.32 name
(`deployment-controller`) and the older alias still accepted
(`deployment`), the flags it reads (`--concurrent-deployment-syncs`) and how
to build it from a `ControllerContext`. `megaplane up` and `megaplane
controller-manager` add every spec's flags, read `--controllers` with
upstream's syntax and build what was chosen, so a controller is wired by
adding its spec here and nowhere else.

Builders import their controller when called, so parsing flags does not
import every controller.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from megaplane.client import Client
from megaplane.client.cache import strip_managed_fields
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.runtime import REAL_CLOCK, Clock, Component

__all__ = [
    "CATALOG",
    "ControllerContext",
    "ControllerFlag",
    "ControllerSpec",
    "add_controller_flags",
    "build_controllers",
    "controller_options",
    "parse_controllers",
]


@dataclass(frozen=True)
class ControllerFlag:
    """One kube-controller-manager flag a controller reads (`dest` is argparse's name for it)."""

    flag: str
    type: Callable[[str], Any]
    default: Any
    help: str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass
class ControllerContext:
    """What a builder gets: the client every controller shares, the parsed flags, the clock."""

    client: Client
    options: Mapping[str, Any] = field(default_factory=dict)
    clock: Clock = REAL_CLOCK
    #: The informers every controller of the process shares (started before them, stopped after).
    informers: SharedInformerFactory = field(default_factory=SharedInformerFactory)

    def option(self, flag: ControllerFlag) -> Any:
        return self.options.get(flag.dest, flag.default)


@dataclass(frozen=True)
class ControllerSpec:
    name: str
    build: Callable[[ControllerContext], Component]
    aliases: Tuple[str, ...] = ()
    flags: Tuple[ControllerFlag, ...] = ()
    #: Part of '*' (upstream leaves e.g. bootstrap-signer-controller out of it).
    enabled_by_default: bool = True


def _syncs(flag: str, default: int, what: str) -> ControllerFlag:
    return ControllerFlag(flag, int, default, f"number of {what} synced concurrently ({default})")


CONCURRENT_NAMESPACE_SYNCS = _syncs("--concurrent-namespace-syncs", 10, "namespaces")
CONCURRENT_SERVICEACCOUNT_SYNCS = _syncs("--concurrent-serviceaccount-syncs", 1, "namespaces' default service accounts")
CONCURRENT_REPLICASET_SYNCS = _syncs("--concurrent-replicaset-syncs", 5, "replica sets")
CONCURRENT_DEPLOYMENT_SYNCS = _syncs("--concurrent-deployment-syncs", 5, "deployments")
CONCURRENT_ENDPOINT_SYNCS = _syncs("--concurrent-endpoint-syncs", 5, "services' endpoints")
CONCURRENT_SERVICE_ENDPOINT_SYNCS = _syncs("--concurrent-service-endpoint-syncs", 5, "services' endpoint slices")
MAX_ENDPOINTS_PER_SLICE = ControllerFlag("--max-endpoints-per-slice", int, 100,
                                         "the most endpoints in one EndpointSlice (100)")
CONCURRENT_DAEMONSET_SYNCS = _syncs("--concurrent-daemonset-syncs", 2, "daemon sets")
CONCURRENT_STATEFULSET_SYNCS = _syncs("--concurrent-statefulset-syncs", 5, "stateful sets")
CONCURRENT_GC_SYNCS = _syncs("--concurrent-gc-syncs", 20, "garbage collector workers")
CONCURRENT_JOB_SYNCS = _syncs("--concurrent-job-syncs", 5, "jobs")
CONCURRENT_TTL_AFTER_FINISHED_SYNCS = _syncs("--concurrent-ttl-after-finished-syncs", 5,
                                             "ttl-after-finished-controller workers")
CONCURRENT_CRON_JOB_SYNCS = _syncs("--concurrent-cron-job-syncs", 5, "cron jobs")


def _namespace(ctx: ControllerContext) -> Component:
    from .namespace import NamespaceController

    return NamespaceController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_NAMESPACE_SYNCS), clock=ctx.clock)


def _serviceaccount(ctx: ControllerContext) -> Component:
    from .serviceaccount import ServiceAccountController

    return ServiceAccountController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_SERVICEACCOUNT_SYNCS), clock=ctx.clock)


def _replicaset(ctx: ControllerContext) -> Component:
    from .replicaset import ReplicaSetController

    return ReplicaSetController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_REPLICASET_SYNCS), clock=ctx.clock)


def _deployment(ctx: ControllerContext) -> Component:
    from .deployment import DeploymentController

    return DeploymentController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_DEPLOYMENT_SYNCS), clock=ctx.clock)


def _endpoint(ctx: ControllerContext) -> Component:
    from .endpoints import EndpointsController

    return EndpointsController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_ENDPOINT_SYNCS), clock=ctx.clock)


def _endpointslice(ctx: ControllerContext) -> Component:
    from .endpointslice import EndpointSliceController

    return EndpointSliceController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_SERVICE_ENDPOINT_SYNCS), clock=ctx.clock,
                                   max_endpoints_per_slice=ctx.option(MAX_ENDPOINTS_PER_SLICE))


def _daemonset(ctx: ControllerContext) -> Component:
    from .daemonset import DaemonSetController

    return DaemonSetController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_DAEMONSET_SYNCS), clock=ctx.clock)


def _statefulset(ctx: ControllerContext) -> Component:
    from .statefulset import StatefulSetController

    return StatefulSetController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_STATEFULSET_SYNCS), clock=ctx.clock)


def _garbagecollector(ctx: ControllerContext) -> Component:
    from .garbagecollector import GarbageCollector

    return GarbageCollector(ctx.client, workers=ctx.option(CONCURRENT_GC_SYNCS), clock=ctx.clock)


def _disruption(ctx: ControllerContext) -> Component:
    from .disruption import DisruptionController

    return DisruptionController(ctx.client, informers=ctx.informers, clock=ctx.clock)


def _duration(text: str) -> float:
    from megaplane.units import parse_duration

    return float(parse_duration(text))


NODE_MONITOR_PERIOD = ControllerFlag("--node-monitor-period", _duration, 5.0,
                                     "how often node health is checked (5s)")
NODE_MONITOR_GRACE_PERIOD = ControllerFlag("--node-monitor-grace-period", _duration, 50.0,
                                           "how long a node may go unseen before it is marked Unknown (50s)")
NODE_STARTUP_GRACE_PERIOD = ControllerFlag("--node-startup-grace-period", _duration, 60.0,
                                           "how long a starting node may go without posting Ready (1m0s)")
NODE_EVICTION_RATE = ControllerFlag("--node-eviction-rate", float, 0.1,
                                    "nodes per second tainted NoExecute in a healthy zone (0.1)")
SECONDARY_NODE_EVICTION_RATE = ControllerFlag("--secondary-node-eviction-rate", float, 0.01,
                                              "nodes per second tainted in a partially disrupted large zone (0.01)")
UNHEALTHY_ZONE_THRESHOLD = ControllerFlag("--unhealthy-zone-threshold", float, 0.55,
                                          "fraction of not-Ready nodes (at least 3) that makes a zone unhealthy (0.55)")
LARGE_CLUSTER_SIZE_THRESHOLD = ControllerFlag("--large-cluster-size-threshold", int, 50,
                                              "zones larger than this keep the secondary rate when unhealthy (50)")
TERMINATED_POD_GC_THRESHOLD = ControllerFlag("--terminated-pod-gc-threshold", int, 12500,
                                             "terminated pods kept before the oldest are deleted (12500; <= 0: off)")


def _nodelifecycle(ctx: ControllerContext) -> Component:
    from .nodelifecycle import NodeLifecycleConfig, NodeLifecycleController

    return NodeLifecycleController(ctx.client, informers=ctx.informers, config=NodeLifecycleConfig(
        node_monitor_period=ctx.option(NODE_MONITOR_PERIOD),
        node_monitor_grace_period=ctx.option(NODE_MONITOR_GRACE_PERIOD),
        node_startup_grace_period=ctx.option(NODE_STARTUP_GRACE_PERIOD),
        node_eviction_rate=ctx.option(NODE_EVICTION_RATE),
        secondary_node_eviction_rate=ctx.option(SECONDARY_NODE_EVICTION_RATE),
        unhealthy_zone_threshold=ctx.option(UNHEALTHY_ZONE_THRESHOLD),
        large_cluster_size_threshold=ctx.option(LARGE_CLUSTER_SIZE_THRESHOLD),
    ), clock=ctx.clock)


def _tainteviction(ctx: ControllerContext) -> Component:
    from .tainteviction import TaintEvictionController

    return TaintEvictionController(ctx.client, informers=ctx.informers, clock=ctx.clock)


def _podgc(ctx: ControllerContext) -> Component:
    from .podgc import PodGCController

    return PodGCController(ctx.client, informers=ctx.informers, terminated_pod_gc_threshold=ctx.option(TERMINATED_POD_GC_THRESHOLD),
                           clock=ctx.clock)


def _job(ctx: ControllerContext) -> Component:
    from .job import JobController

    return JobController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_JOB_SYNCS), clock=ctx.clock)


def _ttl_after_finished(ctx: ControllerContext) -> Component:
    from .ttlafterfinished import TTLAfterFinishedController

    return TTLAfterFinishedController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_TTL_AFTER_FINISHED_SYNCS),
                                      clock=ctx.clock)


def _cronjob(ctx: ControllerContext) -> Component:
    from .cronjob import CronJobController

    return CronJobController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_CRON_JOB_SYNCS), clock=ctx.clock)


CONCURRENT_RESOURCE_QUOTA_SYNCS = _syncs("--concurrent-resource-quota-syncs", 5, "resource quotas")
RESOURCE_QUOTA_SYNC_PERIOD = ControllerFlag("--resource-quota-sync-period", _duration, 300.0,
                                            "how often every quota's usage is recounted (5m0s)")


def _resourcequota(ctx: ControllerContext) -> Component:
    from .resourcequota import ResourceQuotaController

    return ResourceQuotaController(ctx.client, informers=ctx.informers, workers=ctx.option(CONCURRENT_RESOURCE_QUOTA_SYNCS),
                                   resync=ctx.option(RESOURCE_QUOTA_SYNC_PERIOD), clock=ctx.clock)


def _clusterroleaggregation(ctx: ControllerContext) -> Component:
    from .clusterroleaggregation import ClusterRoleAggregationController

    return ClusterRoleAggregationController(ctx.client, informers=ctx.informers)


#: In start order (upstream starts them in its own order; ours only matters for readability of logs).
#: Add a controller here: its spec is all `up` and `controller-manager` need.
CATALOG: List[ControllerSpec] = [
    ControllerSpec("namespace-controller", _namespace, ("namespace",), (CONCURRENT_NAMESPACE_SYNCS,)),
    ControllerSpec("serviceaccount-controller", _serviceaccount, ("serviceaccount",),
                   (CONCURRENT_SERVICEACCOUNT_SYNCS,)),
    ControllerSpec("replicaset-controller", _replicaset, ("replicaset",), (CONCURRENT_REPLICASET_SYNCS,)),
    ControllerSpec("deployment-controller", _deployment, ("deployment",), (CONCURRENT_DEPLOYMENT_SYNCS,)),
    # One worker and no --concurrent-* flag, as upstream.
    ControllerSpec("disruption-controller", _disruption, ("disruption",)),
    ControllerSpec("endpoints-controller", _endpoint, ("endpoint",), (CONCURRENT_ENDPOINT_SYNCS,)),
    ControllerSpec("endpointslice-controller", _endpointslice, ("endpointslice",),
                   (CONCURRENT_SERVICE_ENDPOINT_SYNCS, MAX_ENDPOINTS_PER_SLICE)),
    ControllerSpec("daemonset-controller", _daemonset, ("daemonset",), (CONCURRENT_DAEMONSET_SYNCS,)),
    ControllerSpec("statefulset-controller", _statefulset, ("statefulset",), (CONCURRENT_STATEFULSET_SYNCS,)),
    ControllerSpec("garbage-collector-controller", _garbagecollector, ("garbagecollector",), (CONCURRENT_GC_SYNCS,)),
    ControllerSpec("job-controller", _job, ("job",), (CONCURRENT_JOB_SYNCS,)),
    ControllerSpec("ttl-after-finished-controller", _ttl_after_finished, ("ttl-after-finished",),
                   (CONCURRENT_TTL_AFTER_FINISHED_SYNCS,)),
    ControllerSpec("cronjob-controller", _cronjob, ("cronjob",), (CONCURRENT_CRON_JOB_SYNCS,)),
    ControllerSpec("node-lifecycle-controller", _nodelifecycle, ("nodelifecycle",),
                   (NODE_MONITOR_PERIOD, NODE_MONITOR_GRACE_PERIOD, NODE_STARTUP_GRACE_PERIOD, NODE_EVICTION_RATE,
                    SECONDARY_NODE_EVICTION_RATE, UNHEALTHY_ZONE_THRESHOLD, LARGE_CLUSTER_SIZE_THRESHOLD)),
    ControllerSpec("taint-eviction-controller", _tainteviction, ("tainteviction",)),
    ControllerSpec("pod-garbage-collector-controller", _podgc, ("podgc",), (TERMINATED_POD_GC_THRESHOLD,)),
    ControllerSpec("clusterrole-aggregation-controller", _clusterroleaggregation, ("clusterrole-aggregation",)),
    ControllerSpec("resourcequota-controller", _resourcequota, ("resourcequota",),
                   (CONCURRENT_RESOURCE_QUOTA_SYNCS, RESOURCE_QUOTA_SYNC_PERIOD)),
]


def _by_name(catalog: Sequence[ControllerSpec]) -> Dict[str, ControllerSpec]:
    names: Dict[str, ControllerSpec] = {}
    for spec in catalog:
        names[spec.name] = spec
        for alias in spec.aliases:
            names[alias] = spec
    return names


def parse_controllers(text: str, catalog: Sequence[ControllerSpec] = CATALOG) -> List[str]:
    """--controllers as kube-controller-manager reads it: '*' is every default, 'foo' enables foo, '-foo'
    disables it (a disable wins). Names or their aliases; the result is upstream names in catalog order."""
    names = _by_name(catalog)
    enabled: Set[str] = set()
    disabled: Set[str] = set()
    star = False
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if item == "*":
            star = True
            continue
        negate = item.startswith("-")
        name = item[1:] if negate else item
        spec = names.get(name)
        if spec is None:
            known = ", ".join(s.name for s in catalog)
            raise ValueError(f"{name!r} is not in the list of known controllers: {known}")
        (disabled if negate else enabled).add(spec.name)
    chosen = [s.name for s in catalog
              if s.name not in disabled and (s.name in enabled or (star and s.enabled_by_default))]
    return chosen


def _controllers_arg(text: str) -> List[str]:
    try:
        return parse_controllers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_controller_flags(parser: argparse.ArgumentParser, catalog: Sequence[ControllerSpec] = CATALOG) -> None:
    """--controllers and every controller's own flags, as kube-controller-manager names them."""
    g = parser.add_argument_group("controllers")
    default = ",".join(s.name for s in catalog if s.enabled_by_default)
    g.add_argument("--controllers", type=_controllers_arg, default=parse_controllers("*", catalog),
                   help="controllers to run: '*' every default one, 'foo' enables foo, '-foo' disables it "
                        f"(upstream names or their aliases; default '*': {default})")
    seen: Set[str] = set()
    for spec in catalog:
        for flag in spec.flags:
            if flag.flag not in seen:
                seen.add(flag.flag)
                g.add_argument(flag.flag, type=flag.type, default=flag.default, help=flag.help)


def controller_options(args: argparse.Namespace, catalog: Sequence[ControllerSpec] = CATALOG) -> Dict[str, Any]:
    """The controllers' flags out of parsed arguments (dest -> value)."""
    return {flag.dest: getattr(args, flag.dest, flag.default) for spec in catalog for flag in spec.flags}


def build_controllers(names: Sequence[str], client: Client, options: Optional[Mapping[str, Any]] = None, *,
                      clock: Clock = REAL_CLOCK, catalog: Sequence[ControllerSpec] = CATALOG,
                      client_for: Optional[Callable[[str], Client]] = None) -> List[Component]:
    """The chosen controllers (names or aliases), built in catalog order.

    `client_for(name)`, when given, is each controller's own client (its identity: kube-controller-manager's
    --use-service-account-credentials); otherwise they all share `client`."""
    by_name = _by_name(catalog)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown controllers: {', '.join(unknown)} (known: {', '.join(s.name for s in catalog)})")
    wanted = {by_name[n].name for n in names}
    # With identities of their own, the controllers still share informers listing and watching as `client`.
    # No controller reads managedFields (a PUT without them keeps the stored ones), and they are half of every
    # cached object's containers: kube-controller-manager's informers trim them too.
    factory = SharedInformerFactory(clock=clock, transport=client.transport if client_for is not None else None,
                                    transform=strip_managed_fields)
    ctx = ControllerContext(client, options or {}, clock, factory)
    if client_for is None:
        controllers = [spec.build(ctx) for spec in catalog if spec.name in wanted]
    else:
        controllers = [spec.build(dataclasses.replace(ctx, client=client_for(spec.name)))
                       for spec in catalog if spec.name in wanted]
    # The factory first: the runner starts it before the controllers (which wait for its informers to sync)
    # and stops it after them.
    return [ctx.informers, *controllers] if controllers else []
