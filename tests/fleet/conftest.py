"""Real processes for the fleet tests: `megaplane up --nodes N`, `megaplane apiserver`, `megaplane fleet` shards.

Everything talks over sockets: kubectl through the kubeconfig the server
writes (HTTPS), the kubernetes Python client over the plain port. Waits
poll for a state until a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any, Callable, List, Optional, TypeVar

from tests.api.conftest import KUBECTL, Cluster
from tests.etcd.conftest import free_port

__all__ = ["Fleet", "eventually", "start_server", "start_fleet", "lease_renew_time", "KUBECTL"]

T = TypeVar("T")


def eventually(probe: Callable[[], Optional[T]], what: str, timeout: float = 30.0, every: float = 0.1) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` and its last answer at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
        time.sleep(every)


def start_server(root: str, command: str = "up", extra: Optional[List[str]] = None) -> Cluster:
    """`megaplane up` / `megaplane apiserver` on free ports, in memory; ready once /readyz and the kubeconfig are."""
    port, secure = free_port(), free_port()
    kubeconfig = os.path.join(root, "kubeconfig")
    log = open(os.path.join(root, f"{command}.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "megaplane.cli", command, "--port", str(port), "--secure-port", str(secure),
         "--kubeconfig", kubeconfig, *(extra or [])],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"megaplane {command} exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200 and os.path.exists(kubeconfig):
                    return Cluster(proc, port, kubeconfig, root)
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"megaplane {command} did not become ready")


class Fleet:
    """A `megaplane fleet` process; `lines` is what it printed so far."""

    def __init__(self, proc: subprocess.Popen, log_path: str) -> None:
        self.proc = proc
        self.log_path = log_path

    def output(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_fleet(cluster: Cluster, name: str, args: List[str]) -> Fleet:
    """`megaplane fleet --kubeconfig` the cluster's with `args`; returns once it says it is running."""
    log_path = os.path.join(cluster.root, f"fleet-{name}.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "megaplane.cli", "fleet", "--kubeconfig", cluster.kubeconfig, *args],
        stdout=log, stderr=subprocess.STDOUT,
    )
    fleet = Fleet(proc, log_path)
    try:
        eventually(lambda: proc.poll() is None and "running" in fleet.output() or proc.poll() is not None,
                   f"fleet {name} to start", timeout=60)
    except AssertionError:
        fleet.stop()
        raise
    if proc.poll() is not None:
        raise RuntimeError(f"megaplane fleet {name} exited with {proc.returncode}:\n{fleet.output()}")
    return fleet


def lease_renew_time(lease: Any) -> datetime.datetime:
    return lease.spec.renew_time
