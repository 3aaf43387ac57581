"""What the benchmarks share: ports, processes pinned to cores, CPU accounting, servers to measure.

Every benchmark runs the server under test as a separate process pinned to
core 0 and its load generator on core 1 (this machine has two), so the
server's CPU per request can be read from /proc and compared with a
reference measured in the same run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# /proc accounting and process placement live in megaplane.bench (megaplane bench uses them at run time).
from megaplane.bench.procfs import cpu_seconds, free_port, pinned, rss_bytes, wait_http  # noqa: E402, F401

LOADGEN = os.path.join(ROOT, "benchmarks", "loadgen.py")
SERVER_CORE = 0
CLIENT_CORE = 1







def measure(pid: int, fn: Callable[[], Any]) -> Tuple[Any, float, float]:
    """Run `fn`; return its result, the CPU seconds `pid` used meanwhile and the wall seconds."""
    c0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    res = fn()
    wall = time.perf_counter() - t0
    return res, cpu_seconds(pid) - c0, wall


def median(xs: List[float]) -> float:
    return statistics.median(xs) if xs else 0.0


@contextlib.contextmanager
def apiserver(extra: Optional[List[str]] = None, core: int = SERVER_CORE,
              command: str = "apiserver") -> Iterator[Tuple[subprocess.Popen, str]]:
    """`megaplane apiserver` (or `up`) on the embedded store in a fresh data dir; yields (process, base URL)."""
    port = free_port()
    data = tempfile.mkdtemp(prefix="megaplane-bench-")
    log = open(data + ".log", "w")
    proc = subprocess.Popen(
        pinned([sys.executable, "-m", "megaplane.cli", command, "--port", str(port), "--secure-port", "0",
                "--data-dir", data, *(extra or [])], core),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/readyz", proc=proc)
        yield proc, base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(data + ".log")


@contextlib.contextmanager
def python_server(script: str, args: List[str], core: int = SERVER_CORE) -> Iterator[Tuple[subprocess.Popen, int]]:
    """A reference server (a benchmark's own `--bare-server` mode) on a free port; yields (process, port)."""
    port = free_port()
    proc = subprocess.Popen(pinned([sys.executable, script, *args, str(port)], core), cwd=ROOT)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"reference server exited with {proc.returncode}")
            time.sleep(0.05)
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(10)


def loadgen(args: List[str], core: int = CLIENT_CORE) -> subprocess.Popen:
    """Start benchmarks/loadgen.py; its result is the JSON on its last stdout line (see `result`)."""
    return subprocess.Popen(pinned([sys.executable, LOADGEN, *args], core), stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> Dict[str, Any]:
    out = proc.communicate()[0]
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed with {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def post_json(base: str, path: str, obj: Dict[str, Any], ok_conflict: bool = False) -> Dict[str, Any]:
    req = urllib.request.Request(base + path, data=json.dumps(obj).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        if ok_conflict and exc.code == 409:
            return {}
        raise


def create_namespace(base: str, name: str) -> None:
    post_json(base, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, ok_conflict=True)


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def serve_fixed(port: int, body: bytes) -> None:
    """The HTTP ceiling: asyncio + httptools + uvloop answering every request with `body`, doing nothing else."""
    import asyncio

    import httptools
    import uvloop

    response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    class Fixed(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            self.transport.write(response)  # type: ignore[attr-defined]

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Fixed, "127.0.0.1", port, backlog=4096)
        await server.serve_forever()

    uvloop.run(serve())


def pod_template(namespace: str, node: str = "") -> bytes:
    """A pod as kwok-run fleets carry them (one container with resources, env, mounts, tolerations).

    The body is a loadgen template: @NAME@ is the pod's name, and @RV@/@N@
    (for updates) its resourceVersion and an annotation that changes each time.
    """
    pod: Dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "@NAME@",
            "namespace": namespace,
            "resourceVersion": "@RV@",
            "labels": {"app": "bench", "pod-template-hash": "7d4b9c8f6d", "tier": "backend"},
            "annotations": {"bench/update": "@N@"},
        },
        "spec": {
            "containers": [{
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "args": ["--port=8080", "--log-level=info"],
                "env": [{"name": "POD_NAME", "value": "@NAME@"}, {"name": "MODE", "value": "bench"}],
                "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
            }],
            "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
            "tolerations": [
                {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
            "nodeName": node,
        },
    }
    if not node:
        del pod["spec"]["nodeName"]
    return json.dumps(pod, separators=(",", ":")).encode()


def without_resource_version(template: bytes) -> bytes:
    return template.replace(b'"resourceVersion":"@RV@",', b"").replace(b',"resourceVersion":"@RV@"', b"")
