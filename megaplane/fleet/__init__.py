"""megaplane.fleet: simulated kubelets, as many per process as the API server can take.

Owns `megaplane fleet` and the nodes of `megaplane up --nodes N`: Node
registration (`nodes`), per-node pod ranges and pod IPs (`ipam`), Lease
renewals and node status heartbeats off one scheduler (`heartbeats`),
pipelined Lease PUTs on connections of its own (`wire`), per-node state in
flat columns (`columns`), the fault annotations of the fleet's Nodes (`nodewatch`), the phases of pods
bound to its nodes (`pods`), the fleet's /metrics (`metrics`), its flags
(`flags`, `config`) and the component tying them together (`fleet`).

Built only on megaplane.client (a Client over HTTP, or the loopback
transport inside `megaplane up`; `wire` writes the same requests on
sockets of its own, with the client's kubeconfig): it must not import megaplane.apiserver,
megaplane.storage, megaplane.store or megaplane.etcd, so it drives any
Kubernetes API server.
"""

from .config import DEFAULT_POD_CIDR, FleetConfig, FleetConfigError, Taint
from .fleet import Fleet
from .nodes import FAULT_ANNOTATION
from .pods import EXIT_CODE_ANNOTATION, RUN_SECONDS_ANNOTATION

__all__ = [
    "DEFAULT_POD_CIDR",
    "EXIT_CODE_ANNOTATION",
    "FAULT_ANNOTATION",
    "Fleet",
    "FleetConfig",
    "FleetConfigError",
    "RUN_SECONDS_ANNOTATION",
    "Taint",
    "run",
]


def run(config: FleetConfig, kubeconfig: str, context: str = "") -> None:
    """`megaplane fleet`: run the fleet over HTTP until SIGINT / SIGTERM (progress on stdout)."""
    from megaplane.client import Client, load_kubeconfig
    from megaplane.client.component import ClientComponent
    from megaplane.runtime import run_forever

    from .wire import Endpoint

    def build() -> list:
        # No client-side rate limit: N kubelets each have their own; one limit for all would starve them.
        client = Client.from_kubeconfig(kubeconfig, context or None, qps=0, burst=0,
                                        max_connections=config.max_connections)
        endpoint = Endpoint.from_config(load_kubeconfig(kubeconfig, context or None)) \
            if config.max_pipelined_requests else None
        return [ClientComponent(client), Fleet(client, config, progress=lambda line: print(line, flush=True),
                                               endpoint=endpoint)]

    def started() -> None:
        print(f"megaplane fleet: {config.nodes} nodes {config.node_name(config.node_index_start)}.."
              f"{config.node_name(config.node_index_start + max(config.nodes - 1, 0))} running"
              + (f"; metrics on {config.metrics_bind_address}" if config.metrics_bind_address else ""), flush=True)

    run_forever(build, on_started=started)
