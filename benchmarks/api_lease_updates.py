"""Simulated kubelets renewing their Leases through the API server while 100 watchers watch leases.

    python benchmarks/api_lease_updates.py           # quick: 200 leases, 6 s, < 1 minute
    python benchmarks/api_lease_updates.py --full    # 2000 leases, 20 s
    python benchmarks/api_lease_updates.py --auth    # authorization on vs off (issue #15), same run

Then a server without flow control is measured on its secure port with the
same Lease load twice, without watchers: over HTTP/1.1 (one TLS connection per
renewer) and over HTTP/2 (100 renewers' streams per connection, the
server's SETTINGS_MAX_CONCURRENT_STREAMS), each renewing its own leases
(benchmarks/loadgen_tls.py): server CPU per update and updates/s for both
protocols (issue #16: do many streams on few connections make a renewal
cheaper?).

Each renewer is one keep-alive connection doing PUT with the Lease's last
resourceVersion (optimistic concurrency, as a kubelet does). The server is
`megaplane apiserver` on the embedded store (Leases without a WAL, as
`megaplane up` configures them), pinned to one core; the load generator
(benchmarks/loadgen.py) runs on the other.

--auth measures instead what authorization costs a renewal: the same TLS
HTTP/1.1 renewals (no watchers) as a non-admin user (a client certificate
for `bench-kubelet`, bound by a RoleBinding to a Role allowing leases
get/update), against two servers started in the same run: one with
--authorization-mode=AlwaysAllow (authorization off) and one with
Node,RBAC (the RBAC authorizer decides each request: the privileged-group
check, the Node authorizer's no-opinion, a memoised rule lookup). Client
certificate authentication happens in both (per connection, at the TLS
handshake); the figure is the server CPU per update with RBAC minus
without, as a share of the request's server CPU (target <= 10 %).

Reference measured in the same run with the same load generator: the
ceiling, a bare asyncio + httptools + uvloop server that answers every PUT
with a fixed Lease body and does nothing else (the floor of any Python
HTTP server on this machine). Targets (issue #4): >= 25,000 updates/s from
one apiserver process, and >= 50 % of the ceiling.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    CLIENT_CORE,
    LOADGEN,
    apiserver,
    create_namespace,
    free_port,
    loadgen,
    markdown_table,
    measure,
    pinned,
    python_server,
    result,
    without_resource_version,
)

LEASE = (
    b'{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"@NAME@","namespace":"bench",'
    b'"resourceVersion":"@RV@"},"spec":{"holderIdentity":"@NAME@","leaseDurationSeconds":40,'
    b'"renewTime":"2026-11-22T10:00:00.@N@Z"}}'
)


# -- the run ------------------------------------------------------------------------------------


def renew(port: int, rvs: dict, seconds: float, procs: int, root: str) -> dict:
    """`procs` load generators, each renewing its share of the leases for `seconds`."""
    template = os.path.join(root, "lease.json")
    with open(template, "wb") as f:
        f.write(LEASE)
    items = sorted(rvs.items())
    gens = []
    for i in range(procs):
        objects = os.path.join(root, f"leases-{i}.txt")
        with open(objects, "w") as f:
            f.writelines(f"{n}={v}\n" for n, v in items[i::procs])
        gens.append(loadgen(["--port", str(port), "update", "/apis/coordination.k8s.io/v1/namespaces/bench/leases/@NAME@",
                             objects, template, str(seconds)]))
    outs = [result(g) for g in gens]
    return {
        "updates_per_s": sum(o["updates_per_s"] for o in outs),
        "updates": sum(o["updates"] for o in outs),
        "errors": sum(o["errors"] for o in outs),
        "p50_ms": max(o["p50_ms"] for o in outs),
        "p99_ms": max(o["p99_ms"] for o in outs),
    }


def renew_tls(port: int, kubeconfig: str, protocol: str, rvs: dict, seconds: float, root: str) -> dict:
    """One load generator renewing `rvs`' leases over TLS with `protocol` (http1 or h2) for `seconds`."""
    objects = os.path.join(root, f"leases-{protocol}.txt")
    with open(objects, "w") as f:
        f.writelines(f"{n}={v}\n" for n, v in sorted(rvs.items()))
    script = os.path.join(os.path.dirname(LOADGEN), "loadgen_tls.py")
    proc = subprocess.Popen(pinned([sys.executable, script, "--port", str(port), "--kubeconfig", kubeconfig, "update",
                                    protocol, "/apis/coordination.k8s.io/v1/namespaces/bench/leases/@NAME@", objects,
                                    os.path.join(root, "lease.json"), str(seconds)], CLIENT_CORE),
                            stdout=subprocess.PIPE, text=True)
    return result(proc)


