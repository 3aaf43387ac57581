"""What tenant admission (LimitRanger, ServiceAccount, ResourceQuota) costs a pod create.

    python benchmarks/admission_pods.py           # quick: 1000 pods per configuration and round, 5 rounds
    python benchmarks/admission_pods.py --full    # 5000 pods, 7 rounds

Claim under test: with the plugins on and a namespace that has no LimitRange
and no ResourceQuota (the fleet's and the scheduler's namespaces), a pod
create costs no more than noise over the plugins off: every lookup is a
watch-cache read (the `default` ServiceAccount by key, the namespace's
LimitRanges and quotas by an index range that is empty), nothing reads
storage. With a LimitRange and a quota in the namespace the create pays the
defaulting and a second write (admission's CAS on the quota's status.used,
as upstream), shown for scale. `off_sized` creates, with the plugins off, the
pods ServiceAccount admission would have made (its projected token volume
and mount in the body): the difference between it and `on` is the plugins'
own work, between `off` and it the cost of the bigger pod downstream
(defaulting, validation, managedFields, encoding).

Each configuration is a fresh ControlPlane in this process on the embedded
store (the WAL modes `megaplane up` uses), pods created one after another
through the registry's pod store (the path every transport ends in), with
the fleet's pod body (harness.pod_template). CPU per pod is this process's
(`time.process_time`). Configurations alternate within each round; the
medians are reported and the last line is one JSON object with the figures,
the reference being `off` measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import markdown_table, pod_template, without_resource_version  # noqa: E402

CONFIGS = ("off", "off_sized", "on", "on_tenant")
UP_WAL_MODES = [(b"/registry/leases/", "none"), (b"/registry/events/", "none")]


async def run(config: str, pods: int) -> Dict[str, float]:
    from megaplane.apimachinery.resources import lookup
    from megaplane.apiserver.registry.options import WriteOptions
    from megaplane.apiserver.registry.plugins import DEFAULT_ADMISSION_PLUGINS
    from megaplane.apiserver.server import APIServerConfig
    from megaplane.controlplane import ControlPlane, ControlPlaneConfig
    from megaplane.store import StoreConfig

    plugins = set(DEFAULT_ADMISSION_PLUGINS) | {"ServiceAccount"}
    if config in ("off", "off_sized"):
        plugins -= {"LimitRanger", "ServiceAccount", "ResourceQuota"}
    data = tempfile.mkdtemp(prefix="megaplane-admission-")
    plane = ControlPlane(ControlPlaneConfig(data_dir=data, store=StoreConfig(wal_modes=UP_WAL_MODES), port=0,
                                            secure_port=0, controllers=[],
                                            api=APIServerConfig(admission_plugins=frozenset(plugins))))
    await plane.start()
    try:
        registry = plane.api.registry
        opts = WriteOptions()

        def store(plural: str) -> Any:
            r = lookup("", plural)
            assert r is not None
            return registry.store(r)

        ns = "bench"
        await store("namespaces").create("", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, opts)
        await store("serviceaccounts").create(ns, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                   "metadata": {"name": "default"}}, opts)
        if config == "on_tenant":
            await store("limitranges").create(ns, {
                "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
                "spec": {"limits": [{"type": "Container", "max": {"cpu": "4"},
                                     "default": {"ephemeral-storage": "1Gi"}}]}}, opts)
            quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "pods"},
                     "spec": {"hard": {"pods": str(pods * 2)}}}
            created = json.loads((await store("resourcequotas").create(ns, quota, opts)).data)
            created["status"] = {"hard": quota["spec"]["hard"], "used": {"pods": "0"}}  # the controller's first sync
            await store("resourcequotas").update(ns, "pods", created, opts, "status")
        template = without_resource_version(pod_template(ns)).decode()
        pod_store = store("pods")
        bodies = [json.loads(template.replace("@NAME@", f"pod-{i}").replace("@N@", "0")) for i in range(pods)]
        if config == "off_sized":  # what ServiceAccount admission adds, sent by the client: the bigger pod's own cost
            from megaplane.apiserver.registry.serviceaccount import DEFAULT_API_TOKEN_MOUNT_PATH, token_volume

            for i, body in enumerate(bodies):
                spec = body["spec"]
                spec["serviceAccountName"] = spec["serviceAccount"] = "default"
                spec["volumes"].append(token_volume(f"kube-api-access-{i:05d}"))
                spec["containers"][0]["volumeMounts"].append(
                    {"name": f"kube-api-access-{i:05d}", "readOnly": True, "mountPath": DEFAULT_API_TOKEN_MOUNT_PATH})
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for body in bodies:
            await pod_store.create(ns, body, opts)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        return {"cpu_us_per_pod": cpu / pods * 1e6, "pods_per_s": pods / wall}
    finally:
        await plane.stop()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="5000 pods per configuration, 7 rounds")
    args = p.parse_args()
    # Several short rounds, configurations interleaved: the machine's load drifts, a median of rounds is stabler.
    pods, rounds = (5000, 7) if args.full else (1000, 5)
    results: Dict[str, List[Dict[str, float]]] = {c: [] for c in CONFIGS}
    for _ in range(rounds):
        for config in CONFIGS:
            results[config].append(asyncio.run(run(config, pods)))
    figures = {c: {k: statistics.median(r[k] for r in results[c]) for k in results[c][0]} for c in CONFIGS}
    base = figures["off"]["cpu_us_per_pod"]
    rows = [[c, f"{figures[c]['cpu_us_per_pod']:.1f}", f"{figures[c]['pods_per_s']:.0f}",
             f"{figures[c]['cpu_us_per_pod'] / base:.3f}"] for c in CONFIGS]
    print(markdown_table(["admission", "CPU µs / pod create", "pods / s", "vs off"], rows))
    print(json.dumps({"benchmark": "admission_pods", "pods": pods, "rounds": rounds, "figures": figures,
                      "reference": "off",
                      "ratio_on_off": figures["on"]["cpu_us_per_pod"] / base,
                      "ratio_on_off_sized": figures["on"]["cpu_us_per_pod"] / figures["off_sized"]["cpu_us_per_pod"],
                      "ratio_on_tenant_off": figures["on_tenant"]["cpu_us_per_pod"] / base}))


if __name__ == "__main__":
    main()
