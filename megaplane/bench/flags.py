"""`megaplane bench` flags: sizes, scenario knobs, thresholds, and flags passed on to the components."""

from __future__ import annotations

import argparse

from megaplane.units import parse_duration

from .config import SCENARIOS, BenchConfig
from .slis import Thresholds

__all__ = ["add_bench_flags", "bench_config"]


def add_bench_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", choices=SCENARIOS, help="what to run")
    g = p.add_argument_group("size")
    g.add_argument("--nodes", type=int, default=100, help="simulated nodes (100)")
    g.add_argument("--pods-per-node", type=int, default=None,
                   help="pods per node through Deployments (density/load 30, stall/zone-outage 1, leases 0)")
    g.add_argument("--node-lease-duration-seconds", type=int, default=40,
                   help="the nodes' Lease duration; renewed every quarter of it (40, as kubelet)")
    g.add_argument("--duration", type=parse_duration, default=60.0,
                   help="how long the scenario holds (or churns) once nodes and pods are up (60s)")
    g.add_argument("--processes", type=int, default=1,
                   help="fleet processes, each a shard of the nodes (--node-index-start) (1)")
    g.add_argument("--zones", type=int, default=None,
                   help="zones the nodes are spread over (1; zone-outage 3)")
    g.add_argument("--deployment-replicas", type=int, default=0,
                   help="replicas per Deployment the bench creates (0: up to 100)")
    g.add_argument("--pod-creation-rate", type=float, default=100.0,
                   help="pods/s the Deployments are created at (clusterloader2's tuning set; the pod startup SLO "
                        "holds at a rate, not for a backlog); 0: all at once, a saturation run (100)")
    g = p.add_argument_group("scenarios")
    g.add_argument("--rate", type=float, default=1.0, help="load: Deployment operations per second (1)")
    g.add_argument("--stall-duration", type=parse_duration, default=10.0,
                   help="stall: how long the API server is SIGSTOPped (10s)")
    g.add_argument("--stall-at", type=parse_duration, default=0.0,
                   help="stall: seconds into the hold the stall starts (0: a third of --duration)")
    g.add_argument("--pod-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the bench pods' not-ready/unreachable NoExecute tolerations (300, "
                        "as DefaultTolerationSeconds)")
    g.add_argument("--timeout", type=parse_duration, default=600.0,
                   help="longest wait for nodes to register, pods to run, a zone to recover (10m)")
    g = p.add_argument_group("cluster")
    g.add_argument("--kubeconfig", default="",
                   help="attach to this running cluster instead of starting one (the fleets are still started)")
    g.add_argument("--report", default="", metavar="DIR",
                   help="write results.json, report.html and the components' logs to DIR")
    g.add_argument("--namespace", default="megaplane-bench", help="namespace of the bench's Deployments")
    g.add_argument("--node-name-prefix", default="",
                   help="nodes are PREFIX0.. (node-; bench-node- when attached)")
    g.add_argument("--scrape-interval", type=parse_duration, default=5.0, help="/metrics and /proc sampling (5s)")
    g.add_argument("--kube-api-qps", type=float, default=500.0,
                   help="--kube-api-qps of the controller-manager and scheduler started (500)")
    g.add_argument("--kube-api-burst", type=int, default=1000,
                   help="--kube-api-burst of the controller-manager and scheduler started (1000)")
    g.add_argument("--cpu-affinity", choices=["auto", "none"], default="auto",
                   help="auto: the API server on core 0, the other processes on core 1 (machines with 2+ cores)")
    g.add_argument("--node-monitor-grace-period", default="",
                   help="passed to the node lifecycle controller (default: 50s, or 1.25 x the Lease duration past "
                        "40 s, upstream's ratio)")
    g.add_argument("--node-monitor-period", default="", help="passed to the node lifecycle controller")
    g.add_argument("--node-eviction-rate", type=float, default=None, help="passed to the node lifecycle controller")
    g.add_argument("--secondary-node-eviction-rate", type=float, default=None,
                   help="passed to the node lifecycle controller")
    g.add_argument("--profile", action="append", default=[], metavar="COMPONENT",
                   help="py-spy record this process from pod creation (or the hold) into DIR/profile-COMPONENT.svg: apiserver, "
                        "controller-manager, scheduler, fleet-0, ... (repeatable; needs py-spy and --report)")
    g.add_argument("--profile-seconds", type=parse_duration, default=30.0,
                   help="how long each profile records (30s)")
    g.add_argument("--without", action="append", default=[], choices=["scheduler", "controller-manager"],
                   help="do not start this component (repeatable): a leases run at a size whose full Node "
                        "objects the scheduler's informers could not hold")
    for component in ("apiserver", "controller-manager", "scheduler", "fleet"):
        g.add_argument(f"--{component}-arg", action="append", default=[], metavar="FLAG",
                       help=f"an extra flag for megaplane {component} (repeatable), e.g. --{component}-arg=-v=1")
    g = p.add_argument_group("SLO thresholds (clusterloader2's defaults)")
    t = Thresholds()
    g.add_argument("--api-resource-threshold", type=parse_duration, default=t.api_resource,
                   help="APIResponsivenessPrometheus: p99 of resource-scoped calls (1s)")
    g.add_argument("--api-list-threshold", type=parse_duration, default=t.api_list,
                   help="APIResponsivenessPrometheus: p99 of namespace/cluster-scoped calls (30s)")
    g.add_argument("--pod-startup-threshold", type=parse_duration, default=t.pod_startup,
                   help="PodStartupLatency: pod_startup p99 (5s)")
    g.add_argument("--scheduling-throughput-threshold", type=float, default=t.scheduling_throughput,
                   help="SchedulingThroughput: least perc50 pods/s (0: not checked)")
    g.add_argument("--lease-lateness-threshold", type=parse_duration, default=t.lease_lateness,
                   help="LeaseRenewal: lateness p99 (1s)")
    g.add_argument("--lease-failure-threshold", type=float, default=t.lease_failure_rate,
                   help="LeaseRenewal: failed renewals' share (0.001, seed 003's alert)")


