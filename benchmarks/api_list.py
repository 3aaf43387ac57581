"""LIST latency of a large pod collection: pages of 500 (as informers and `kubectl get` page) and one request.

    python benchmarks/api_list.py           # quick: 15,000 pods, < 1 minute
    python benchmarks/api_list.py --full    # 150,000 pods (upstream's scalability threshold)

The server is `megaplane apiserver` pinned to one core, filled through its
own API (POST over 32 keep-alive connections); the reader runs on the other
core over one keep-alive connection, times each LIST to its last byte
(`/api/v1/pods`, cluster scope, consistent read: no resourceVersion), and,
outside the timing, decodes every page to check the pages hold each pod
exactly once. Medians of --repeat runs.

References measured in the same run:
* the HTTP ceiling: a bare asyncio + uvloop server answering with the very
  bytes megaplane returned (the full list, and a 500-pod page), fetched by
  the same reader: the floor for moving that many bytes through Python;
* real etcd (Debian's etcd 3.4, when installed): the same pods' JSON under
  /registry/pods/, read with Range in pages of 500 (as kube-apiserver pages
  a LIST it sends to etcd) and in one Range, by a Python gRPC client.
Published: the upstream SLO for a cluster-scope LIST is p99 <= 30 s
(sig-scalability), at 150,000 pods.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    ROOT,
    apiserver,
    create_namespace,
    free_port,
    loadgen,
    markdown_table,
    measure,
    median,
    pinned,
    pod_template,
    python_server,
    result,
    rss_bytes,
    without_resource_version,
)

NAMESPACES = 10
PAGE = 500
SLO_SECONDS = 30.0


def fill(base: str, pods: int, root: str) -> float:
    """`pods` pods across NAMESPACES namespaces; returns creates/s."""
    port = base.rsplit(":", 1)[1]
    per_ns = pods // NAMESPACES
    t0 = time.perf_counter()
    done = 0
    for i in range(NAMESPACES):
        ns = f"list-{i}"
        create_namespace(base, ns)
        template = os.path.join(root, f"pod-{ns}.json")
        with open(template, "wb") as f:
            f.write(without_resource_version(pod_template(ns, node=f"node-{i}")).replace(b"@N@", b"0"))
        count = per_ns if i < NAMESPACES - 1 else pods - per_ns * (NAMESPACES - 1)
        made = result(loadgen(["--port", port, "create", f"/api/v1/namespaces/{ns}/pods", template, "pod", str(count),
                               "--conns", "32"]))
        if made["created"] != count:
            raise SystemExit(f"filling {ns} failed: {made}")
        done += count
        print(f"  filled {done:,}/{pods:,} pods ({done / (time.perf_counter() - t0):,.0f}/s)", flush=True)
    return pods / (time.perf_counter() - t0)


def timed_lists(port: int, path: str, repeat: int, follow: bool = True) -> dict:
    return result(loadgen(["--port", str(port), "list", path, "--repeat", str(repeat), *([] if follow else ["--no-follow"])]))


def bare_bytes_server(port: int, body_file: str) -> None:
    from harness import serve_fixed

    with open(body_file, "rb") as f:
        serve_fixed(port, f.read())


def etcd_reference(pod_bodies: list, root: str) -> dict:
    """Put the pods into a real etcd and time Range in pages of 500 and as one Range."""
    import grpc

    sys.path.insert(0, ROOT)
    from megaplane.etcd.pb import etcd_pb2 as pb

    port, peer = free_port(), free_port()
    data = tempfile.mkdtemp(dir=root)
    endpoint = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        pinned(["etcd", "--data-dir", data, "--listen-client-urls", f"http://{endpoint}", "--advertise-client-urls",
                f"http://{endpoint}", "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}", "--initial-cluster", f"default=http://127.0.0.1:{peer}",
                "--quota-backend-bytes", str(8 << 30), "--max-request-bytes", str(10 << 20)], 0),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    opts = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", 64 << 20)]
    try:
        channel = grpc.insecure_channel(endpoint, options=opts)
        grpc.channel_ready_future(channel).result(timeout=20)
        txn = channel.unary_unary("/etcdserverpb.KV/Txn", request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=pb.TxnResponse.FromString)
        rng = channel.unary_unary("/etcdserverpb.KV/Range", request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=pb.RangeResponse.FromString)
        for i in range(0, len(pod_bodies), 100):
            ops = [pb.RequestOp(request_put=pb.PutRequest(key=k, value=v)) for k, v in pod_bodies[i : i + 100]]
            txn(pb.TxnRequest(success=ops), timeout=60)
        prefix, end = b"/registry/pods/", b"/registry/pods0"

        def paged() -> int:
            start, n = prefix, 0
            while True:
                resp = rng(pb.RangeRequest(key=start, range_end=end, limit=PAGE), timeout=120)
                n += len(resp.kvs)
                if not resp.more:
                    return n
                start = resp.kvs[-1].key + b"\x00"

        def whole() -> int:
            return len(rng(pb.RangeRequest(key=prefix, range_end=end), timeout=300).kvs)

        out = {}
        for label, fn in (("paged_500", paged), ("one_range", whole)):
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                n = fn()
                runs.append(time.perf_counter() - t0)
                if n != len(pod_bodies):
                    raise RuntimeError(f"etcd returned {n} of {len(pod_bodies)} pods")
            out[label] = median(runs)
        channel.close()
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--pods", type=int)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-etcd", action="store_true", help="skip the real-etcd reference")
    ap.add_argument("--bare-bytes", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_bytes:
        bare_bytes_server(int(args.bare_bytes[1]), args.bare_bytes[0])
        return
    pods = args.pods or (150_000 if args.full else 15_000)
    root = tempfile.mkdtemp(prefix="megaplane-list-")
    print(f"api_list: {pods:,} pods in {NAMESPACES} namespaces; LIST /api/v1/pods in pages of {PAGE} and whole", flush=True)
    results: dict = {"pods": pods, "page": PAGE, "repeat": args.repeat}
    try:
        with apiserver() as (server, base):
            port = int(base.rsplit(":", 1)[1])
            results["fill_creates_per_s"] = fill(base, pods, root)
            rss = rss_bytes(server.pid)
            paged, cpu_p, _ = measure(server.pid, lambda: timed_lists(port, f"/api/v1/pods?limit={PAGE}", args.repeat))
            whole, cpu_w, _ = measure(server.pid, lambda: timed_lists(port, "/api/v1/pods", args.repeat))
            for res, want_pages in ((paged, -(-pods // PAGE)), (whole, 1)):
                if res["items"] != pods or res["pages"] != want_pages:
                    raise SystemExit(f"LIST returned {res['items']} pods in {res['pages']} pages; want {pods} in {want_pages}")
            with urllib.request.urlopen(f"{base}/api/v1/pods") as r:
                whole_body = r.read()
            with urllib.request.urlopen(f"{base}/api/v1/pods?limit={PAGE}") as r:
                page_body = r.read()
        results["megaplane"] = {
            "paged_500_s": median(paged["seconds"]),
            "one_request_s": median(whole["seconds"]),
            "per_page_ms": median(paged["seconds"]) / paged["pages"] * 1e3,
            "bytes": whole["bytes"],
            "bytes_per_pod": whole["bytes"] / pods,
            "server_cpu_s_paged": cpu_p / args.repeat,
            "server_cpu_s_one_request": cpu_w / args.repeat,
            "server_rss_bytes": rss,
        }
        mp = results["megaplane"]
        print(f"  megaplane apiserver  paged {mp['paged_500_s']:.3f} s ({mp['per_page_ms']:.2f} ms/page)  "
              f"one request {mp['one_request_s']:.3f} s  {mp['bytes'] / 1e6:.0f} MB", flush=True)

        # The HTTP ceiling: the same bytes from a server that does nothing else.
        bare = {}
        for label, body in (("one_request_s", whole_body), ("page_ms", page_body)):
            body_file = os.path.join(root, f"{label}.json")
            with open(body_file, "wb") as f:
                f.write(body)
            with python_server(os.path.abspath(__file__), ["--bare-bytes", body_file]) as (_, bport):
                path = "/api/v1/pods"
                runs = timed_lists(bport, path, max(args.repeat, 3) * (1 if label == "one_request_s" else 20), follow=False)
                bare[label] = median(runs["seconds"]) * (1 if label == "one_request_s" else 1e3)
        results["ceiling_bare_http"] = bare
        print(f"  ceiling (bare)       page {bare['page_ms']:.2f} ms  one request {bare['one_request_s']:.3f} s", flush=True)

        if not args.no_etcd and shutil.which("etcd"):
            import orjson

            items = orjson.loads(whole_body)["items"]
            bodies = [(f"/registry/pods/{p['metadata']['namespace']}/{p['metadata']['name']}".encode(), orjson.dumps(p))
                      for p in items]
            del items
            results["etcd"] = etcd_reference(bodies, root)
            e = results["etcd"]
            print(f"  etcd 3.4 Range       paged {e['paged_500']:.3f} s  one range {e['one_range']:.3f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    mp, bare = results["megaplane"], results["ceiling_bare_http"]
    e = results.get("etcd")
    results["published_slo_list_p99_s"] = SLO_SECONDS
    print()
    rows = [
        ["megaplane apiserver (LIST /api/v1/pods)", f"{mp['paged_500_s']:.3f}", f"{mp['per_page_ms']:.2f}",
         f"{mp['one_request_s']:.3f}", f"{mp['bytes_per_pod']:.0f} B/pod, server CPU {mp['server_cpu_s_paged']:.2f} s paged"],
        ["bare HTTP, same bytes (ceiling)", "-", f"{bare['page_ms']:.2f}", f"{bare['one_request_s']:.3f}", "Python floor"],
    ]
    if e:
        rows.append(["etcd 3.4 Range, same pods", f"{e['paged_500']:.3f}", f"{e['paged_500'] / -(-pods // PAGE) * 1e3:.2f}",
                     f"{e['one_range']:.3f}", "storage only, no HTTP/JSON list"])
    rows.append(["upstream SLO (p99, cluster-scope LIST)", "30", "-", "30", "sig-scalability"])
    print(markdown_table(["server", "paged 500 total s", "ms/page", "one request s", "note"], rows))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
