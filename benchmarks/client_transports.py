"""The same verbs through megaplane.client over HTTP, over the loopback transport, and as raw registry calls.

    python benchmarks/client_transports.py           # quick: 1 s per figure, 2 rounds, < 1 minute
    python benchmarks/client_transports.py --full    # 5 s per figure, 3 rounds, 128 workers

Claim under test: the in-process (loopback) transport is measurably cheaper
than HTTP for the components `megaplane up` runs in its own process.

Transports, each against a fresh control plane on the embedded store with
the store configuration `megaplane up` uses (a data dir, buffered WAL,
Leases and Events without one):

    http      megaplane.client over HTTPTransport (max_connections = workers,
              no client rate limit) against a `megaplane up` subprocess
              pinned to core 0; this process (the client) on core 1
    loopback  megaplane.client over LoopbackTransport to a ControlPlane
              built in this process (core 1)
    raw       the registry's ResourceStore verbs called directly (the
              floor of any in-process transport)

Operations (each worker is one asyncio task issuing one request at a time):

    create      POST small ConfigMaps, unique names
    update      PUT of the worker's own Lease with the resourceVersion of
                its last answer (optimistic concurrency, as a kubelet renews)
    list        LIST a namespace of 1000 ConfigMaps in one page
    list_paged  the same 1000 followed by limit=100 / continue (one op = 10 pages)
    watch       events delivered to one Lease watcher while `update` runs;
                checked: the watcher got every successful update

Client verbs are the `_raw` ones (bytes in and out), so the figures are the
transport's and the server's work, not the caller's JSON decoding; the raw
registry calls take the dict the transport would have decoded. CPU per op:
in-process it is this process's CPU (`time.process_time`, every thread);
for HTTP it is the server's CPU from /proc plus this process's (the
client's), each shown. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CLIENT_CORE, apiserver, cpu_seconds, markdown_table  # noqa: E402

TRANSPORTS = ("http", "loopback", "raw")
OPS = ("create", "update", "list", "list_paged", "watch")
LIST_OBJECTS = 1000
PAGE = 100
LEASES_NS = "bench-leases"
CREATE_NS = "bench-create"
LIST_NS = "bench-list"
# The store configuration of `megaplane up` (megaplane/cli.py): Leases and Events are not logged.
UP_WAL_MODES = {b"/registry/leases/": "none", b"/registry/events/": "none"}

_RV = re.compile(rb'"resourceVersion":"(\d+)"')
_CONTINUE = re.compile(rb'"continue":"([^"]*)"')


def configmap(ns: str, name: str) -> Dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": {"config.yaml": "log-level: info\nreplicas: 3\n", "owner": name}}


def lease(ns: str, name: str, rv: str, n: int) -> Dict[str, Any]:
    meta: Dict[str, Any] = {"name": name, "namespace": ns}
    if rv:
        meta["resourceVersion"] = rv
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                     "renewTime": f"2026-11-22T10:00:00.{n:06d}Z"}}


def dumps(obj: Dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(obj)


# -- the verbs, per transport --------------------------------------------------------------------


class ClientVerbs:
    """The operations through megaplane.client (any transport)."""

    def __init__(self, client: Any) -> None:
        self.configmaps = client.resource("configmaps")
        self.leases = client.resource("coordination.k8s.io/v1", "leases")
        self.namespaces = client.resource("namespaces")

    async def namespace(self, name: str) -> None:
        await self.namespaces.create_raw(dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
                                         None)

    async def create_configmap(self, ns: str, name: str) -> None:
        await self.configmaps.create_raw(dumps(configmap(ns, name)), ns)

    async def create_lease(self, ns: str, name: str) -> str:
        return _rv(await self.leases.create_raw(dumps(lease(ns, name, "", 0)), ns))

    async def renew(self, ns: str, name: str, rv: str, n: int) -> str:
        return _rv(await self.leases.update_raw(name, dumps(lease(ns, name, rv, n)), ns))

    async def list(self, ns: str) -> int:
        await self.configmaps.list_raw(ns)
        return 1

    async def list_paged(self, ns: str) -> int:
        token: Optional[str] = None
        pages = 0
        while True:
            body = await self.configmaps.list_raw(ns, limit=PAGE, continue_=token)
            pages += 1
            m = _CONTINUE.search(body, 0, 400)
            token = m.group(1).decode() if m else None
            if not token:
                return pages

    async def watch(self, ns: str, rv: str, seen: Callable[[int], None]) -> Callable[[], Awaitable[None]]:
        stream = await self.leases.watch_raw(ns, resource_version=rv)

        async def read() -> None:
            async for _line in stream:
                seen(1)

        task = asyncio.ensure_future(read())

        async def stop() -> None:
            await stream.close()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return stop


class RawVerbs:
    """The operations as calls on the registry's ResourceStores: what any in-process transport costs at least."""

    def __init__(self, registry: Any, loopback: ClientVerbs) -> None:
        from megaplane.apimachinery.resources import by_path
        from megaplane.apiserver.registry.options import WriteOptions

        self.configmaps = registry.store(by_path("", "v1", "configmaps"))
        self.leases = registry.store(by_path("coordination.k8s.io", "v1", "leases"))
        self.opts = WriteOptions()
        self._loopback = loopback

    async def namespace(self, name: str) -> None:
        await self._loopback.namespace(name)

    async def create_configmap(self, ns: str, name: str) -> None:
        await self.configmaps.create(ns, configmap(ns, name), self.opts)

    async def create_lease(self, ns: str, name: str) -> str:
        return _rv((await self.leases.create(ns, lease(ns, name, "", 0), self.opts)).data)

    async def renew(self, ns: str, name: str, rv: str, n: int) -> str:
        return _rv((await self.leases.update(ns, name, lease(ns, name, rv, n), self.opts)).data)

    def _list_options(self, q: Dict[str, str], watch: bool = False) -> Any:
        from megaplane.apimachinery.listoptions import list_options

        return list_options(q, self.configmaps.resource if not watch else self.leases.resource, watch=watch)

    async def list(self, ns: str) -> int:
        await self.configmaps.list(ns, self._list_options({}))
        return 1

    async def list_paged(self, ns: str) -> int:
        token = ""
        pages = 0
        while True:
            q = {"limit": str(PAGE)}
            if token:
                q["continue"] = token
            page = await self.configmaps.list(ns, self._list_options(q))
            pages += 1
            token = page.continue_token
            if not token:
                return pages

    async def watch(self, ns: str, rv: str, seen: Callable[[int], None]) -> Callable[[], Awaitable[None]]:
        from megaplane.apiserver.watchcache import json_line

        plan = self.leases.watch(ns, "", self._list_options({"resourceVersion": rv}, watch=True))

        def offer(events: List[Any]) -> None:
            n = 0
            for ev in events:
                if ev.obj.facts.namespace == ns:
                    json_line(ev)  # the line a watcher is handed, encoded once for all
                    n += 1
            seen(n)

        offer(plan.replay)
        plan.cache.listeners.append(offer)

        async def stop() -> None:
            plan.cache.listeners.remove(offer)

        return stop


