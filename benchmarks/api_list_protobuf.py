"""LIST of a large pod collection as JSON vs protobuf: server time, bytes, client decode time, in one run.

    python benchmarks/api_list_protobuf.py           # quick: 15,000 pods, < 1 minute
    python benchmarks/api_list_protobuf.py --full    # 150,000 pods (upstream's scalability threshold)

The server is `megaplane apiserver` pinned to one core, filled through its
own API as benchmarks/api_list.py fills it; this process reads on the other
core over one keep-alive connection and times each whole LIST of
`/api/v1/pods` (cluster scope, consistent read) to its last byte, with
`Accept: application/json` and with client-go's `Accept:
application/vnd.kubernetes.protobuf, application/json`. The first protobuf
LIST encodes every pod (cold); later ones reuse each object's message
memoised on its watch-cache entry (warm), so both are reported, with the
server CPU per LIST from /proc.

Client decode, outside the request timing and with the cyclic GC off:
JSON with orjson (the floor) and
with the `kubernetes` package's deserializer into V1PodList (what a Python
client pays; timed on the first --sample pods and scaled); protobuf with
the `protobuf` package (upb) from upstream's own descriptors (read from
kubectl, the reference encoder of tests/api/test_protobuf.py). The JSON
figures are the reference for the protobuf ones, measured in the same run;
both bodies are checked to hold the same pods.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_list import NAMESPACES, fill  # noqa: E402
from harness import CLIENT_CORE, ROOT, apiserver, cpu_seconds, markdown_table, median, rss_bytes  # noqa: E402

JSON_ACCEPT = "application/json"
PB_ACCEPT = "application/vnd.kubernetes.protobuf, application/json"


def timed_list(conn: http.client.HTTPConnection, accept: str) -> Tuple[float, bytes, str]:
    t0 = time.perf_counter()
    conn.request("GET", "/api/v1/pods", headers={"Accept": accept})
    resp = conn.getresponse()
    body = resp.read()
    seconds = time.perf_counter() - t0
    if resp.status != 200:
        raise SystemExit(f"LIST answered {resp.status}: {body[:300]!r}")
    return seconds, body, resp.getheader("Content-Type", "")


def runs(conn: http.client.HTTPConnection, pid: int, accept: str, repeat: int) -> Tuple[List[float], List[float], bytes, str]:
    walls, cpus = [], []
    body, ctype = b"", ""
    for _ in range(repeat):
        c0 = cpu_seconds(pid)
        wall, body, ctype = timed_list(conn, accept)
        cpus.append(cpu_seconds(pid) - c0)
        walls.append(wall)
    return walls, cpus, body, ctype


def reference_pod_list() -> Any:
    """The PodList message class from upstream's descriptors (kubectl's), as the test suite's reference encoder."""
    sys.path.insert(0, ROOT)
    from tests.api.test_protobuf import ReferenceEncoder, _descriptor_source

    ref = ReferenceEncoder(_descriptor_source())
    return ref, type(ref.new("k8s.io.api.core.v1.PodList")), type(ref.new("k8s.io.apimachinery.pkg.runtime.Unknown"))


def decode_times(json_body: bytes, pb_body: bytes, sample: int) -> Dict[str, Any]:
    """Decode seconds per client, with the cyclic GC off for all of them: it would otherwise run over the
    growing heap of a decoded 150K-pod list many times and dominate the figure."""
    gc.collect()
    gc.disable()
    try:
        return _decode_times(json_body, pb_body, sample)
    finally:
        gc.enable()


