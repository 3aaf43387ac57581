"""Real processes for the fleet tests: `megaplane up --nodes N`, `megaplane apiserver`, `megaplane fleet` shards.

Everything talks over sockets: kubectl through the kubeconfig the server
writes (HTTPS), the kubernetes Python client over the plain port. Waits
poll for a state until a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator, List, Optional, TypeVar

from tests.api.conftest import KUBECTL, Cluster, start_megaplane

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
    return start_megaplane(root, command, list(extra or []), timeout=60)


@contextlib.contextmanager
def server_in_tmp(prefix: str, command: str = "up", extra: Optional[List[str]] = None) -> Iterator[Cluster]:
    """`start_server` in a fresh temporary directory, stopped and removed afterwards (a module fixture's body)."""
    root = tempfile.mkdtemp(prefix=prefix)
    cluster = start_server(root, command, extra)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


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
    log.close()  # the child holds its own descriptor
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
