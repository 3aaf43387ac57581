"""CPU per Lease PUT through `APIServer.handle` in process: the API server's own cost of a renewal, no sockets.

200 Leases are created, then renewed round after round (a new renewTime
and the last resourceVersion each time), every request a `Request` handed
to `APIServer.handle` as the HTTP transport hands it, answered inline or
awaited. Measured: process CPU per PUT over the rounds after the first
five. Reference in the same run: the storage floor, `Store.compare_and_put`
of each renewed Lease's bytes at its current revision (what any API server
on this store must at least pay). The HTTP and TLS costs around it are
`api_lease_updates.py`'s.

    python benchmarks/api_lease_inprocess.py          # quick: 200 Leases x 30 rounds (a few seconds)
    python benchmarks/api_lease_inprocess.py --full   # 2,000 Leases x 60 rounds

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any, Dict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402

from megaplane.apiserver.http.messages import Request  # noqa: E402
from megaplane.apiserver.server import APIServer, APIServerConfig  # noqa: E402
from megaplane.storage import EmbeddedStorage  # noqa: E402
from megaplane.store import Store, StoreConfig  # noqa: E402
from megaplane.store.kv import MOD_REVISION, VALUE  # noqa: E402

BASE = "/apis/coordination.k8s.io/v1/namespaces/bench/leases"
HEADERS = {"content-type": "application/json", "user-agent": "kubelet/v1.32.0 (linux/amd64)"}


def lease(i: int, stamp: str, rv: str = "") -> bytes:
    meta: Dict[str, Any] = {"name": f"l{i}", "namespace": "bench"}
    if rv:
        meta["resourceVersion"] = rv
    return orjson.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                         "spec": {"holderIdentity": f"l{i}", "leaseDurationSeconds": 40, "renewTime": stamp}})


async def run(leases: int, rounds: int) -> Dict[str, float]:
    store = Store(None, StoreConfig())
    api = APIServer(EmbeddedStorage(store), APIServerConfig())
    await api.start()

    async def call(method: str, path: str, body: bytes) -> Any:
        r = api.handle(Request(method, path, "", HEADERS, body, None))
        return await r if asyncio.iscoroutine(r) else r

    try:
        await call("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": "bench"}}))
        rv: Dict[int, str] = {}
        for i in range(leases):
            answer = await call("POST", BASE, lease(i, "2026-11-22T10:00:00.000000Z"))
            rv[i] = orjson.loads(answer.body)["metadata"]["resourceVersion"]
        cpu = 0.0
        count = 0
        for rnd in range(rounds):
            t0 = time.process_time()
            for i in range(leases):
                answer = await call("PUT", f"{BASE}/l{i}", lease(i, f"2026-11-22T10:{rnd // 60:02d}:{rnd % 60:02d}."
                                                                  f"{i:06d}Z", rv[i]))
                if answer.status != 200:
                    raise RuntimeError(answer.body)
                rv[i] = orjson.loads(answer.body)["metadata"]["resourceVersion"]
            if rnd >= 5:
                cpu += time.process_time() - t0
                count += leases
            await asyncio.sleep(0)
        # The floor: the store's compare-and-put of the bytes the API server stored, at their revision.
        keys = [b"/registry/leases/bench/l%d" % i for i in range(leases)]
        t0 = time.process_time()
        puts = 0
        for _ in range(5):
            for key in keys:
                kv = store.get(key)
                assert kv is not None
                store.compare_and_put(key, kv[MOD_REVISION], kv[VALUE])
                puts += 1
        floor = (time.process_time() - t0) / puts
    finally:
        await api.stop()
    return {"us_per_put": 1e6 * cpu / count, "store_floor_us_per_put": 1e6 * floor, "puts_measured": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    leases, rounds = (2000, 60) if args.full else (200, 30)
    r = asyncio.run(run(leases, rounds))
    print(f"| Lease PUT through APIServer.handle | {r['us_per_put']:.1f} us CPU |\n"
          f"| Store.compare_and_put of the same bytes (floor) | {r['store_floor_us_per_put']:.1f} us CPU |")
    print(json.dumps({"leases": leases, "rounds": rounds, **r}))


if __name__ == "__main__":
    main()