def _decode_times(json_body: bytes, pb_body: bytes, sample: int) -> Dict[str, Any]:
    import orjson

    out: Dict[str, Any] = {}
    t0 = time.perf_counter()
    doc = orjson.loads(json_body)
    out["json_orjson_s"] = time.perf_counter() - t0
    items = doc["items"]
    n = len(items)
    names = {p["metadata"]["name"] for p in items}
    part_body = orjson.dumps(dict(doc, items=items[:sample])).decode()
    del doc, items  # one decoded list in memory at a time

    import kubernetes

    client = kubernetes.client.ApiClient()
    t0 = time.perf_counter()
    decoded = client.deserialize(part_body, "V1PodList", "application/json")  # the response text, as the client reads it
    k8s_s = time.perf_counter() - t0
    out["json_kubernetes_package_s"] = k8s_s * n / max(1, len(decoded.items))
    out["json_kubernetes_package_sampled_pods"] = len(decoded.items)

    _, pod_list, unknown = reference_pod_list()
    t0 = time.perf_counter()
    env = unknown.FromString(pb_body[4:])
    msg = pod_list.FromString(env.raw)
    out["protobuf_upb_s"] = time.perf_counter() - t0
    if len(msg.items) != n or {p.metadata.name for p in msg.items} != names:
        raise SystemExit("the protobuf list does not hold the JSON list's pods")
    del env, msg, decoded

    from megaplane.apiserver.schema.protobuf import decode

    t0 = time.perf_counter()
    mine = decode(pb_body)
    out["protobuf_megaplane_decoder_s"] = time.perf_counter() - t0
    if len(mine["items"]) != n:
        raise SystemExit("megaplane's decoder read a different number of pods")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--pods", type=int)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sample", type=int, default=1000, help="pods the kubernetes package decodes (scaled to all)")
    args = ap.parse_args()
    pods = args.pods or (150_000 if args.full else 15_000)
    try:
        os.sched_setaffinity(0, {CLIENT_CORE})
    except (AttributeError, OSError):
        pass
    root = tempfile.mkdtemp(prefix="megaplane-list-pb-")
    print(f"api_list_protobuf: {pods:,} pods in {NAMESPACES} namespaces; LIST /api/v1/pods as JSON and protobuf",
          flush=True)
    results: Dict[str, Any] = {"pods": pods, "repeat": args.repeat}
    try:
        with apiserver() as (server, base):
            host, port = base.rsplit("/", 1)[1].rsplit(":", 1)
            results["fill_creates_per_s"] = fill(base, pods, root)
            conn = http.client.HTTPConnection(host, int(port), timeout=600)
            j_wall, j_cpu, json_body, j_type = runs(conn, server.pid, JSON_ACCEPT, args.repeat)
            rss0 = rss_bytes(server.pid)
            cold_wall, cold_cpu, _, _ = runs(conn, server.pid, PB_ACCEPT, 1)
            p_wall, p_cpu, pb_body, p_type = runs(conn, server.pid, PB_ACCEPT, args.repeat)
            rss1 = rss_bytes(server.pid)
            conn.close()
        if not j_type.startswith("application/json") or p_type != "application/vnd.kubernetes.protobuf":
            raise SystemExit(f"content types: {j_type!r}, {p_type!r}")
        results["json"] = {"seconds": median(j_wall), "server_cpu_s": median(j_cpu), "bytes": len(json_body)}
        results["protobuf"] = {
            "cold_seconds": cold_wall[0], "cold_server_cpu_s": cold_cpu[0],
            "seconds": median(p_wall), "server_cpu_s": median(p_cpu), "bytes": len(pb_body),
            "memoised_bytes_rss_growth": rss1 - rss0,
        }
        print(f"  JSON      {median(j_wall):.3f} s  server CPU {median(j_cpu):.3f} s  {len(json_body) / 1e6:.1f} MB",
              flush=True)
        print(f"  protobuf  cold {cold_wall[0]:.3f} s (CPU {cold_cpu[0]:.3f} s)  warm {median(p_wall):.3f} s "
              f"(CPU {median(p_cpu):.3f} s)  {len(pb_body) / 1e6:.1f} MB", flush=True)
        results["client_decode"] = dec = decode_times(json_body, pb_body, args.sample)
        print(f"  decode    orjson {dec['json_orjson_s']:.3f} s  kubernetes package {dec['json_kubernetes_package_s']:.2f} s"
              f"  protobuf (upb) {dec['protobuf_upb_s']:.3f} s  megaplane decoder {dec['protobuf_megaplane_decoder_s']:.2f} s",
              flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    j, p, d = results["json"], results["protobuf"], results["client_decode"]
    results["protobuf_vs_json"] = {
        "bytes_ratio": p["bytes"] / j["bytes"],
        "warm_server_cpu_ratio": p["server_cpu_s"] / j["server_cpu_s"] if j["server_cpu_s"] else None,
        "client_decode_ratio_vs_kubernetes_package": d["protobuf_upb_s"] / d["json_kubernetes_package_s"],
    }
    print()
    print(markdown_table(
        ["format", "LIST s (warm)", "server CPU s", "MB", "bytes/pod", "client decode s"],
        [["JSON (reference)", f"{j['seconds']:.3f}", f"{j['server_cpu_s']:.3f}", f"{j['bytes'] / 1e6:.1f}",
          f"{j['bytes'] / pods:.0f}", f"{d['json_orjson_s']:.3f} orjson / {d['json_kubernetes_package_s']:.2f} kubernetes"],
         ["protobuf", f"{p['seconds']:.3f}", f"{p['server_cpu_s']:.3f}", f"{p['bytes'] / 1e6:.1f}",
          f"{p['bytes'] / pods:.0f}", f"{d['protobuf_upb_s']:.3f} upb"],
         ["protobuf, first LIST (encodes)", f"{p['cold_seconds']:.3f}", f"{p['cold_server_cpu_s']:.3f}", "", "", ""]]))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
