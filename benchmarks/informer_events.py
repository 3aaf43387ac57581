"""Client CPU per watch event: a SharedInformer reading pod events from a real API server, against the floor.

    python benchmarks/informer_events.py           # quick: 2,000 pods (6,000 events), 3 rounds, < 1 minute
    python benchmarks/informer_events.py --full    # 20,000 pods (60,000 events), 5 rounds

The server is `megaplane apiserver` pinned to core 0, with a watch cache
window long enough to replay the whole run. A writer makes the events a
density run makes for every pod: created (as a ReplicaSet's pod, with
ownerReferences; the ServiceAccount admission adds its kube-api-access
volume), bound (pods/binding: nodeName and PodScheduled), Running
(pods/status: conditions, container status, pod IPs): ~2-3 KB each, three
events per pod. Then each reader, in its own process pinned to core 1, watches
the namespace from the resourceVersion before the first write, so the
server replays the same bytes to every reader as fast as it reads them, and
reports its own CPU time from the request until it has seen the last event:

- `informer`: a SharedInformer (HTTPTransport) with the pod informer's
  indexes in the controller-manager (namespace, controller uid,
  spec.nodeName) and twelve handler sets (the controller-manager's pod
  informer has about that many controllers on it), each enqueueing the
  object's key into its own set, as a controller's handlers do. Its list is
  answered locally as "empty at the start revision", so its watch replays
  every event (the per-event path is all that is measured).
- `informer-strip`: the same with `transform=strip_managed_fields`
  (client-go's TransformStripManagedFields): what a component that never
  reads managedFields saves, mostly cyclic-GC work on the cached objects.
- `orjson` (the floor): a bare uvloop + httptools reader that splits the
  body into lines and orjson.loads each line, nothing else.
- `split`: the same without orjson.loads: the transport's share.

Readers alternate round by round (A/B on a shared machine); each figure is
the median of its rounds. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CLIENT_CORE, apiserver, median, pinned  # noqa: E402

NAMESPACE = "bench"
READERS = ("split", "orjson", "informer", "informer-strip")
HANDLERS = 12


# -- the writer (the parent process) -------------------------------------------------------------------


def _pod(i: int, rs_uid: str) -> Dict[str, Any]:
    name = f"web-7d4b9c8f6d-{i:06d}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": NAMESPACE, "generateName": "web-7d4b9c8f6d-",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6d", "tier": "backend"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6d",
                                 "uid": rs_uid, "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "containers": [{
                "name": "app", "image": "registry.k8s.io/pause:3.10", "imagePullPolicy": "IfNotPresent",
                "args": ["--port=8080", "--log-level=info"],
                "env": [{"name": "MODE", "value": "bench"}],
                "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
            }],
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
        },
    }


def _status(pod: Dict[str, Any], i: int) -> Dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ip = f"fd00:10:{i // 200:x}::{i % 200 + 2:x}"
    conditions = [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                  for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")]
    pod["status"] = {
        "phase": "Running", "conditions": conditions, "hostIP": f"fd00::{i // 200:x}", "hostIPs": [{"ip": f"fd00::{i // 200:x}"}],
        "podIP": ip, "podIPs": [{"ip": ip}], "startTime": now, "qosClass": "Burstable",
        "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0, "started": True,
                               "image": "registry.k8s.io/pause:3.10", "imageID": "registry.k8s.io/pause@sha256:ee6521f2",
                               "containerID": f"containerd://{i:064x}", "state": {"running": {"startedAt": now}}}],
    }
    return pod


async def write_events(base: str, pods: int, concurrency: int = 16) -> Dict[str, Any]:
    """Create, bind and mark Running `pods` pods; returns the start and end revisions and the event size."""
    from megaplane.client import Client
    from megaplane.client.errors import AlreadyExistsError
    from megaplane.client.http import HTTPTransport

    async with Client(HTTPTransport(base, qps=0, max_connections=concurrency)) as client:
        for resource, obj in ((client.resource("namespaces"), {"metadata": {"name": NAMESPACE}}),
                              (client.resource("serviceaccounts"), {"metadata": {"name": "default", "namespace": NAMESPACE}})):
            try:
                await resource.create(obj)
            except AlreadyExistsError:
                pass
        api = client.resource("pods")
        start = (await api.list(NAMESPACE, limit=1))["metadata"]["resourceVersion"]
        last = [0]
        sizes: List[int] = []

        async def one(i: int) -> None:
            name = f"web-7d4b9c8f6d-{i:06d}"
            await api.create(_pod(i, "6f1c2a4e-0000-4000-8000-00000000beef"), NAMESPACE)
            await api.create({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": NAMESPACE},
                              "target": {"apiVersion": "v1", "kind": "Node", "name": f"node-{i % 2000:05d}"}},
                             NAMESPACE, subresource="binding", name=name)
            pod = await api.get(name, NAMESPACE)
            done = await api.update_status(_status(pod, i), NAMESPACE)
            last[0] = max(last[0], int(done["metadata"]["resourceVersion"]))
            if i < 10:
                sizes.append(len(json.dumps(done, separators=(",", ":"))))

        sem = asyncio.Semaphore(concurrency)

        async def bounded(i: int) -> None:
            async with sem:
                await one(i)

        await asyncio.gather(*(bounded(i) for i in range(pods)))
        sample = await api.get(f"web-7d4b9c8f6d-{0:06d}", NAMESPACE)
    volumes = [v["name"] for v in sample["spec"].get("volumes") or ()]
    return {"start_rv": start, "end_rv": str(last[0]), "running_pod_bytes": int(median([float(s) for s in sizes])),
            "kube_api_access": any(v.startswith("kube-api-access") for v in volumes)}


# -- the readers (one child process per round) ---------------------------------------------------------


def _watch_request(port: int, rv: str, bookmarks: bool) -> bytes:
    query = f"watch=1&resourceVersion={rv}" + ("&allowWatchBookmarks=true" if bookmarks else "")
    return (f"GET /api/v1/namespaces/{NAMESPACE}/pods?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: application/json\r\n\r\n").encode()


async def bare_reader(port: int, rv: str, end_rv: str, decode: bool) -> Dict[str, Any]:
    """httptools + line splitting (+ orjson.loads per line): stops at the event carrying `end_rv`."""
    import httptools
    import orjson

    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    marker = b'"resourceVersion":"%s"' % end_rv.encode()
    counts = {"events": 0, "bytes": 0}

    class Reader(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpResponseParser(self)
            self.partial = b""

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_body(self, body: bytes) -> None:
            if self.partial:
                body = self.partial + body
            lines = body.split(b"\n")
            self.partial = lines.pop()
            n = 0
            for line in lines:
                if line:
                    n += 1
                    if decode:
                        orjson.loads(line)
            counts["events"] += n
            counts["bytes"] += len(body) - len(self.partial)
            # The end check scans only the last complete line (not part of the floor's per-event work).
            if lines and marker in lines[-1] and not done.done():
                done.set_result(None)

    t0 = time.process_time()
    transport, _ = await loop.create_connection(Reader, "127.0.0.1", port)
    transport.write(_watch_request(port, rv, bookmarks=False))  # type: ignore[attr-defined]
    await done
    cpu = time.process_time() - t0
    transport.close()
    return {"cpu_s": cpu, "events": counts["events"], "event_bytes": counts["bytes"] // max(counts["events"], 1)}


async def informer_reader(port: int, rv: str, end_rv: str, strip: bool) -> Dict[str, Any]:
    from megaplane.client import NODE_NAME_INDEX, ResourceClient, node_name_index, object_key
    from megaplane.client.cache import final_state
    from megaplane.client.http import HTTPTransport
    from megaplane.client.informer import SharedInformer
    from megaplane.client.resources import lookup
    from megaplane.controllers.podutil import CONTROLLER_UID_INDEX, controller_uid_index

    class ListAtStart(HTTPTransport):
        """Answers the informer's list with "no pods at the start revision": its watch replays every event."""

        async def list(self, ref: Any, namespace: Optional[str], params: Any = None) -> bytes:
            return b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"%s"},"items":[]}' % rv.encode()

    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    end = int(end_rv)
    counts = {"events": 0}
    transport = ListAtStart(f"http://127.0.0.1:{port}", qps=0)
    informer = SharedInformer(ResourceClient(transport, lookup("pods")), namespace=NAMESPACE,
                              indexers={CONTROLLER_UID_INDEX: controller_uid_index, NODE_NAME_INDEX: node_name_index},
                              **_strip_option(strip))

    def last(obj: Dict[str, Any]) -> None:
        counts["events"] += 1
        if int(obj["metadata"]["resourceVersion"]) >= end and not done.done():
            done.set_result(None)

    def controller() -> Any:
        queued: set = set()

        def enqueue(obj: Any) -> None:
            queued.add(object_key(final_state(obj)))

        return enqueue

    for _ in range(HANDLERS):
        enqueue = controller()
        informer.add_event_handler(on_add=enqueue, on_update=lambda old, new, enqueue=enqueue: enqueue(new),
                                   on_delete=enqueue)
    informer.add_event_handler(on_add=last, on_update=lambda old, new: last(new),
                               on_delete=lambda obj: last(final_state(obj)))
    t0 = time.process_time()
    await informer.start()
    await done
    cpu = time.process_time() - t0
    await informer.stop()
    await transport.close()
    stats = informer.statistics()
    # A relist here (its list answers "empty") would mean the watch failed: the run is then not a measurement.
    return {"cpu_s": cpu, "events": counts["events"], "objects": len(informer.indexer),
            "watches": stats["watches"], "relists": stats["relists"]}