def create_leases(port: int, prefix: str, leases: int, root: str) -> dict:
    made = result(loadgen(["--port", str(port), "create", "/apis/coordination.k8s.io/v1/namespaces/bench/leases",
                           os.path.join(root, "lease-create.json"), prefix, str(leases), "--rvs"]))
    if made["created"] != leases:
        raise SystemExit(f"creating leases failed: {made}")
    return made["rvs"]  # type: ignore[no-any-return]


def per_update(cpu: float, wall: float, seconds: float, res: dict) -> float:
    """Server CPU per update, over the measured window (the load generators' warm-up excluded)."""
    return cpu * (seconds / wall) / max(res["updates"], 1) * 1e6


def authorizer_check_us(checks: int = 200_000) -> float:
    """CPU of one authorization decision for the renewal (in process: the RBAC index fed by the bootstrap
    policy and the Role/RoleBinding above), microseconds: the part of the difference the noise of a shared
    machine can hide."""
    import asyncio
    import time

    import orjson

    from megaplane.apimachinery.resources import lookup
    from megaplane.apimachinery.user import ALL_AUTHENTICATED, UserInfo
    from megaplane.apiserver.authz.config import AuthorizationConfig
    from megaplane.apiserver.registry.options import DEFAULT_WRITE
    from megaplane.apiserver.server import APIServer, APIServerConfig
    from megaplane.storage import EmbeddedStorage
    from megaplane.store import Store

    async def run() -> float:
        api = APIServer(EmbeddedStorage(Store(None)), APIServerConfig(
            authorization=AuthorizationConfig(["Node", "RBAC"])))
        await api.start()
        rbac = "rbac.authorization.k8s.io"
        await api.registry.store(lookup("", "namespaces")).create("", {"metadata": {"name": "bench"}}, DEFAULT_WRITE)
        await api.registry.store(lookup(rbac, "roles")).create("bench", orjson.loads(orjson.dumps({
            "metadata": {"name": "renewer", "namespace": "bench"}, "rules": [{
                "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update"]}]})),
            DEFAULT_WRITE)
        await api.registry.store(lookup(rbac, "rolebindings")).create("bench", {
            "metadata": {"name": "renewer", "namespace": "bench"},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "renewer"},
            "subjects": [{"apiGroup": rbac, "kind": "User", "name": "bench-kubelet"}]}, DEFAULT_WRITE)
        user = UserInfo("bench-kubelet", groups=(ALL_AUTHENTICATED,))
        check = api.authz.check
        check(user, "update", "coordination.k8s.io", "leases", "", "bench", "node-000001")
        began = time.process_time()
        for _ in range(checks):
            check(user, "update", "coordination.k8s.io", "leases", "", "bench", "node-000001")
        took = time.process_time() - began
        await api.stop()
        return took / checks * 1e6

    return asyncio.run(run())


