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
check, the Node authorizer's no-opinion, a memoised rule lookup), measured
in alternating windows (each mode's best window counts). Client
certificate authentication happens in both (per connection, at the TLS
handshake); the figure is the server CPU per update with RBAC minus
without, as a share of the request's server CPU (target <= 10 %). On a
shared machine that end-to-end difference swings by more than itself, so
two in-process figures follow: a Lease PUT through `APIServer.handle`
(routing, authorization, the store; no sockets) with AlwaysAllow vs
Node,RBAC, alternating, best of two each, and one Node,RBAC decision
alone.

Reference measured in the same run with the same load generator: the
ceiling, a bare asyncio + httptools + uvloop server that answers every PUT
with a fixed Lease body and does nothing else (the floor of any Python
HTTP server on this machine). Targets (issue #4): >= 25,000 updates/s from
one apiserver process, and >= 50 % of the ceiling.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Tuple

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


def handler_cpu_us(modes: str, updates: int = 10_000, leases: int = 200) -> float:
    """Server CPU of one Lease PUT through `APIServer.handle` in process (routing, authorization, the store's
    update), the requester `bench-kubelet` with the same Role and RoleBinding: no sockets, TLS or load
    generator to disturb the figure, so the share authorization takes of it is an upper bound of its share
    of a real request's CPU."""
    import asyncio
    import time

    import orjson

    from megaplane.apimachinery.resources import lookup
    from megaplane.apimachinery.user import ALL_AUTHENTICATED, UserInfo
    from megaplane.apiserver.authz.config import AuthorizationConfig
    from megaplane.apiserver.http.messages import Request
    from megaplane.apiserver.registry.options import DEFAULT_WRITE
    from megaplane.apiserver.server import APIServer, APIServerConfig
    from megaplane.storage import EmbeddedStorage
    from megaplane.store import Store

    user = UserInfo("bench-kubelet", groups=(ALL_AUTHENTICATED,))

    class Authenticated:  # the request's user as a client certificate would give it (authentication not timed)
        def authenticate(self, req: Any) -> UserInfo:
            return user

    async def run() -> float:
        api = APIServer(EmbeddedStorage(Store(None)), APIServerConfig(
            authorization=AuthorizationConfig(modes.split(","))))
        await api.start()
        api.authenticator = Authenticated()
        reg, rbac = api.registry, "rbac.authorization.k8s.io"
        await reg.store(lookup("", "namespaces")).create("", {"metadata": {"name": "bench"}}, DEFAULT_WRITE)
        await reg.store(lookup(rbac, "roles")).create("bench", {
            "metadata": {"name": "renewer", "namespace": "bench"}, "rules": [{
                "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update"]}]},
            DEFAULT_WRITE)
        await reg.store(lookup(rbac, "rolebindings")).create("bench", {
            "metadata": {"name": "renewer", "namespace": "bench"},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "renewer"},
            "subjects": [{"apiGroup": rbac, "kind": "User", "name": "bench-kubelet"}]}, DEFAULT_WRITE)
        store = reg.store(lookup("coordination.k8s.io", "leases"))
        rvs = {}
        for i in range(leases):
            name = f"node-{i:06d}"
            made = await store.create("bench", orjson.loads(without_resource_version(LEASE).replace(
                b"@NAME@", name.encode()).replace(b"@N@", b"0")), DEFAULT_WRITE)
            rvs[name] = orjson.loads(made.data)["metadata"]["resourceVersion"]
        headers = {"content-type": "application/json", "accept": "application/json"}

        async def put(i: int) -> None:
            name = f"node-{i % leases:06d}"
            body = LEASE.replace(b"@NAME@", name.encode()).replace(b"@RV@", rvs[name].encode()).replace(
                b"@N@", str(i % 1000).encode())
            req = Request("PUT", f"/apis/coordination.k8s.io/v1/namespaces/bench/leases/{name}", "", headers, body,
                          None)
            answer = api.handle(req)
            if asyncio.iscoroutine(answer):
                answer = await answer
            assert answer.status == 200, answer.body
            rvs[name] = orjson.loads(answer.body)["metadata"]["resourceVersion"]
            await asyncio.sleep(0)  # a loop turn, as between requests: flow control gives seats back at turn end

        for i in range(leases):
            await put(i)  # warm
        began = time.process_time()
        for i in range(updates):
            await put(i)
        took = time.process_time() - began
        await api.stop()
        return took / updates * 1e6

    return asyncio.run(run())


