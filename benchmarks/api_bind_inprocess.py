"""CPU per pod bind and per scheduling Event through `APIServer.handle` in process: the scheduler's two writes.

For every pod it places the scheduler makes two writes (issue 10 wants
>= 5,000 pods/s end to end): POST pods/{name}/binding, then a `Scheduled`
events.k8s.io/v1 Event. Here pods as a ReplicaSet creates them are made
first (not measured), then each is bound with the scheduler's Binding body
and gets the scheduler's Event, every request a `Request` handed to
`APIServer.handle` as the HTTP transport hands it (answered inline or
awaited). Measured: process CPU per bind and per Event create, in batches
(binds of a batch of pods, then their Events), the first batch left out.

Reference in the same run: the storage floor, `Store.compare_and_put` of
each bound pod's stored bytes at its current revision, and of each Event's
stored bytes as a create under a new key (what any API server on this store
must at least pay per write).

    python benchmarks/api_bind_inprocess.py          # quick: 3,000 pods (a few seconds)
    python benchmarks/api_bind_inprocess.py --full   # 20,000 pods

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402

from megaplane.apiserver.http.messages import Request  # noqa: E402
from megaplane.apiserver.server import APIServer, APIServerConfig  # noqa: E402
from megaplane.storage import EmbeddedStorage  # noqa: E402
from megaplane.store import Store, StoreConfig  # noqa: E402
from megaplane.store.kv import MOD_REVISION, VALUE  # noqa: E402

NS = "bench"
PODS = f"/api/v1/namespaces/{NS}/pods"
EVENTS = f"/apis/events.k8s.io/v1/namespaces/{NS}/events"
# What megaplane.client sends (the scheduler's client).
HEADERS = {"content-type": "application/json", "accept": "application/json", "user-agent": "megaplane-client/0.1"}
BATCH = 500


def pod(i: int) -> bytes:
    """A pod as the ReplicaSet controller creates it from a Deployment's template."""
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"web-7d4b9-{i:06d}", "namespace": NS, "generateName": "web-7d4b9-",
                     "labels": {"app": "web", "pod-template-hash": "7d4b9"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9",
                                          "uid": "6f1c2f7e-0000-4000-8000-000000000001", "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {"containers": [{"name": "web", "image": "registry.k8s.io/pause:3.9",
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    })


def binding(name: str, uid: str, node: str) -> bytes:
    """The scheduler's Binding body (megaplane.scheduler.scheduler._bind)."""
    return orjson.dumps({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": NS, "uid": uid},
                         "target": {"kind": "Node", "name": node}})


def event(name: str, uid: str, rv: str, node: str, now: float) -> bytes:
    """The scheduler's Scheduled Event (megaplane.scheduler.events.EventRecorder.event)."""
    stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return orjson.dumps({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": f"{name}.{int(now * 1e9):x}", "namespace": NS},
        "eventTime": stamp, "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-bench", "action": "Binding", "reason": "Scheduled", "type": "Normal",
        "note": f"Successfully assigned {NS}/{name} to {node}",
        "regarding": {"kind": "Pod", "namespace": NS, "name": name, "uid": uid, "apiVersion": "v1",
                      "resourceVersion": rv},
    })


async def run(pods: int) -> Dict[str, float]:
    store = Store(None, StoreConfig())
    api = APIServer(EmbeddedStorage(store), APIServerConfig())
    await api.start()

    async def call(method: str, path: str, body: bytes) -> Any:
        r = api.handle(Request(method, path, "", HEADERS, body, None))
        answer = await r if asyncio.iscoroutine(r) else r
        if answer.status not in (200, 201):
            raise RuntimeError(f"{method} {path}: {answer.status} {answer.body!r}")
        return answer

    try:
        await call("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": NS}}))
        made: List[Dict[str, Any]] = []
        for i in range(pods):
            made.append(orjson.loads((await call("POST", PODS, pod(i))).body)["metadata"])
        bind_cpu = event_cpu = 0.0
        counted = 0
        event_keys: List[bytes] = []
        for start in range(0, pods, BATCH):
            batch = made[start:start + BATCH]
            bodies = [binding(m["name"], m["uid"], f"node-{(start + j) % 1000:04d}") for j, m in enumerate(batch)]
            t0 = time.process_time()
            for m, body in zip(batch, bodies):
                await call("POST", f"{PODS}/{m['name']}/binding", body)
            t1 = time.process_time()
            now = time.time()
            events = [event(m["name"], m["uid"], m["resourceVersion"], f"node-{(start + j) % 1000:04d}", now + j * 1e-6)
                      for j, m in enumerate(batch)]
            t2 = time.process_time()
            for body in events:
                await call("POST", EVENTS, body)
            t3 = time.process_time()
            if start:  # the first batch warms up
                bind_cpu += t1 - t0
                event_cpu += t3 - t2
                counted += len(batch)
            event_keys += [b"/registry/events/%s/%s" % (NS.encode(), orjson.loads(e)["metadata"]["name"].encode())
                           for e in events]
            await asyncio.sleep(0)
        # The floor: the store's compare-and-put of the bytes the API server stored (bound pods at their
        # revision; Events as creates under new keys).
        pod_keys = [b"/registry/pods/%s/%s" % (NS.encode(), m["name"].encode()) for m in made]
        t0 = time.process_time()
        for key in pod_keys:
            kv = store.get(key)
            assert kv is not None
            store.compare_and_put(key, kv[MOD_REVISION], kv[VALUE])
        pod_floor = (time.process_time() - t0) / len(pod_keys)
        values = []
        for key in event_keys:
            kv = store.get(key)
            assert kv is not None
            values.append((key + b"-floor", kv[VALUE]))
        t0 = time.process_time()
        for key, value in values:
            store.compare_and_put(key, 0, value)
        event_floor = (time.process_time() - t0) / len(values)
    finally:
        await api.stop()
    return {"bind_us": 1e6 * bind_cpu / counted, "event_us": 1e6 * event_cpu / counted,
            "store_floor_bind_us": 1e6 * pod_floor, "store_floor_event_us": 1e6 * event_floor,
            "pods_measured": counted}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    pods = 20_000 if args.full else 3_000
    r = asyncio.run(run(pods))
    print(f"| POST pods/{{name}}/binding through APIServer.handle | {r['bind_us']:.1f} us CPU |\n"
          f"| POST events.k8s.io/v1 Event through APIServer.handle | {r['event_us']:.1f} us CPU |\n"
          f"| Store.compare_and_put of the bound pod's bytes (floor) | {r['store_floor_bind_us']:.1f} us CPU |\n"
          f"| Store.compare_and_put creating the Event's bytes (floor) | {r['store_floor_event_us']:.1f} us CPU |")
    print(json.dumps({"pods": pods, **r}))


if __name__ == "__main__":
    main()
