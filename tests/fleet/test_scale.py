"""A fleet of thousands of nodes against `megaplane apiserver`: every node registered, every Lease renewed.

Sizes: MEGAPLANE_SCALE=ci (the default) runs 2,000 nodes; full runs 20,000.
Capacity figures are benchmarks/fleet_capacity.py's; this checks behaviour.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile

import kubernetes
import pytest

from tests.fleet.conftest import eventually, start_fleet, start_server

NODES = 20_000 if os.environ.get("MEGAPLANE_SCALE", "ci") == "full" else 2_000


@pytest.mark.slow
def test_every_node_registered_and_every_lease_renewed() -> None:
    root = tempfile.mkdtemp(prefix="megaplane-fleet-scale-")
    server = start_server(root, "apiserver")
    fleet = None
    try:
        fleet = start_fleet(server, "scale", ["--nodes", str(NODES), "--node-lease-duration-seconds", "8"])
        started = datetime.datetime.now(datetime.timezone.utc)
        core = kubernetes.client.CoreV1Api(server.api_client())
        coordination = kubernetes.client.CoordinationV1Api(server.api_client())
        assert f"registered {NODES}/{NODES} nodes" in fleet.output()

        def all_renewed_since_start() -> bool:
            leases = coordination.list_namespaced_lease("kube-node-lease").items
            return len(leases) == NODES and all(lease.spec.renew_time > started for lease in leases)

        eventually(all_renewed_since_start, f"all {NODES} leases renewed", timeout=60, every=1.0)
        nodes = core.list_node(limit=500)
        assert nodes.metadata.remaining_item_count == NODES - 500
        assert len({n.spec.pod_cidr for n in nodes.items}) == 500
    finally:
        if fleet is not None:
            fleet.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
