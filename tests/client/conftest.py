"""A real `megaplane up` for client tests (tests/api's starter), and one that restarts on fixed ports.

`cluster` is tests/api's module fixture (plain HTTP port + HTTPS port and
the kubeconfig it writes). `start_on(root, port, secure_port, extra)` runs
the same command on given ports, so a test can kill -9 the server and
bring it back where its clients expect it, on the same data dir.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, List, Optional

from tests.api.conftest import Cluster, cluster, start_cluster  # noqa: F401  (fixture re-exported)


def start_on(root: str, port: int, secure_port: int, extra: Optional[List[str]] = None) -> Cluster:
    """`megaplane up` on fixed ports (to restart a killed server where its clients expect it)."""
    return start_cluster(root, extra, port=port, secure_port=secure_port)


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