def _rv(body: bytes) -> str:
    m = _RV.search(body)
    if m is None:
        raise RuntimeError(f"no resourceVersion in {body[:200]!r}")
    return m.group(1).decode()


# -- measuring ----------------------------------------------------------------------------------


class Meter:
    """CPU seconds of this process and (for HTTP) of the server, read together."""

    def __init__(self, server_pid: Optional[int]) -> None:
        self.server_pid = server_pid

    def read(self) -> Tuple[float, float, float]:
        server = cpu_seconds(self.server_pid) if self.server_pid else 0.0
        return time.perf_counter(), time.process_time(), server


def figure(meter: Meter, start: Tuple[float, float, float], ops: int, **extra: Any) -> Dict[str, Any]:
    t1, c1, s1 = meter.read()
    wall, client, server = t1 - start[0], c1 - start[1], s1 - start[2]
    per = 1e6 / max(ops, 1)
    out = {"ops": ops, "seconds": wall, "ops_per_s": ops / wall, "cpu_us_per_op": (client + server) * per,
           "client_cpu_us_per_op": client * per, "server_cpu_us_per_op": server * per}
    out.update(extra)
    return out


async def workers(n: int, seconds: float, step: Callable[[int, int], Awaitable[int]]) -> int:
    """`n` tasks calling `step(worker, k)` back to back for `seconds`; the ops they report done."""
    deadline = time.perf_counter() + seconds
    done = [0] * n

    async def work(w: int) -> None:
        k = 0
        while time.perf_counter() < deadline:
            done[w] += await step(w, k)
            k += 1

    await asyncio.gather(*(work(w) for w in range(n)))
    return sum(done)


