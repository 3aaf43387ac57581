"""A real `megaplane up` for client tests (tests/api's starter), and one that restarts on fixed ports.

`cluster` is tests/api's module fixture (plain HTTP port + HTTPS port and
the kubeconfig it writes). `start_on(root, port, secure_port, extra)` runs
the same command on given ports, so a test can kill -9 the server and
bring it back where its clients expect it, on the same data dir.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any, Awaitable, Callable, List, Optional

from tests.api.conftest import Cluster, cluster, start_cluster  # noqa: F401  (fixture re-exported)


def start_on(root: str, port: int, secure_port: int, extra: Optional[List[str]] = None) -> Cluster:
    kubeconfig = os.path.join(root, "kubeconfig")
    log = open(os.path.join(root, "megaplane.log"), "a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "megaplane.cli", "up", "--port", str(port), "--secure-port", str(secure_port),
         "--kubeconfig", kubeconfig, "--data-dir", os.path.join(root, "data"), *(extra or [])],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"megaplane up exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200 and os.path.exists(kubeconfig):
                    return Cluster(proc, port, kubeconfig, root)
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("megaplane up did not become ready")


async def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` (sync or async) until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
