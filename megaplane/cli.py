"""`megaplane <command>`: the command line of every component.

Each command is a small function that parses upstream-named flags and hands
off to the package that owns the work; nothing else lives here.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable, List, Optional

from . import __version__
from .apiserver.registry.services import DEFAULT_SERVICE_CLUSTER_IP_RANGE
from .units import humanize_bytes, parse_bool, parse_duration

__all__ = ["main", "build_parser"]


def _table(headers: List[str], rows: List[List[str]]) -> str:
    """An etcdctl-style ASCII table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(headers)]
    sep = "+" + "+".join("-" * w for w in widths) + "+"
    out = [sep, "|" + "|".join(h.center(w) for h, w in zip(headers, widths)) + "|", sep]
    for r in rows:
        out.append("|" + "|".join(_cell(c, w) for c, w in zip(r, widths)) + "|")
    out.append(sep)
    return "\n".join(out)


def _cell(text: str, width: int) -> str:
    if text.isdigit():
        return " " + text.rjust(width - 2) + " "
    return " " + text.ljust(width - 2) + " "


# -- snapshot ---------------------------------------------------------------------


def cmd_snapshot_save(args: argparse.Namespace) -> int:
    from .store import Store, snapshot

    if args.endpoints:
        from .etcd.client import save_snapshot_from_endpoint

        info = save_snapshot_from_endpoint(args.endpoints, args.filename)
    else:
        if not args.data_dir:
            print("Error: give --endpoints of a running store or --data-dir of a stopped one", file=sys.stderr)
            return 2
        store = Store(args.data_dir)
        try:
            info = snapshot.write(args.filename, snapshot.capture(store))
        finally:
            store.close()
    print(f"Snapshot saved at {args.filename}")
    if args.write_out == "json":
        print(json.dumps(info))
    return 0


def cmd_snapshot_restore(args: argparse.Namespace) -> int:
    from .store import snapshot

    try:
        info = snapshot.restore_data_dir(
            args.filename, args.data_dir, bump_revision=args.bump_revision, mark_compacted=args.mark_compacted
        )
    except snapshot.SnapshotError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"restored snapshot {args.filename} (revision {info['revision']}, {info['totalKey']} keys) to {args.data_dir}")
    return 0


def cmd_snapshot_status(args: argparse.Namespace) -> int:
    from .store import snapshot

    try:
        st = snapshot.status(args.filename)
    except snapshot.SnapshotError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if args.write_out == "json":
        print(json.dumps(st))
    else:
        print(
            _table(
                ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
                [["%x" % st["hash"], str(st["revision"]), str(st["totalKey"]), humanize_bytes(int(st["totalSize"]))]],  # type: ignore[call-overload]
            )
        )
    return 0


def _add_snapshot(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "snapshot",
        help="save, restore and inspect store snapshots (the etcd backup/restore drill)",
        description="Save a consistent point-in-time copy of the store to one file, restore it "
        "into a new data dir, or show a snapshot's status (like etcdctl snapshot).",
    )
    ss = p.add_subparsers(dest="snapshot_command", required=True, metavar="save|restore|status")
    save = ss.add_parser("save", help="write a snapshot of a running or stopped store to FILENAME")
    save.add_argument("filename")
    save.add_argument("--endpoints", help="client URL of a running `megaplane store` (etcd v3 API)")
    save.add_argument("--data-dir", help="data dir of a stopped store")
    save.add_argument("-w", "--write-out", choices=["simple", "json"], default="simple")
    save.set_defaults(func=cmd_snapshot_save)
    restore = ss.add_parser("restore", help="create a new data dir from a snapshot file")
    restore.add_argument("filename")
    restore.add_argument("--data-dir", required=True, help="the new data dir (must not exist or be empty)")
    restore.add_argument(
        "--bump-revision",
        type=int,
        default=0,
        help="how much to increase the latest revision after restore, above every revision the original "
        "served since the snapshot, so none is handed out twice (etcdutl's flag; e.g. 1000000000)",
    )
    restore.add_argument(
        "--mark-compacted",
        action="store_true",
        help="mark the latest revision after restore as compacted (required with --bump-revision > 0, "
        "refused otherwise, as etcdutl)",
    )
    restore.set_defaults(func=cmd_snapshot_restore)
    status = ss.add_parser("status", help="show a snapshot's hash, revision, key count and size")
    status.add_argument("filename")
    status.add_argument("-w", "--write-out", choices=["table", "json"], default="table")
    status.set_defaults(func=cmd_snapshot_status)


# -- store --------------------------------------------------------------------------


def _wal_mode_arg(text: str) -> tuple:
    prefix, sep, mode = text.rpartition("=")
    if not sep or not prefix:
        raise argparse.ArgumentTypeError(f"--wal-mode wants PREFIX=MODE, got {text!r}")
    return prefix.encode(), mode