async def run_ops(verbs: Any, meter: Meter, n_workers: int, seconds: float) -> Dict[str, Dict[str, Any]]:
    for ns in (LEASES_NS, CREATE_NS, LIST_NS):
        await verbs.namespace(ns)
    # Setup, not measured: the collection to list and one Lease per worker.
    sem = asyncio.Semaphore(32)

    async def fill(i: int) -> None:
        async with sem:
            await verbs.create_configmap(LIST_NS, f"cm-{i:05d}")

    await asyncio.gather(*(fill(i) for i in range(LIST_OBJECTS)))
    names = [f"node-{w:05d}" for w in range(n_workers)]
    rvs = list(await asyncio.gather(*(verbs.create_lease(LEASES_NS, name) for name in names)))
    out: Dict[str, Dict[str, Any]] = {}

    async def create(w: int, k: int) -> int:
        await verbs.create_configmap(CREATE_NS, f"cm-{w:04d}-{k:06d}")
        return 1

    async def renew(w: int, k: int) -> int:
        rvs[w] = await verbs.renew(LEASES_NS, names[w], rvs[w], k)
        return 1

    list_workers = min(n_workers, 4)
    start = meter.read()
    out["create"] = figure(meter, start, await workers(n_workers, seconds, create), workers=n_workers)
    start = meter.read()
    out["update"] = figure(meter, start, await workers(n_workers, seconds, renew), workers=n_workers)
    start = meter.read()
    out["list"] = figure(meter, start, await workers(list_workers, seconds, lambda w, k: verbs.list(LIST_NS)),
                         workers=list_workers, objects=LIST_OBJECTS)
    start = meter.read()
    out["list_paged"] = figure(meter, start, await workers(list_workers, seconds,
                                                           lambda w, k: _one(verbs.list_paged(LIST_NS))),
                               workers=list_workers, objects=LIST_OBJECTS, page=PAGE)

    # watch: one watcher from the Leases' current revision while every worker renews its Lease.
    seen = [0]

    def count(n: int) -> None:
        seen[0] += n

    stop = await verbs.watch(LEASES_NS, max(rvs, key=int), count)
    start = meter.read()
    seen_at_start = seen[0]
    updates = await workers(n_workers, seconds, renew)
    # Delivery check: the watcher must get every update; the time it takes to drain counts.
    deadline = time.perf_counter() + 30
    while seen[0] - seen_at_start < updates and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    delivered = seen[0] - seen_at_start
    out["watch"] = figure(meter, start, delivered, updates=updates, delivery_ok=delivered == updates,
                          workers=n_workers, note="CPU per event includes the update that caused it")
    await stop()
    return out


async def _one(pages: Awaitable[int]) -> int:
    await pages
    return 1


# -- the control planes ---------------------------------------------------------------------------


def megaplane_up() -> Any:
    """`megaplane up` (plain HTTP, no TLS port, its default controllers) on a fresh data dir, pinned to core 0."""
    return apiserver(command="up")


async def over_http(n_workers: int, seconds: float) -> Dict[str, Dict[str, Any]]:
    from megaplane.client import Client
    from megaplane.client.http import HTTPTransport

    with megaplane_up() as (proc, base):
        client = Client(HTTPTransport(base, max_connections=n_workers, qps=0))
        try:
            return await run_ops(ClientVerbs(client), Meter(proc.pid), n_workers, seconds)
        finally:
            await client.close()


async def in_process(transport: str, n_workers: int, seconds: float) -> Dict[str, Dict[str, Any]]:
    from megaplane.controlplane import ControlPlane, ControlPlaneConfig
    from megaplane.store import StoreConfig

    data = tempfile.mkdtemp(prefix="megaplane-transports-")
    plane = ControlPlane(ControlPlaneConfig(data_dir=data, store=StoreConfig(wal_modes=UP_WAL_MODES), port=0,
                                            secure_port=0, controllers=[]))
    await plane.start()
    try:
        loopback = ClientVerbs(plane.client)
        verbs = loopback if transport == "loopback" else RawVerbs(plane.api.registry, loopback)
        return await run_ops(verbs, Meter(None), n_workers, seconds)
    finally:
        await plane.stop()
        shutil.rmtree(data, ignore_errors=True)


# -- the report ----------------------------------------------------------------------------------