def _auth_server(stack: contextlib.ExitStack, label: str, mode: str, root: str) -> Tuple[Any, int, int, str]:
    """A `megaplane apiserver` with --authorization-mode `mode`, the bench namespace, a Role and RoleBinding
    letting `bench-kubelet` renew leases there, and that user's kubeconfig (a client certificate)."""
    from harness import post_json

    from megaplane.apiserver.http.tls import issue_client_cert, write_kubeconfig

    data = tempfile.mkdtemp(prefix=f"megaplane-lease-bench-{label}-", dir=root)
    secure_port = free_port()
    server, base = stack.enter_context(apiserver([
        "--data-dir", data, "--secure-port", str(secure_port), "--kubeconfig", os.path.join(data, "admin.kubeconfig"),
        "--authorization-mode", mode]))
    create_namespace(base, "bench")
    post_json(base, "/apis/rbac.authorization.k8s.io/v1/namespaces/bench/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "renewer"},
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update"]}]})
    post_json(base, "/apis/rbac.authorization.k8s.io/v1/namespaces/bench/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "renewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "renewer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench-kubelet"}]})
    pki = os.path.join(data, "pki")
    crt, key = issue_client_cert(pki, "bench-kubelet", "bench-kubelet")
    kubeconfig = os.path.join(data, "bench-kubelet.kubeconfig")
    write_kubeconfig(kubeconfig, f"https://127.0.0.1:{secure_port}", os.path.join(pki, "ca.crt"), crt, key,
                     user="bench-kubelet")
    return server, int(base.rsplit(":", 1)[1]), secure_port, kubeconfig


def auth_comparison(leases: int, seconds: float, root: str, rounds: int = 3) -> dict:
    """Server CPU per TLS renewal as a RoleBinding-authorized user, authorization off and on.

    Both servers run for the whole comparison and are measured in turns (off-on, on-off, ...), each
    window on fresh Leases, and each mode's least-disturbed window counts: on a shared machine the
    neighbours' load moves a single window's figure by more than the difference measured."""
    out: dict = {"leases": leases, "seconds_per_window": seconds, "rounds": rounds}
    with open(os.path.join(root, "lease-create.json"), "wb") as f:
        f.write(without_resource_version(LEASE))
    with open(os.path.join(root, "lease.json"), "wb") as f:
        f.write(LEASE)
    modes = (("authz_off", "AlwaysAllow"), ("authz_on", "Node,RBAC"))
    with contextlib.ExitStack() as stack:
        servers = {label: _auth_server(stack, label, mode, root) for label, mode in modes}
        windows: Dict[str, List[dict]] = {label: [] for label, _ in modes}
        for r in range(rounds):
            for label, mode in (modes if r % 2 == 0 else modes[::-1]):  # neither always goes first
                server, port, secure_port, kubeconfig = servers[label]
                rvs = create_leases(port, f"r{r}", leases, root)
                res, cpu, wall = measure(server.pid, functools.partial(
                    renew_tls, secure_port, kubeconfig, "http1", rvs, seconds, root))
                res["server_cpu_us_per_update"] = per_update(cpu, wall, seconds, res)
                res["server_cpu_cores"] = cpu / wall
                windows[label].append(res)
                print(f"  round {r + 1} {mode:<12} {res['updates_per_s']:>9,.0f} updates/s  "
                      f"p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  "
                      f"{res['server_cpu_us_per_update']:.1f} us CPU/update  errors {res['errors']}", flush=True)
    for label, _ in modes:
        out[label] = min(windows[label], key=lambda w: w["server_cpu_us_per_update"])
        out[label + "_windows_us"] = [w["server_cpu_us_per_update"] for w in windows[label]]
    off, on = out["authz_off"]["server_cpu_us_per_update"], out["authz_on"]["server_cpu_us_per_update"]
    out["authz_overhead_us_per_update"] = on - off
    out["authz_overhead_fraction"] = (on - off) / max(on, 1e-9)
    out["target_fraction"] = 0.10
    runs: Dict[str, List[float]] = {"AlwaysAllow": [], "Node,RBAC": []}
    for _ in range(2):  # alternating, best of each
        for mode in runs:
            runs[mode].append(handler_cpu_us(mode))
    out["handler_us_authz_off"] = h_off = min(runs["AlwaysAllow"])
    out["handler_us_authz_on"] = h_on = min(runs["Node,RBAC"])
    out["handler_authz_overhead_us"] = h_on - h_off
    out["handler_authz_overhead_fraction"] = (h_on - h_off) / max(h_on, 1e-9)
    print(f"  in process, APIServer.handle of a Lease PUT: {h_off:.1f} us AlwaysAllow, {h_on:.1f} us Node,RBAC: "
          f"{h_on - h_off:+.1f} us = {out['handler_authz_overhead_fraction']:.1%} (target <= 10 %)", flush=True)
    out["authz_check_us"] = check = authorizer_check_us()
    out["authz_check_fraction"] = check / max(on, 1e-9)
    print(f"  one Node,RBAC decision in process: {check:.2f} us CPU = {out['authz_check_fraction']:.1%} of the "
          "request's server CPU", flush=True)
    print(f"  authorization (best windows): {on - off:+.1f} us CPU per update, {out['authz_overhead_fraction']:.1%} "
          "of the request's server CPU (target <= 10 %)", flush=True)
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
        window = seconds / 2
        print(f"api_lease_updates --auth: {leases} renewing TLS connections, {window:.0f} s windows, 3 rounds",
              flush=True)
        print(json.dumps(auth_comparison(leases, window, root)))
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