def add_store_flags(p: argparse.ArgumentParser) -> None:
    """Flags of the embedded store, shared by `megaplane store` and `megaplane up`."""
    g = p.add_argument_group("store")
    g.add_argument("--data-dir", help="directory for the WAL and checkpoints (omit: memory only)")
    g.add_argument(
        "--wal-default",
        choices=["none", "buffered", "fsync"],
        default="buffered",
        help="WAL mode of partitions no --wal-mode matches (default: buffered)",
    )
    g.add_argument(
        "--wal-mode",
        action="append",
        type=_wal_mode_arg,
        default=[],
        metavar="PREFIX=MODE",
        help="WAL mode for the partitions under PREFIX, e.g. /registry/leases/=none (repeatable)",
    )
    g.add_argument("--wal-flush-interval", type=parse_duration, default=0.005, help="buffered-mode write delay (5ms)")
    g.add_argument(
        "--history-max-events",
        type=int,
        default=200_000,
        help="events kept per partition for watches and reads at old revisions (200000)",
    )
    g.add_argument("--max-txn-ops", type=int, default=128, help="most operations in one txn (etcd: 128)")
    g.add_argument("--max-request-bytes", type=int, default=1_572_864, help="largest request (etcd: 1.5 MiB)")
    g.add_argument("--snapshot-count", type=int, default=0, help="checkpoint after this many logged writes (0: by size)")
    g.add_argument(
        "--wal-checkpoint-bytes",
        type=int,
        default=256 << 20,
        help="checkpoint once this many WAL bytes accumulate (raised to 2x the last checkpoint)",
    )


def store_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .store import StoreConfig

    return StoreConfig(
        wal_default=args.wal_default,
        wal_modes=dict(args.wal_mode),
        wal_flush_interval=args.wal_flush_interval,
        history_max_events=args.history_max_events,
        max_txn_ops=args.max_txn_ops,
        max_request_bytes=args.max_request_bytes,
        snapshot_count=args.snapshot_count,
        checkpoint_bytes=args.wal_checkpoint_bytes,
    )


def cmd_store(args: argparse.Namespace) -> int:
    from .etcd import EtcdServer, serve
    from .store import Store

    try:
        config = store_config(args)
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    store = Store(args.data_dir, config)
    server = EtcdServer(
        store,
        listen_client_urls=args.listen_client_urls.split(","),
        advertise_client_urls=args.advertise_client_urls.split(",") if args.advertise_client_urls else None,
        name=args.name,
        progress_notify_interval=args.experimental_watch_progress_notify_interval,
    )
    def ready(server) -> None:  # type: ignore[no-untyped-def]
        if args.listen_metrics_urls:
            import asyncio

            from prometheus_client import CollectorRegistry

            from .metrics import serve_metrics
            from .store.metrics import StoreCollector

            registry = CollectorRegistry()
            registry.register(StoreCollector(store))
            asyncio.get_running_loop().create_task(serve_metrics(registry, args.listen_metrics_urls.split(",")))
        if args.auto_compaction_retention:
            from .store.compactor import start_auto_compaction

            start_auto_compaction(store, args.auto_compaction_mode, args.auto_compaction_retention)
        print(
            f"megaplane store: etcd v3 API on {args.listen_client_urls} (member {server.member_id:x}, "
            f"revision {store.revision}, data dir {args.data_dir or '(memory only)'})",
            flush=True,
        )

    serve(server, on_ready=ready)
    return 0


def _add_store(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "store",
        help="serve the embedded store over the etcd v3 gRPC API",
        description="Run megaplane's in-memory, per-kind partitioned store as a one-member etcd: "
        "any etcd v3 client (etcdctl, kube-apiserver, client libraries) can use it.",
    )
    p.add_argument("--name", default="default", help="human-readable name of this member (etcd: default)")
    p.add_argument(
        "--listen-client-urls",
        default="http://127.0.0.1:2379",
        help="comma-separated URLs to serve the etcd API on (default http://127.0.0.1:2379)",
    )
    p.add_argument("--advertise-client-urls", help="client URLs reported by MemberList (default: the listen URLs)")
    p.add_argument("--listen-metrics-urls", help="URLs to serve /metrics on, e.g. http://127.0.0.1:2381")
    p.add_argument(
        "--experimental-watch-progress-notify-interval",
        type=parse_duration,
        default=600.0,
        help="interval of progress notifications to quiet watchers that asked for them (10m)",
    )
    p.add_argument(
        "--auto-compaction-mode", choices=["periodic", "revision"], default="periodic", help="(etcd) periodic|revision"
    )
    p.add_argument(
        "--auto-compaction-retention",
        default="",
        help="periodic: keep this much history (e.g. 1h); revision: keep this many revisions (default: off)",
    )
    add_store_flags(p)
    p.set_defaults(func=cmd_store)


# -- up / apiserver ---------------------------------------------------------------------


