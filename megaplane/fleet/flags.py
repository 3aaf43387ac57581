"""The fleet's command-line flags (kubelet's names where kubelet has one), shared by `megaplane fleet` and `up`.

`add_fleet_flags` adds them to a parser; `fleet_config` turns the parsed
values into a `FleetConfig` (raising `FleetConfigError` for bad values).
"""

from __future__ import annotations

import argparse

from megaplane.units import parse_duration

from .config import DEFAULT_POD_CIDR, FleetConfig, parse_extended_resource, parse_labels, parse_taints

__all__ = ["add_fleet_flags", "fleet_config"]


def add_fleet_flags(parser: argparse.ArgumentParser, *, default_nodes: int) -> None:
    g = parser.add_argument_group("simulated nodes (fleet)")
    g.add_argument("--nodes", type=int, default=default_nodes,
                   help=f"simulated nodes to run ({default_nodes}; 0 for none)")
    g.add_argument("--node-name-prefix", default="node-", help="nodes are PREFIX0 .. PREFIX<N-1> (node-)")
    g.add_argument("--node-index-start", type=int, default=0,
                   help="index of this process's first node, so shards of one fleet do not overlap (0)")
    g.add_argument("--zones", type=int, default=1,
                   help="spread nodes round-robin over this many zones (topology.kubernetes.io/zone) (1)")
    g.add_argument("--region", default="region-1", help="topology.kubernetes.io/region of every node (region-1)")
    g.add_argument("--node-cpu", default="32", help="CPU capacity of each node (32)")
    g.add_argument("--node-memory", default="256Gi", help="memory capacity of each node (256Gi)")
    g.add_argument("--node-pods", type=int, default=110, help="pod capacity of each node (110, as kubelet's --max-pods)")
    g.add_argument("--node-extended-resource", action="append", default=[], metavar="NAME=QTY",
                   help="an extended resource of each node, e.g. example.com/nic=4 (repeatable)")
    g.add_argument("--node-labels", default="", help="extra labels k=v,... (kubelet's --node-labels)")
    g.add_argument("--node-taints", default="", help="taints k=v:Effect,... (kubelet's --register-with-taints)")
    g.add_argument("--node-lease-duration-seconds", type=int, default=40,
                   help="Lease duration; renewed every quarter of it with jitter, as kubelet (40)")
    g.add_argument("--node-status-report-frequency", type=parse_duration, default=300.0,
                   help="how often each node posts its status when nothing changed (5m)")
    g.add_argument("--pod-startup-latency", type=parse_duration, default=0.5,
                   help="how long a bound pod stays Pending before it runs (500ms)")
    g.add_argument("--job-pod-run-time", type=parse_duration, default=2.0,
                   help="how long a Job's pod runs before it succeeds (2s)")
    g.add_argument("--pod-cidr", default=DEFAULT_POD_CIDR,
                   help="range each node's pod range is cut from (IPv6 or IPv4), or an IPv4 and an IPv6 range "
                        f"(dual-stack: podIPs of both families, the first primary) ({DEFAULT_POD_CIDR})")
    g.add_argument("--node-cidr-mask-size", type=int, default=None,
                   help="prefix length of each node's pod range, single-stack (64 for IPv6, 24 for IPv4)")
    g.add_argument("--node-cidr-mask-size-ipv4", type=int, default=24,
                   help="prefix length of each node's IPv4 pod range (24)")
    g.add_argument("--node-cidr-mask-size-ipv6", type=int, default=64,
                   help="prefix length of each node's IPv6 pod range (64)")
    g.add_argument("--max-connections", type=int, default=64,
                   help="API requests in flight at once, over this many shared connections (64)")
    g.add_argument("--max-pipelined-requests", type=int, default=8,
                   help="over HTTP, Lease renewals written back to back on one connection before the first "
                        "is answered (HTTP/1.1 pipelining; 1: one at a time; 0: renewals through the shared "
                        "client connections as any other request); renewals in flight stay --max-connections (8)")


def fleet_config(args: argparse.Namespace, *, metrics_bind_address: str = "") -> FleetConfig:
    extended = dict(parse_extended_resource(item) for item in args.node_extended_resource)
    return FleetConfig(
        nodes=args.nodes,
        node_name_prefix=args.node_name_prefix,
        node_index_start=args.node_index_start,
        zones=args.zones,
        region=args.region,
        node_cpu=args.node_cpu,
        node_memory=args.node_memory,
        node_pods=args.node_pods,
        extended_resources=extended,
        node_labels=parse_labels(args.node_labels),
        node_taints=parse_taints(args.node_taints),
        node_lease_duration_seconds=args.node_lease_duration_seconds,
        node_status_report_frequency=args.node_status_report_frequency,
        pod_startup_latency=args.pod_startup_latency,
        job_pod_run_time=args.job_pod_run_time,
        pod_cidr=args.pod_cidr,
        node_cidr_mask_size=args.node_cidr_mask_size,
        node_cidr_mask_size_ipv4=args.node_cidr_mask_size_ipv4,
        node_cidr_mask_size_ipv6=args.node_cidr_mask_size_ipv6,
        max_connections=args.max_connections,
        max_pipelined_requests=args.max_pipelined_requests,
        metrics_bind_address=metrics_bind_address,
    )