def medians(rounds: List[Dict[str, Dict[str, Dict[str, Any]]]]) -> Dict[str, Dict[str, Dict[str, float]]]:
    keys = ("ops_per_s", "cpu_us_per_op", "client_cpu_us_per_op", "server_cpu_us_per_op")
    return {t: {op: {k: statistics.median(r[t][op][k] for r in rounds) for k in keys} for op in OPS}
            for t in TRANSPORTS}


def ratios(rounds: List[Dict[str, Dict[str, Dict[str, Any]]]], a: str, b: str) -> Dict[str, Dict[str, float]]:
    """a/b per op, each the median of the same-round ratios."""
    return {op: {
        "ops_per_s": statistics.median(r[a][op]["ops_per_s"] / r[b][op]["ops_per_s"] for r in rounds),
        "cpu_us_per_op": statistics.median(r[a][op]["cpu_us_per_op"] / r[b][op]["cpu_us_per_op"] for r in rounds),
    } for op in OPS}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--seconds", type=float, help="per figure (quick 1, full 5)")
    ap.add_argument("--rounds", type=int, help="rounds of all three transports (quick 2, full 3)")
    ap.add_argument("--workers", type=int, help="concurrent requests for create/update/watch (quick 32, full 128)")
    ap.add_argument("--only", choices=TRANSPORTS, action="append", help=argparse.SUPPRESS)
    args = ap.parse_args()
    seconds = args.seconds or (5.0 if args.full else 1.0)
    n_rounds = args.rounds or (3 if args.full else 2)
    n_workers = args.workers or (128 if args.full else 32)
    if (os.cpu_count() or 1) > CLIENT_CORE:
        os.sched_setaffinity(0, {CLIENT_CORE})  # the client (and the in-process planes) on core 1
    import uvloop

    print(f"client_transports: {n_rounds} rounds, {seconds:g} s per figure, {n_workers} workers "
          f"(list: {min(n_workers, 4)}), {LIST_OBJECTS} objects listed", flush=True)
    rounds: List[Dict[str, Dict[str, Dict[str, Any]]]] = []
    for i in range(n_rounds):
        rnd: Dict[str, Dict[str, Dict[str, Any]]] = {}
        for t in TRANSPORTS:
            if args.only and t not in args.only:
                continue
            if t == "http":
                rnd[t] = uvloop.run(over_http(n_workers, seconds))
            else:
                rnd[t] = uvloop.run(in_process(t, n_workers, seconds))
            print(f"  round {i + 1} {t:<8} " + "  ".join(f"{op} {rnd[t][op]['ops_per_s']:,.0f}/s" for op in OPS),
                  flush=True)
            if not rnd[t]["watch"]["delivery_ok"]:
                print(f"  {t}: the watcher missed events: {rnd[t]['watch']}", flush=True)
        rounds.append(rnd)
    if args.only:
        print(json.dumps({"rounds": rounds}))
        return
    med = medians(rounds)
    lo_http, lo_raw = ratios(rounds, "loopback", "http"), ratios(rounds, "loopback", "raw")
    rows = []
    for op in OPS:
        for t in TRANSPORTS:
            m = med[t][op]
            split = f"{m['server_cpu_us_per_op']:,.0f} + {m['client_cpu_us_per_op']:,.0f}" if t == "http" else "-"
            rows.append([op if t == "http" else "", t, f"{m['ops_per_s']:,.0f}", f"{m['cpu_us_per_op']:,.0f}", split])
        rows.append(["", "loopback / http", f"{lo_http[op]['ops_per_s']:.2f}", f"{lo_http[op]['cpu_us_per_op']:.2f}", ""])
        rows.append(["", "loopback / raw", f"{lo_raw[op]['ops_per_s']:.2f}", f"{lo_raw[op]['cpu_us_per_op']:.2f}", ""])
    print()
    print(markdown_table(["operation", "transport", "ops/s", "CPU us/op", "http: server + client us/op"], rows))
    print("(medians of rounds; ratios are medians of same-round ratios; list ops are whole 1000-object lists,"
          " list_paged = 10 pages; watch ops are events delivered)")
    delivery = all(r[t]["watch"]["delivery_ok"] for r in rounds for t in TRANSPORTS)
    print(json.dumps({"seconds": seconds, "workers": n_workers, "rounds": rounds, "median": med,
                      "ratio_loopback_http": lo_http, "ratio_loopback_raw": lo_raw, "watch_delivery_ok": delivery}))


if __name__ == "__main__":
    main()