def add_etcd_flags(p: argparse.ArgumentParser) -> None:
    """kube-apiserver's etcd flags (megaplane.storage.etcd3): where the API server keeps each resource."""
    g = p.add_argument_group("etcd (storage backends)")
    g.add_argument("--etcd-servers", default="",
                   help="etcd client URLs to store objects in, comma separated (default or 'embedded': this "
                        "process's own store)")
    g.add_argument("--etcd-servers-overrides", default="",
                   help="per-resource etcd servers, comma separated group/resource#servers entries, servers "
                        "semicolon separated URLs or 'embedded' (e.g. /events#http://127.0.0.1:2389)")
    g.add_argument("--etcd-prefix", default="/registry", help="the prefix of every key in etcd (/registry)")
    g.add_argument("--etcd-cafile", default="", help="SSL Certificate Authority file to verify etcd servers")
    g.add_argument("--etcd-certfile", default="", help="SSL certification file for etcd client authentication")
    g.add_argument("--etcd-keyfile", default="", help="SSL key file for etcd client authentication")
    g.add_argument("--etcd-compaction-interval", type=parse_duration, default=300.0,
                   help="interval of compaction requests to etcd (5m0s; 0: off)")
    g.add_argument("--etcd-count-metric-poll-period", type=parse_duration, default=60.0,
                   help="how often etcd is polled for the number of objects per resource (1m0s; 0: the watch "
                        "caches are counted instead)")
    g.add_argument("--etcd-request-timeout", type=parse_duration, default=10.0,
                   help="deadline of one etcd call; past it the request fails with a timeout (10s)")
    g.add_argument("--etcd-client-transport", choices=["megaplane", "grpcio"], default="megaplane",
                   help="the etcd client's gRPC transport: megaplane's own HTTP/2 client (default: about half the "
                        "CPU per call, benchmarks/etcd_backend.py), or grpcio's asyncio API")
    g.add_argument("--encryption-provider-config", default="",
                   help="an EncryptionConfiguration file: the providers (aescbc, aesgcm, secretbox, identity) "
                        "storing each resource's values encrypted at rest")
    g.add_argument("--storage-media-type", default="application/json",
                   help="how objects are stored in etcd (application/json, the only one megaplane writes)")


def etcd_backend_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .storage.etcd3 import BackendConfig, parse_overrides, parse_servers
    from .storage.value import load_encryption_config

    if args.encryption_provider_config:
        load_encryption_config(args.encryption_provider_config)  # a bad file fails here, before starting

    return BackendConfig(
        servers=parse_servers(args.etcd_servers),
        overrides=parse_overrides(args.etcd_servers_overrides),
        prefix=args.etcd_prefix,
        ca_file=args.etcd_cafile,
        cert_file=args.etcd_certfile,
        key_file=args.etcd_keyfile,
        compaction_interval=args.etcd_compaction_interval,
        count_poll_period=args.etcd_count_metric_poll_period,
        request_timeout=args.etcd_request_timeout,
        media_type=args.storage_media_type,
        transport=args.etcd_client_transport,
        encryption_provider_config=args.encryption_provider_config,
    )


def _authorization_modes(text: str) -> List[str]:
    from megaplane.apiserver.authz.modes import parse_modes

    try:
        return parse_modes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _control_plane_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from megaplane.apiserver.authn.flags import authentication_config
    from megaplane.apiserver.authz.config import AuthorizationConfig
    from megaplane.apiserver.server import APIServerConfig

    from .controllers.catalog import controller_options
    from .controlplane import ControlPlaneConfig, resolve_advertise_address

    modes = dict(args.wal_mode)
    # Leases and Events are rewritten constantly and cheap to lose (k8s-1m runs them without a WAL).
    modes.setdefault(b"/registry/leases/", "none")
    modes.setdefault(b"/registry/events/", "none")
    args.wal_mode = list(modes.items())
    advertise_address, also_bind = resolve_advertise_address(
        args.bind_address, args.advertise_address, args.service_cluster_ip_range)
    return ControlPlaneConfig(
        data_dir=args.data_dir,
        store=store_config(args),
        api=APIServerConfig(
            event_ttl=int(args.event_ttl),
            service_cluster_ip_range=args.service_cluster_ip_range,
            service_node_port_range=args.service_node_port_range,
            advertise_address=advertise_address,
            watch_cache_window=args.watch_cache_window,
            watch_cache_min_events=args.default_watch_cache_size,
            request_timeout=args.request_timeout,
            min_request_timeout=float(args.min_request_timeout),
            enable_priority_and_fairness=args.enable_priority_and_fairness,
            max_requests_inflight=args.max_requests_inflight,
            max_mutating_requests_inflight=args.max_mutating_requests_inflight,
            default_not_ready_toleration_seconds=args.default_not_ready_toleration_seconds,
            default_unreachable_toleration_seconds=args.default_unreachable_toleration_seconds,
            authentication=authentication_config(args),
            authorization=AuthorizationConfig(list(args.authorization_mode)),
            http2_max_streams_per_connection=args.http2_max_streams_per_connection,
            admission_plugins=_admission_plugins(args),
            audit=_audit_config(args),
        ),
        bind_address=args.bind_address,
        also_bind_address=also_bind,
        port=args.port,
        secure_port=args.secure_port,
        kubeconfig=args.kubeconfig,
        tls_sans=[s for s in args.tls_san.split(",") if s],
        etcd_client_urls=[u for u in (args.listen_client_urls or "").split(",") if u],
        controllers=list(args.controllers),
        controller_options=controller_options(args),
        storage_backends=etcd_backend_config(args),
    )


