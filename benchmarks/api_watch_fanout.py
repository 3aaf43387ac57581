"""Watch fan-out: events/s the API server delivers to 100 pod watchers while pods are updated.

    python benchmarks/api_watch_fanout.py           # quick: 100 pods updated for 5 s, < 1 minute
    python benchmarks/api_watch_fanout.py --full    # 1000 pods updated for 20 s

The server is `megaplane apiserver` pinned to one core. 100 watch streams
(`/api/v1/namespaces/fanout/pods?watch=true&resourceVersion=<rv>`, as an
informer opens them) read from the other core, counting events without
decoding them; keep-alive connections PUT the pods (an annotation changes
each time, so every PUT is one MODIFIED event of a ~2 KB pod). Counted from
the first event to the last, after the writers stop and every stream has
drained, and checked: each watcher must see every successful update (and
there must be some). When one does not, the watchers that missed updates
are printed and the run exits 1, after its JSON line (`delivery_ok`).

References measured in the same run with the same readers: a bare asyncio +
uvloop server pushing the same event bytes to 100 connections, one write per
event per watcher (no coalescing) and 16 events per write (coalesced), as
fast as the sockets take them; the ceiling of the transport on this machine.
Published: kube-apiserver watch events/s per apiserver in the 1M-node run,
pods 547K/s (k8s-1m README, 192-core machines). Target (issue #4): >= 400,000/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    apiserver,
    create_namespace,
    loadgen,
    markdown_table,
    measure,
    pod_template,
    python_server,
    result,
    without_resource_version,
)

NAMESPACE = "fanout"
PUBLISHED_PODS_EVENTS_PER_S = 547_000


def bare_push_server(port: int, event_file: str, watchers: int, batch: int, seconds: float) -> None:
    """Accept `watchers` watch requests, then push the event in `event_file` to all of them for `seconds`."""
    import asyncio

    import uvloop

    with open(event_file, "rb") as f:
        line = f.read()
    payload = b"%x\r\n%s\r\n" % (len(line) * batch, line * batch)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        transports: list = []
        ready = asyncio.Event()

        class Watch(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport
                self.buf = b""

            def data_received(self, data: bytes) -> None:
                self.buf += data
                if b"\r\n\r\n" in self.buf and self.transport not in transports:
                    self.transport.write(head)  # type: ignore[attr-defined]
                    transports.append(self.transport)
                    if len(transports) == watchers:
                        ready.set()

        server = await loop.create_server(Watch, "127.0.0.1", port)
        await ready.wait()
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            for t in transports:
                t.write(payload)
            # Back-pressure as a server must apply it: wait while the slowest socket has > 1 MiB queued.
            await asyncio.sleep(0)
            while max(t.get_write_buffer_size() for t in transports) > 1 << 20:
                await asyncio.sleep(0.0005)
        while max(t.get_write_buffer_size() for t in transports) > 0:
            await asyncio.sleep(0.01)
        for t in transports:
            t.write(b"0\r\n\r\n")
        await asyncio.sleep(3600)
        server.close()

    uvloop.run(serve())


def fanout_megaplane(pods: int, watchers: int, seconds: float, root: str) -> dict:
    with apiserver() as (server, base):
        port = base.rsplit(":", 1)[1]
        create_namespace(base, NAMESPACE)
        template = pod_template(NAMESPACE, node="node-0")
        with open(os.path.join(root, "pod.json"), "wb") as f:
            f.write(template)
        with open(os.path.join(root, "pod-create.json"), "wb") as f:
            f.write(without_resource_version(template))
        made = result(loadgen(["--port", port, "create", f"/api/v1/namespaces/{NAMESPACE}/pods",
                               os.path.join(root, "pod-create.json"), "pod", str(pods), "--rvs"]))
        if made["created"] != pods:
            raise SystemExit(f"creating pods failed: {made}")
        rvs = made["rvs"]
        with open(os.path.join(root, "pods.txt"), "w") as f:
            f.writelines(f"{n}={v}\n" for n, v in sorted(rvs.items()))
        with urllib.request.urlopen(f"{base}/api/v1/namespaces/{NAMESPACE}/pods/pod-000000") as r:
            event = b'{"type":"MODIFIED","object":' + r.read() + b"}\n"
        with open(os.path.join(root, "event.json"), "wb") as f:
            f.write(event)
        list_rv = max(int(v) for v in rvs.values())
        readers = loadgen(["--port", port, "watch", f"/api/v1/namespaces/{NAMESPACE}/pods?watch=true&resourceVersion={list_rv}",
                           str(watchers), str(seconds + 60), "--until-idle", "1.0"])
        assert readers.stdout is not None
        readers.stdout.readline()  # "watching"

        def run() -> tuple:
            writes = result(loadgen(["--port", port, "update", f"/api/v1/namespaces/{NAMESPACE}/pods/@NAME@",
                                     os.path.join(root, "pods.txt"), os.path.join(root, "pod.json"), str(seconds),
                                     "--warmup", "0"]))
            return writes, result(readers)

        (writes, seen), cpu, wall = measure(server.pid, run)
    # Each successful PUT is one MODIFIED event for every watcher: not one fewer, not one more.
    short = {i: writes["updates"] - n for i, n in enumerate(seen["per_watcher"]) if n != writes["updates"]}
    delivered_all = writes["updates"] > 0 and len(seen["per_watcher"]) == watchers and not short
    return {
        "events_per_s": seen["events_per_s"],
        "events": seen["events"],
        "event_bytes": len(event),
        "updates": writes["updates"],
        "updates_per_s": writes["updates_per_s"],
        "update_errors": writes["errors"],
        "every_watcher_saw_every_update": delivered_all,
        "min_per_watcher": seen["min_per_watcher"],
        "max_per_watcher": seen["max_per_watcher"],
        "watchers_reading": len(seen["per_watcher"]),
        # watcher index -> updates it missed (negative: events beyond the updates, i.e. duplicates)
        "missed_per_watcher": short,
        "server_cpu_us_per_event": cpu / max(seen["events"], 1) * 1e6,
        "server_cpu_cores": cpu / wall,
        "event_file": os.path.join(root, "event.json"),
    }


def fanout_bare(event_file: str, watchers: int, seconds: float, batch: int) -> dict:
    script = os.path.abspath(__file__)
    with python_server(script, ["--bare-push", event_file, str(watchers), str(batch), str(seconds)]) as (bare, port):
        readers = loadgen(["--port", str(port), "watch", "/watch", str(watchers), str(seconds + 60), "--until-idle", "1.0"])
        seen, cpu, wall = measure(bare.pid, lambda: result(readers))
    return {
        "events_per_s": seen["events_per_s"],
        "events": seen["events"],
        "server_cpu_us_per_event": cpu / max(seen["events"], 1) * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--pods", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--bare-push", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_push:
        event_file, watchers, batch, seconds, port = args.bare_push
        bare_push_server(int(port), event_file, int(watchers), int(batch), float(seconds))
        return
    pods = args.pods or (1000 if args.full else 100)
    seconds = args.seconds or (20.0 if args.full else 5.0)
    root = tempfile.mkdtemp(prefix="megaplane-fanout-")
    print(f"api_watch_fanout: {args.watchers} pod watchers, {pods} pods updated for {seconds:.0f} s", flush=True)
    mp = fanout_megaplane(pods, args.watchers, seconds, root)
    print(f"  megaplane apiserver     {mp['events_per_s']:>10,.0f} events/s  ({mp['updates_per_s']:,.0f} updates/s x "
          f"{args.watchers} watchers, {mp['event_bytes']} B/event, all delivered: {mp['every_watcher_saw_every_update']})",
          flush=True)
    refs = {}
    for batch in (1, 16):
        refs[batch] = fanout_bare(mp["event_file"], args.watchers, min(seconds, 5.0), batch)
        print(f"  bare push, {batch:>2} ev/write  {refs[batch]['events_per_s']:>10,.0f} events/s", flush=True)
    del mp["event_file"]
    results = {
        "watchers": args.watchers,
        "pods": pods,
        "seconds": seconds,
        "megaplane": mp,
        "bare_push_1_per_write": refs[1],
        "bare_push_16_per_write": refs[16],
        "published_k8s_1m_pods_events_per_s": PUBLISHED_PODS_EVENTS_PER_S,
        "ratio_vs_bare_16": mp["events_per_s"] / max(refs[16]["events_per_s"], 1),
        "target_events_per_s": 400_000,
        "delivery_ok": mp["every_watcher_saw_every_update"],
    }
    print()
    print(markdown_table(
        ["server", "events/s", "server CPU us/event", "note"],
        [
            ["megaplane apiserver", f"{mp['events_per_s']:,.0f}", f"{mp['server_cpu_us_per_event']:.2f}",
             f"{mp['updates_per_s']:,.0f} pod updates/s, every watcher saw every update: {mp['every_watcher_saw_every_update']}"],
            ["bare push, 1 event per write", f"{refs[1]['events_per_s']:,.0f}", f"{refs[1]['server_cpu_us_per_event']:.2f}",
             "transport ceiling, uncoalesced"],
            ["bare push, 16 events per write", f"{refs[16]['events_per_s']:,.0f}", f"{refs[16]['server_cpu_us_per_event']:.2f}",
             "transport ceiling, coalesced"],
            ["kube-apiserver, k8s-1m (published)", f"{PUBLISHED_PODS_EVENTS_PER_S:,}", "-", "192-core machines"],
            ["target (issue #4)", "400,000", "-", ""],
        ],
    ))
    if not results["delivery_ok"]:
        print(delivery_failure(mp, args.watchers), file=sys.stderr, flush=True)
    print(json.dumps(results), flush=True)
    if not results["delivery_ok"]:
        sys.exit(1)


def delivery_failure(mp: dict, watchers: int) -> str:
    """Which watchers missed what, for a run whose delivery check failed."""
    lines = [f"FAIL: not every watcher saw every update ({mp['updates']} updates written)"]
    if mp["updates"] == 0:
        lines.append("  no update succeeded, so nothing was checked")
    if mp["watchers_reading"] != watchers:
        lines.append(f"  {mp['watchers_reading']} of {watchers} watch streams reported")
    for i, missed in sorted(mp["missed_per_watcher"].items()):
        saw = mp["updates"] - missed
        what = f"missed {missed}" if missed > 0 else f"{-missed} more than written (duplicates)"
        lines.append(f"  watcher {i}: saw {saw} of {mp['updates']} ({what})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