def bench_config(args: argparse.Namespace) -> BenchConfig:
    zones = args.zones if args.zones is not None else (3 if args.scenario == "zone-outage" else 1)
    config = BenchConfig(
        scenario=args.scenario, nodes=args.nodes, pods_per_node=args.pods_per_node,
        node_lease_duration_seconds=args.node_lease_duration_seconds, duration=args.duration,
        processes=args.processes, zones=zones, report=args.report, kubeconfig=args.kubeconfig, rate=args.rate,
        deployment_replicas=args.deployment_replicas, pod_creation_rate=args.pod_creation_rate,
        stall_duration=args.stall_duration, stall_at=args.stall_at,
        scrape_interval=args.scrape_interval, timeout=args.timeout, namespace=args.namespace,
        node_name_prefix=args.node_name_prefix, pod_toleration_seconds=args.pod_toleration_seconds,
        kube_api_qps=args.kube_api_qps, kube_api_burst=args.kube_api_burst,
        cpu_affinity=args.cpu_affinity == "auto", node_monitor_grace_period=args.node_monitor_grace_period,
        node_monitor_period=args.node_monitor_period, node_eviction_rate=args.node_eviction_rate,
        secondary_node_eviction_rate=args.secondary_node_eviction_rate,
        profile=args.profile, profile_seconds=args.profile_seconds, apiserver_args=args.apiserver_arg, controller_manager_args=args.controller_manager_arg,
        scheduler_args=args.scheduler_arg, fleet_args=args.fleet_arg, without=args.without,
        thresholds=Thresholds(api_resource=args.api_resource_threshold, api_list=args.api_list_threshold,
                              pod_startup=args.pod_startup_threshold,
                              scheduling_throughput=args.scheduling_throughput_threshold,
                              lease_lateness=args.lease_lateness_threshold,
                              lease_failure_rate=args.lease_failure_threshold))
    config.validate()
    return config