def _admission_plugins(args: argparse.Namespace) -> "frozenset[str]":
    from megaplane.apiserver.registry.plugins import DEFAULT_ADMISSION_PLUGINS, admission_plugins

    defaults = set(DEFAULT_ADMISSION_PLUGINS)
    if "serviceaccount-controller" in (getattr(args, "controllers", None) or ()):
        defaults.add("ServiceAccount")  # the `default` accounts are made in this process (registry.plugins)
    return admission_plugins(getattr(args, "enable_admission_plugins", ""),
                             getattr(args, "disable_admission_plugins", ""), defaults)


def _audit_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from megaplane.apiserver.audit.flags import audit_config

    return audit_config(args)


def _apiserver_replicas(args: argparse.Namespace, config) -> List[List[str]]:  # type: ignore[no-untyped-def]
    """`megaplane apiserver` arguments for the N-1 more API servers of `up --apiservers N` (none for N <= 1).

    They share this process's storage: its etcd clusters as given, or, on the embedded store, the store's
    etcd v3 endpoint (--listen-client-urls, on a free loopback port unless given). Each gets the next plain
    port after --port (skipping --secure-port; free ones if --port is 0), no secure port, and a data dir of
    its own for its unused local store.
    """
    import os
    import socket
    import tempfile

    count = getattr(args, "apiservers", 1) or 1
    if count <= 1:
        return []
    backends = config.storage_backends

    def own(servers: List[str]) -> bool:
        return not servers or servers == ["embedded"]

    if any(own(servers) for servers in backends.overrides.values()):
        raise ValueError("--apiservers: every resource must be on storage the API servers share; an "
                         "--etcd-servers-overrides entry names this process's embedded store")

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    if own(backends.servers):
        if not config.etcd_client_urls:
            config.etcd_client_urls = [f"http://127.0.0.1:{free_port()}"]
        servers = config.etcd_client_urls[0].replace("://0.0.0.0:", "://127.0.0.1:")
    else:
        servers = ",".join(backends.servers)
    shared = ["--etcd-servers", servers, "--etcd-prefix", args.etcd_prefix,
              "--etcd-client-transport", args.etcd_client_transport,
              "--service-cluster-ip-range", args.service_cluster_ip_range,
              "--service-node-port-range", args.service_node_port_range]
    for flag, value in (("--etcd-servers-overrides", args.etcd_servers_overrides), ("--etcd-cafile", args.etcd_cafile),
                        ("--etcd-certfile", args.etcd_certfile), ("--etcd-keyfile", args.etcd_keyfile),
                        ("--encryption-provider-config", args.encryption_provider_config)):
        if value:
            shared += [flag, value]
    out = []
    port = config.port
    for i in range(1, count):
        if config.port:
            port += 1
            if port == config.secure_port:  # the next ports after --port, but not this process's secure one
                port += 1
        else:
            port = free_port()
        data = (os.path.join(config.data_dir, f"apiserver-{i}") if config.data_dir
                else tempfile.mkdtemp(prefix=f"megaplane-apiserver-{i}-"))
        out.append(["--port", str(port), "--secure-port", "0", "--data-dir", data, *shared])
    return out


def cmd_up(args: argparse.Namespace) -> int:
    from .controlplane import run

    try:
        config = _control_plane_config(args)
        config.scheduler = bool(getattr(args, "scheduler", False))  # `up` only: the in-process scheduler
        config.scheduler_shards = int(getattr(args, "scheduler_shards", 1))
        if config.scheduler_shards < 1:
            raise ValueError("--scheduler-shards must be >= 1")
        config.leader_election = (leader_election_config(args, "kube-controller-manager")  # `up` only
                                  if config.controllers else None)
        if getattr(args, "nodes", 0):  # `up` only: the in-process fleet (megaplane.fleet)
            from .fleet.flags import fleet_config

            config.fleet = fleet_config(args)
        config.apiserver_replicas = _apiserver_replicas(args, config)  # `up` only: --apiservers N
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    run(config)
    return 0