def auth_comparison(leases: int, seconds: float, root: str) -> dict:
    """Server CPU per TLS renewal as a RoleBinding-authorized user, with authorization off and on."""
    from harness import post_json

    from megaplane.apiserver.http.tls import issue_client_cert, write_kubeconfig

    out: dict = {"leases": leases, "seconds": seconds}
    for label, mode in (("authz_off", "AlwaysAllow"), ("authz_on", "Node,RBAC")):
        data = tempfile.mkdtemp(prefix=f"megaplane-lease-bench-{label}-", dir=root)
        secure_port = free_port()
        admin = os.path.join(data, "admin.kubeconfig")
        with apiserver(["--data-dir", data, "--secure-port", str(secure_port), "--kubeconfig", admin,
                        "--authorization-mode", mode]) as (server, base):
            port = int(base.rsplit(":", 1)[1])
            create_namespace(base, "bench")
            post_json(base, "/apis/rbac.authorization.k8s.io/v1/namespaces/bench/roles", {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "renewer"},
                "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                           "verbs": ["get", "update", "patch"]}]})
            post_json(base, "/apis/rbac.authorization.k8s.io/v1/namespaces/bench/rolebindings", {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "renewer"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "renewer"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench-kubelet"}]})
            pki = os.path.join(data, "pki")
            crt, key = issue_client_cert(pki, "bench-kubelet", "bench-kubelet")
            kubeconfig = os.path.join(data, "bench-kubelet.kubeconfig")
            write_kubeconfig(kubeconfig, f"https://127.0.0.1:{secure_port}", os.path.join(pki, "ca.crt"), crt, key,
                             user="bench-kubelet")
            with open(os.path.join(root, "lease-create.json"), "wb") as f:
                f.write(without_resource_version(LEASE))
            with open(os.path.join(root, "lease.json"), "wb") as f:
                f.write(LEASE)
            rvs = create_leases(port, "http1", leases, root)
            res, cpu, wall = measure(server.pid, functools.partial(renew_tls, secure_port, kubeconfig, "http1", rvs,
                                                                   seconds, root))
            res["server_cpu_us_per_update"] = per_update(cpu, wall, seconds, res)
            res["server_cpu_cores"] = cpu / wall
            out[label] = res
        print(f"  {mode:<12} {res['updates_per_s']:>9,.0f} updates/s  p50 {res['p50_ms']:.2f} ms  "
              f"p99 {res['p99_ms']:.2f} ms  {res['server_cpu_us_per_update']:.1f} us CPU/update  "
              f"errors {res['errors']}", flush=True)
    off, on = out["authz_off"]["server_cpu_us_per_update"], out["authz_on"]["server_cpu_us_per_update"]
    out["authz_overhead_us_per_update"] = on - off
    out["authz_overhead_fraction"] = (on - off) / max(on, 1e-9)
    out["target_fraction"] = 0.10
    out["authz_check_us"] = check = authorizer_check_us()
    out["authz_check_fraction"] = check / max(on, 1e-9)
    print(f"  one Node,RBAC decision in process: {check:.2f} us CPU = {out['authz_check_fraction']:.1%} of the "
          "request's server CPU", flush=True)
    print(f"  authorization: {on - off:+.1f} us CPU per update, {out['authz_overhead_fraction']:.1%} of the "
          f"request's server CPU (target <= 10 %)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--leases", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--renew-procs", type=int, default=1)
    ap.add_argument("--auth", action="store_true",
                    help="measure authorization (Node,RBAC vs AlwaysAllow) on TLS renewals instead")
    ap.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("port", nargs="?", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server:
        from harness import serve_fixed

        serve_fixed(args.port, LEASE.replace(b"@NAME@", b"node-000000").replace(b"@RV@", b"12345").replace(b"@N@", b"1"))
        return
    leases = args.leases or (2000 if args.full else 200)
    seconds = args.seconds or (20.0 if args.full else 6.0)
    root = tempfile.mkdtemp(prefix="megaplane-lease-bench-")
    if args.auth:
        print(f"api_lease_updates --auth: {leases} renewing TLS connections for {seconds:.0f} s per server", flush=True)
        print(json.dumps(auth_comparison(leases, seconds, root)))
        return
    results: dict = {"leases": leases, "seconds": seconds, "watchers": args.watchers}
    print(f"api_lease_updates: {leases} renewing connections for {seconds:.0f} s, {args.watchers} lease watchers", flush=True)

    # 1. megaplane apiserver
    with apiserver() as (server, base):
        port = int(base.rsplit(":", 1)[1])
        create_namespace(base, "bench")
        with open(os.path.join(root, "lease-create.json"), "wb") as f:
            f.write(without_resource_version(LEASE))
        with open(os.path.join(root, "lease.json"), "wb") as f:
            f.write(LEASE)
        rvs = create_leases(port, "node", leases, root)
        list_rv = max(int(v) for v in rvs.values())
        watchers = loadgen(["--port", str(port), "watch", f"/apis/coordination.k8s.io/v1/leases?watch=true&resourceVersion={list_rv}",
                            str(args.watchers), str(seconds)])
        assert watchers.stdout is not None
        watchers.stdout.readline()  # "watching"
        res, cpu, wall = measure(server.pid, lambda: renew(port, rvs, seconds, args.renew_procs, root))
        watch_out = result(watchers)
        res["server_cpu_us_per_update"] = per_update(cpu, wall, seconds, res)
        res["server_cpu_cores"] = cpu / wall
        res["watch_events_per_s"] = watch_out["events_per_s"]
        results["megaplane"] = res
    # 1b. the secure port of a server without flow control, HTTP/1.1 then HTTP/2, no watchers: the transports
    # alone (with APF, 100 requests of one user arriving in one read of one connection meet its queue limits,
    # as they would upstream's).
    secure_port = free_port()
    kubeconfig = os.path.join(root, "kubeconfig")
    with apiserver(["--secure-port", str(secure_port), "--kubeconfig", kubeconfig,
                    "--enable-priority-and-fairness=false", "--max-requests-inflight", "0",
                    "--max-mutating-requests-inflight", "0"]) as (server, base):
        tls_port = int(base.rsplit(":", 1)[1])
        create_namespace(base, "bench")
        for protocol in ("http1", "h2"):
            tls_rvs = create_leases(tls_port, protocol, leases, root)
            out, cpu, wall = measure(server.pid, functools.partial(renew_tls, secure_port, kubeconfig, protocol,
                                                                   tls_rvs, seconds, root))
            out["server_cpu_us_per_update"] = per_update(cpu, wall, seconds, out)
            out["server_cpu_cores"] = cpu / wall
            results[f"tls_{protocol}"] = out
    print(f"  megaplane apiserver  {res['updates_per_s']:>9,.0f} updates/s  p50 {res['p50_ms']:.2f} ms  "
          f"p99 {res['p99_ms']:.2f} ms  {res['server_cpu_us_per_update']:.0f} us CPU/update  "
          f"watch events {res['watch_events_per_s']:,.0f}/s  errors {res['errors']}", flush=True)

    # 2. the ceiling
    with python_server(os.path.abspath(__file__), ["--bare-server"]) as (bare, port):
        ceil, cpu, wall = measure(bare.pid, lambda: renew(port, rvs, seconds, args.renew_procs, root))
        ceil["server_cpu_us_per_update"] = per_update(cpu, wall, seconds, ceil)
        results["ceiling_bare_httptools"] = ceil
    print(f"  ceiling (bare)       {ceil['updates_per_s']:>9,.0f} updates/s  p50 {ceil['p50_ms']:.2f} ms  "
          f"p99 {ceil['p99_ms']:.2f} ms  {ceil['server_cpu_us_per_update']:.0f} us CPU/update", flush=True)
    for protocol, label in (("http1", "TLS HTTP/1.1"), ("h2", "TLS HTTP/2")):
        out = results[f"tls_{protocol}"]
        print(f"  {label:<20} {out['updates_per_s']:>9,.0f} updates/s  p50 {out['p50_ms']:.2f} ms  "
              f"p99 {out['p99_ms']:.2f} ms  {out['server_cpu_us_per_update']:.0f} us CPU/update  "
              f"{out['connections']} connections  errors {out['errors']} {out.get('error_statuses') or ''}", flush=True)
    h1, h2 = results["tls_http1"], results["tls_h2"]
    results["h2_vs_http1_cpu_per_update"] = h2["server_cpu_us_per_update"] / max(h1["server_cpu_us_per_update"], 1e-9)
    ratio = res["updates_per_s"] / max(ceil["updates_per_s"], 1)
    results["ratio_vs_ceiling"] = ratio
    print()
    print(markdown_table(
        ["server", "updates/s", "p50 ms", "p99 ms", "server CPU us/update", "watch events/s", "target"],
        [
            ["megaplane apiserver", f"{res['updates_per_s']:,.0f}", f"{res['p50_ms']:.2f}", f"{res['p99_ms']:.2f}",
             f"{res['server_cpu_us_per_update']:.0f}", f"{res['watch_events_per_s']:,.0f}", ">= 25,000/s"],
            ["bare asyncio+httptools+uvloop (ceiling)", f"{ceil['updates_per_s']:,.0f}", f"{ceil['p50_ms']:.2f}",
             f"{ceil['p99_ms']:.2f}", f"{ceil['server_cpu_us_per_update']:.0f}", "-", "-"],
            ["ratio megaplane / ceiling", f"{ratio:.2f}", "", "", "", "", ">= 0.50"],
            ["megaplane, TLS HTTP/1.1 (no watchers)", f"{h1['updates_per_s']:,.0f}", f"{h1['p50_ms']:.2f}",
             f"{h1['p99_ms']:.2f}", f"{h1['server_cpu_us_per_update']:.0f}", "-", "-"],
            ["megaplane, TLS HTTP/2 (no watchers)", f"{h2['updates_per_s']:,.0f}", f"{h2['p50_ms']:.2f}",
             f"{h2['p99_ms']:.2f}", f"{h2['server_cpu_us_per_update']:.0f}", "-", "-"],
        ],
    ))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