def _strip_option(strip: bool) -> Dict[str, Any]:
    """SharedInformer's transform option, only when asked for (so the script also runs against a client
    from before that option: the A/B of a change)."""
    if not strip:
        return {}
    from megaplane.client.cache import strip_managed_fields

    return {"transform": strip_managed_fields}


def run_reader(kind: str, port: int, rv: str, end_rv: str) -> Dict[str, Any]:
    import uvloop

    if kind.startswith("informer"):
        return uvloop.run(informer_reader(port, rv, end_rv, strip=kind == "informer-strip"))
    return uvloop.run(bare_reader(port, rv, end_rv, decode=kind == "orjson"))


def reader_round(kind: str, port: int, rv: str, end_rv: str) -> Dict[str, Any]:
    cmd = pinned([sys.executable, os.path.abspath(__file__), "--reader", kind, str(port), rv, end_rv], CLIENT_CORE)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, timeout=300).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--pods", type=int)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--readers", default=",".join(READERS), help="comma-separated subset of " + ",".join(READERS))
    ap.add_argument("--reader", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reader:
        kind, port, rv, end_rv = args.reader
        print(json.dumps(run_reader(kind, int(port), rv, end_rv)), flush=True)
        return
    pods = args.pods or (20_000 if args.full else 2_000)
    rounds = args.rounds or (5 if args.full else 3)
    readers = [r for r in args.readers.split(",") if r]
    extra = ["--enable-admission-plugins", "ServiceAccount", "--watch-cache-window", "1h", "--default-watch-cache-size", str(4 * pods + 1000)]
    print(f"informer_events: {pods:,} pods x 3 events, {rounds} rounds of {', '.join(readers)}", flush=True)
    with apiserver(extra) as (_, base):
        port = int(base.rsplit(":", 1)[1])
        t0 = time.perf_counter()
        written = asyncio.run(write_events(base, pods))
        print(f"  wrote {3 * pods:,} events in {time.perf_counter() - t0:.1f}s (a Running pod is {written['running_pod_bytes']} B, "
              f"kube-api-access volume: {written['kube_api_access']})", flush=True)
        runs: Dict[str, List[Dict[str, Any]]] = {r: [] for r in readers}
        for i in range(rounds):
            for kind in readers if i % 2 == 0 else readers[::-1]:
                res = reader_round(kind, port, written["start_rv"], written["end_rv"])
                res["us_per_event"] = res["cpu_s"] / max(res["events"], 1) * 1e6
                runs[kind].append(res)
                print(f"  round {i + 1} {kind:<9} {res['us_per_event']:6.2f} us/event ({res['events']:,} events)", flush=True)
    figures = {k: median([r["us_per_event"] for r in v]) for k, v in runs.items()}
    event_bytes = int(median([float(r["event_bytes"]) for v in runs.values() for r in v if "event_bytes" in r]))
    events_ok = all(r["events"] == 3 * pods and not r.get("relists") for v in runs.values() for r in v)
    print()
    print("| reader | client CPU us/event (median) | vs orjson floor |")
    print("|---|---:|---:|")
    floor = figures.get("orjson")
    for k, v in figures.items():
        print(f"| {k} | {v:.2f} | {v / floor:.2f}x |" if floor else f"| {k} | {v:.2f} | - |")
    out: Dict[str, Any] = {
        "benchmark": "informer_events", "pods": pods, "events": 3 * pods, "rounds": rounds,
        "event_bytes": event_bytes, "running_pod_bytes": written["running_pod_bytes"], "kube_api_access": written["kube_api_access"],
        "us_per_event": figures, "events_ok": events_ok,
        "runs": {k: [round(r["us_per_event"], 3) for r in v] for k, v in runs.items()},
    }
    if floor and "informer" in figures:
        out["informer_over_floor_us"] = figures["informer"] - floor
        out["informer_vs_floor"] = figures["informer"] / floor
    print(json.dumps(out), flush=True)
    if not events_ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