def _add_control_plane(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    for name, help_text in (
        ("up", "run the control plane in one process on the embedded store, and write a kubeconfig"),
        ("apiserver", "run the Kubernetes API server on the embedded store"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        g = p.add_argument_group("API server")
        g.add_argument("--bind-address", default="127.0.0.1", help="address to serve on (127.0.0.1)")
        g.add_argument("--port", type=int, default=0, help="plain HTTP port (0: off)")
        g.add_argument("--secure-port", type=int, default=6443, help="HTTPS port (6443; 0: off)")
        g.add_argument("--advertise-address", default="", help="address reported to clients (default: --bind-address)")
        g.add_argument("--kubeconfig", help="write an admin kubeconfig for this server to PATH")
        g.add_argument("--tls-san", default="", help="extra names / IPs for the serving certificate (comma separated)")
        g.add_argument("--event-ttl", type=parse_duration, default=3600.0, help="how long Events are kept (1h)")
        g.add_argument(
            "--service-cluster-ip-range", default=DEFAULT_SERVICE_CLUSTER_IP_RANGE,
            help="CIDR for service cluster IPs, or two of different families for dual-stack (the first is the "
                 f"default family; {DEFAULT_SERVICE_CLUSTER_IP_RANGE}: IPv6 single-stack, as the fleet's pods)")
        g.add_argument(
            "--service-node-port-range", default="30000-32767", help="port range for NodePort services (30000-32767)"
        )
        g.add_argument(
            "--default-watch-cache-size",
            type=int,
            default=1000,
            help="events each watch cache keeps whatever their age (1000)",
        )
        g.add_argument(
            "--watch-cache-window",
            type=parse_duration,
            default=75.0,
            help="how long watch caches keep events beyond that, for resuming watches (75s, as upstream)",
        )
        g.add_argument("--request-timeout", type=parse_duration, default=60.0,
                       help="how long a non-long-running request may take before it gets 504 (1m0s)")
        g.add_argument("--min-request-timeout", type=int, default=1800,
                       help="seconds a watch without timeoutSeconds lasts at least (randomised up to twice that) (1800)")
        g.add_argument("--http2-max-streams-per-connection", type=int, default=0,
                       help="the limit that the server gives to clients for the maximum number of streams in an "
                            "HTTP/2 connection (0: kube-apiserver's 100)")
        # Flow control (megaplane.apiserver.flowcontrol), with kube-apiserver's flags and defaults.
        g.add_argument("--max-requests-inflight", type=int, default=400,
                       help="most non-mutating requests at once; with APF, part of the server's concurrency limit "
                            "(400; 0: no limit)")
        g.add_argument("--max-mutating-requests-inflight", type=int, default=200,
                       help="most mutating requests at once; with APF, part of the server's concurrency limit "
                            "(200; 0: no limit)")
        g.add_argument("--enable-priority-and-fairness", type=parse_bool, nargs="?", const=True, default=True,
                       help="priority levels and fair queuing for requests (true); false: the two inflight limits alone")
        g.add_argument("--default-not-ready-toleration-seconds", type=int, default=300,
                       help="tolerationSeconds of the not-ready:NoExecute toleration added to pods that have "
                            "none (300)")
        g.add_argument("--default-unreachable-toleration-seconds", type=int, default=300,
                       help="tolerationSeconds of the unreachable:NoExecute toleration added to pods that have "
                            "none (300)")
        g.add_argument("--enable-admission-plugins", default="",
                       help="admission plugins to turn on beside the defaults (comma separated; see README)")
        g.add_argument("--disable-admission-plugins", default="",
                       help="admission plugins to turn off, even default ones (comma separated)")
        g.add_argument(
            "--listen-client-urls",
            default="",
            help="also serve the etcd v3 API over the store on these URLs (e.g. http://127.0.0.1:2379)",
        )
        from .apiserver.authn.flags import add_authentication_flags

        add_authentication_flags(p)
        g.add_argument("--authorization-mode", type=_authorization_modes, default=["Node", "RBAC"],
                       help="ordered comma list of authorizers for the secure port: Node, RBAC, AlwaysAllow, "
                            "AlwaysDeny (default Node,RBAC, as kubeadm; system:masters is always allowed)")
        add_store_flags(p)
        add_etcd_flags(p)
        from megaplane.apiserver.audit.flags import add_audit_flags

        add_audit_flags(p)
        if name == "up":
            from .fleet.flags import add_fleet_flags

            add_fleet_flags(p, default_nodes=3)
            p.add_argument("--scheduler", type=parse_bool, nargs="?", const=True, default=True,
                           help="run the scheduler in this process (true; no leader election)")
            p.add_argument("--scheduler-shards", type=int, default=1,
                           help="shard processes the in-process scheduler scatters each pod to (1: none)")
            from .controllers.catalog import add_controller_flags

            add_controller_flags(p)
            add_leader_election_flags(p, "kube-controller-manager", in_process=True)
            p.add_argument("--apiservers", type=int, default=1,
                           help="run this many API servers on the same storage: this one and N-1 `megaplane "
                                "apiserver` processes on the next plain ports, over the embedded store's etcd "
                                "endpoint or --etcd-servers (1); put a load balancer in front")
        else:
            p.set_defaults(controllers=[], leader_elect=False)
        p.set_defaults(func=cmd_up)


# -- fleet ------------------------------------------------------------------------


def cmd_fleet(args: argparse.Namespace) -> int:
    from .fleet import run
    from .fleet.flags import fleet_config

    try:
        config = fleet_config(args, metrics_bind_address=args.metrics_bind_address)
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    run(config, args.kubeconfig, args.context)
    return 0


def _add_fleet(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .fleet.flags import add_fleet_flags

    help_text = "simulate N kubelets (Nodes, Leases, pod phases) against any API server"
    p = sub.add_parser("fleet", help=help_text, description=help_text)
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of the API server to register the nodes with")
    p.add_argument("--context", default="", help="kubeconfig context (default: current-context)")
    p.add_argument("--metrics-bind-address", default="",
                   help="serve the fleet's /metrics on HOST:PORT, e.g. 127.0.0.1:10249 (default: off)")
    add_fleet_flags(p, default_nodes=1000)
    p.set_defaults(func=cmd_fleet)


# -- scheduler --------------------------------------------------------------------


#: The scheduler's --leader-elect* defaults (its parser defaults them to None to tell which were given).
_SCHEDULER_LEADER_FLAGS = {"leader_elect": True, "leader_elect_lease_duration": 15.0,
                           "leader_elect_renew_deadline": 10.0, "leader_elect_retry_period": 2.0,
                           "leader_elect_resource_lock": "leases", "leader_elect_resource_name": "kube-scheduler",
                           "leader_elect_resource_namespace": "kube-system"}


def _scheduler_with_config(args: argparse.Namespace, given: "dict[str, object]") -> int:
    """kube-scheduler's --config: the file's settings; of the flags only the leader election ones that were
    given override it (the deprecated --kubeconfig / --kube-api-qps / --kube-api-burst are ignored, except
    that --kubeconfig stands in for an empty clientConnection.kubeconfig: megaplane has no in-cluster config)."""
    from .client.leaderelection import LeaderElectionConfig
    from .scheduler import run
    from .scheduler.config import ConfigError, load_file

    if args.scheduler_name or args.percentage_of_nodes_to_score is not None:
        print("Error: --scheduler-name and --percentage-of-nodes-to-score cannot be combined with --config "
              "(profiles and percentageOfNodesToScore come from the file)", file=sys.stderr)
        return 2
    fields = {"leader_elect": "leader_elect", "leader_elect_lease_duration": "lease_duration",
              "leader_elect_renew_deadline": "renew_deadline", "leader_elect_retry_period": "retry_period",
              "leader_elect_resource_lock": "resource_lock", "leader_elect_resource_name": "resource_name",
              "leader_elect_resource_namespace": "resource_namespace"}
    try:
        cfg = load_file(args.config, {fields[k]: v for k, v in given.items()})
        le = cfg.leader_election
        election = None
        if le.leader_elect:
            election = LeaderElectionConfig(
                name=le.resource_name, namespace=le.resource_namespace, lease_duration=le.lease_duration,
                renew_deadline=le.renew_deadline, retry_period=le.retry_period,
                event_component=cfg.profiles[0].name)
            try:
                election.validate()
            except ValueError as exc:
                raise ConfigError(f"leaderElection: {exc}") from None
        kubeconfig = cfg.client_connection.kubeconfig or args.kubeconfig
        if not kubeconfig:
            raise ConfigError("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                              "KUBERNETES_SERVICE_PORT must be defined (set clientConnection.kubeconfig or "
                              "--kubeconfig)")
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    cc = cfg.client_connection
    try:
        partition, workers = _tenant_partition(args)
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    run(kubeconfig, args.context, qps=cc.qps, burst=cc.burst, bind_address=args.bind_address, port=args.port,
        profiles=cfg.profiles, percentage_of_nodes_to_score=cfg.percentage_of_nodes_to_score,
        leader_election=election, pod_initial_backoff=float(cfg.pod_initial_backoff_seconds),
        pod_max_backoff=float(cfg.pod_max_backoff_seconds), partition=partition, worker_argv=workers,
        shards=args.shards)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from .scheduler import run

    given = {k: getattr(args, k) for k in _SCHEDULER_LEADER_FLAGS if getattr(args, k) is not None}
    for k, v in _SCHEDULER_LEADER_FLAGS.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.config:
        return _scheduler_with_config(args, given)
    if not args.kubeconfig:
        print("Error: --kubeconfig is required (or --config with clientConnection.kubeconfig)", file=sys.stderr)
        return 2
    if args.percentage_of_nodes_to_score is None:
        args.percentage_of_nodes_to_score = 0
    if not 0 <= args.percentage_of_nodes_to_score <= 100:
        print("Error: --percentage-of-nodes-to-score must be in 0..100", file=sys.stderr)
        return 2
    if args.kube_api_qps < 0 or args.kube_api_burst < 0 or not 0 <= args.port <= 65535:
        print("Error: --kube-api-qps/--kube-api-burst must be >= 0 and --port in 0..65535", file=sys.stderr)
        return 2
    try:
        election = leader_election_config(args, (args.scheduler_name or ["default-scheduler"])[0])
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    try:
        partition, workers = _tenant_partition(args)
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    run(args.kubeconfig, args.context, qps=args.kube_api_qps, burst=args.kube_api_burst,
        bind_address=args.bind_address, port=args.port, profiles=args.scheduler_name or ["default-scheduler"],
        percentage_of_nodes_to_score=args.percentage_of_nodes_to_score, leader_election=election,
        partition=partition, worker_argv=workers, shards=args.shards)
    return 0


def _tenant_partition(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """(this process's TenantPartition or None, the argv its workers are started from or None)."""
    from .scheduler.tenants import TenantPartition

    if args.tenant_workers < 1:
        raise ValueError("--tenant-workers must be >= 1")
    if args.shards < 1:
        raise ValueError("--shards must be >= 1")
    if not args.tenant_label:
        if args.tenant_workers > 1 or args.tenant_worker_index:
            raise ValueError("--tenant-workers needs --tenant-label")
        return None, None
    partition = TenantPartition(args.tenant_label, args.tenant_workers, args.tenant_worker_index)
    parent = args.tenant_worker_index == 0 and args.tenant_workers > 1
    argv = sys.argv[sys.argv.index("scheduler") + 1:] if "scheduler" in sys.argv else []
    return partition, (argv if parent else None)


def _add_scheduler(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    help_text = "schedule pods onto nodes (kube-scheduler's default profile) against any API server"
    p = sub.add_parser("scheduler", help=help_text, description=help_text)
    p.add_argument("--config", default="",
                   help="a kubescheduler.config.k8s.io/v1 KubeSchedulerConfiguration file (YAML or JSON): profiles, "
                        "plugins, pluginConfig, percentageOfNodesToScore, backoff, leaderElection, clientConnection; "
                        "with it, only the --leader-elect* flags given override the file")
    p.add_argument("--kubeconfig", default="",
                   help="kubeconfig of the API server (with --config: only when clientConnection.kubeconfig is empty)")
    p.add_argument("--context", default="", help="kubeconfig context (default: current-context)")
    p.add_argument("--kube-api-qps", type=float, default=50.0, help="QPS to use while talking with the API server (50)")
    p.add_argument("--kube-api-burst", type=int, default=100, help="burst to use while talking with the API server (100)")
    p.add_argument("--bind-address", default="0.0.0.0", help="address /healthz, /readyz and /metrics are served on")
    p.add_argument("--port", type=int, default=0, help="plain HTTP port for /healthz, /readyz, /metrics (0: off)")
    p.add_argument("--scheduler-name", action="append", default=[],
                   help="a profile's schedulerName (repeatable; default: default-scheduler)")
    p.add_argument("--percentage-of-nodes-to-score", type=int, default=None,
                   help="percentage of feasible nodes to score (0: adaptive, as upstream)")
    p.add_argument("--tenant-label", default="",
                   help="the node label naming each node pool's tenant (e.g. megaplane.io/tenant): with "
                        "--tenant-workers, tenants pinned to their pools are scheduled in parallel")
    p.add_argument("--tenant-workers", type=int, default=1,
                   help="scheduler processes sharing the tenants (this one and N-1 workers it runs while it leads; 1)")
    p.add_argument("--tenant-worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--shards", type=int, default=1,
                   help="shard processes filtering and scoring a slice of the nodes each, every pod scattered to "
                        "all and gathered by this process (1: schedule in this process alone)")
    add_leader_election_flags(p, "kube-scheduler")
    p.set_defaults(**{k: None for k in _SCHEDULER_LEADER_FLAGS})  # None: not given (--config decides)
    p.set_defaults(func=cmd_scheduler)


# -- leader election (controller-manager, scheduler, up) ---------------------------


def add_leader_election_flags(p: argparse.ArgumentParser, lease_name: str, *, in_process: bool = False) -> None:
    """component-base's --leader-elect* flags, with upstream's defaults (lease kube-system/`lease_name`).

    `in_process` (`megaplane up`): off by default, and a lost lease stops the controllers instead of the process.
    """
    lost = ("a leader that cannot renew within the renew deadline stops its controllers and campaigns again; "
            "off by default: up is the only control plane, and its renewals would move the revision every "
            "retry period of an otherwise quiet cluster" if in_process else
            "a leader that cannot renew within the renew deadline stops leading and exits with status 1 "
            "('leaderelection lost') for its supervisor to restart it")
    g = p.add_argument_group("leader election", description=f"One Lease per component; {lost}.")
    g.add_argument("--leader-elect", type=parse_bool, nargs="?", const=True, default=not in_process,
                   help="start a leader election client and gain leadership before running "
                        f"({'false' if in_process else 'true'})")
    g.add_argument("--leader-elect-lease-duration", type=parse_duration, default=15.0,
                   help="how long a standby waits, after it last saw the leader renew, before it takes over (15s)")
    g.add_argument("--leader-elect-renew-deadline", type=parse_duration, default=10.0,
                   help="how long after its last successful renewal a leader stops leading; must be less than "
                        "the lease duration (10s)")
    g.add_argument("--leader-elect-retry-period", type=parse_duration, default=2.0,
                   help="between attempts to acquire or renew leadership (2s)")
    g.add_argument("--leader-elect-resource-lock", choices=["leases"], default="leases",
                   help="the kind of object locked (leases, the only one upstream still supports)")
    g.add_argument("--leader-elect-resource-name", default=lease_name,
                   help=f"name of the Lease used for locking ({lease_name})")
    g.add_argument("--leader-elect-resource-namespace", default="kube-system",
                   help="namespace of the Lease used for locking (kube-system)")


def leader_election_config(args: argparse.Namespace, event_component: str):  # type: ignore[no-untyped-def]
    """The parsed --leader-elect* flags (None with --leader-elect=false); ValueError for inconsistent ones.

    `event_component` is the source of the LeaderElection Events (upstream's recorder's component).
    """
    if not args.leader_elect:
        return None
    from .client.leaderelection import LeaderElectionConfig

    config = LeaderElectionConfig(
        name=args.leader_elect_resource_name, namespace=args.leader_elect_resource_namespace,
        lease_duration=args.leader_elect_lease_duration, renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period, event_component=event_component)
    try:
        config.validate()
    except ValueError as exc:
        raise ValueError(
            f"invalid leader election flags: {exc} (--leader-elect-lease-duration {config.lease_duration:g}s, "
            f"--leader-elect-renew-deadline {config.renew_deadline:g}s, "
            f"--leader-elect-retry-period {config.retry_period:g}s)") from None
    return config


# -- controller-manager -----------------------------------------------------------


def cmd_controller_manager(args: argparse.Namespace) -> int:
    from .controllers.catalog import controller_options
    from .controllers.manager import ManagerOptions, run

    if args.kube_api_qps < 0 or args.kube_api_burst < 0 or not 0 <= args.port <= 65535:
        print("Error: --kube-api-qps/--kube-api-burst must be >= 0 and --port in 0..65535", file=sys.stderr)
        return 2
    try:
        election = leader_election_config(args, "kube-controller-manager")
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return run(ManagerOptions(
        kubeconfig=args.kubeconfig, context=args.context, qps=args.kube_api_qps, burst=args.kube_api_burst,
        bind_address=args.bind_address, port=args.port, controllers=list(args.controllers),
        controller_options=controller_options(args), leader_election=election,
        use_service_account_credentials=args.use_service_account_credentials))


def _add_controller_manager(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .controllers.catalog import add_controller_flags

    help_text = "run the controllers (kube-controller-manager's) against any API server"
    p = sub.add_parser("controller-manager", help=help_text, description=help_text + (
        "; with --leader-elect (default) only the process holding the Lease runs them, and a leader that "
        "loses it exits with status 1 ('leaderelection lost'): run it under a supervisor that restarts it"))
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of the API server")
    p.add_argument("--context", default="", help="kubeconfig context (default: current-context)")
    p.add_argument("--kube-api-qps", type=float, default=20.0,
                   help="QPS to use while talking with the API server (20)")
    p.add_argument("--kube-api-burst", type=int, default=30,
                   help="burst to use while talking with the API server (30)")
    p.add_argument("--bind-address", default="0.0.0.0", help="address /healthz, /readyz and /metrics are served on")
    p.add_argument("--port", type=int, default=0, help="plain HTTP port for /healthz, /readyz, /metrics (0: off)")
    p.add_argument("--use-service-account-credentials", type=parse_bool, nargs="?", const=True, default=False,
                   help="each controller writes with a token of its own ServiceAccount in kube-system (false; "
                        "needed under RBAC with the controller-manager.kubeconfig identity)")
    add_controller_flags(p)
    add_leader_election_flags(p, "kube-controller-manager")
    p.set_defaults(func=cmd_controller_manager)


# -- bench / doctor ---------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run
    from .bench.flags import bench_config

    try:
        config = bench_config(args)
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return run(config)


def _add_bench(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .bench.flags import add_bench_flags

    help_text = "measure a cluster under a scenario with clusterloader2's SLIs (exit 1 when an SLO fails)"
    p = sub.add_parser("bench", help=help_text, description=help_text)
    add_bench_flags(p)
    p.set_defaults(func=cmd_bench)


def cmd_doctor(args: argparse.Namespace) -> int:
    from .bench.doctor import run

    return run(args.kubeconfig, args.context, component_urls=args.component_url, as_json=args.json)


def _add_doctor(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    help_text = "check a running cluster against the large-cluster checklist (seeds 002/003) and say why"
    p = sub.add_parser("doctor", help=help_text, description=help_text + "; exit 1 when a check fails")
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of the cluster")
    p.add_argument("--context", default="", help="kubeconfig context (default: current-context)")
    p.add_argument("--component-url", action="append", default=[], metavar="NAME=URL",
                   help="a component's /readyz base URL, e.g. scheduler=http://127.0.0.1:10259 (repeatable)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=cmd_doctor)


# -- parser -----------------------------------------------------------------------

_ADDERS: List[Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]] = [
    _add_control_plane,
    _add_store,
    _add_snapshot,
    _add_fleet,
    _add_scheduler,
    _add_controller_manager,
    _add_bench,
    _add_doctor,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="megaplane",
        description="megaplane: a Kubernetes-compatible control plane built for a million nodes.",
    )
    parser.add_argument("--version", action="version", version=f"megaplane {__version__}")
    parser.add_argument("-v", "--v", dest="verbosity", type=int, default=0, help="log verbosity (0-4)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for add in _ADDERS:
        add(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
