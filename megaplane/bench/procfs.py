"""What /proc says about a process: CPU seconds, resident memory, run-queue wait; and where to run one.

Shared with benchmarks/harness.py (which imports these): every measurement
of a megaplane process's cost reads the kernel's accounting, not the
process's own view of itself.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from typing import List, Optional

__all__ = ["cpu_seconds", "free_port", "pinned", "rss_bytes", "runqueue_seconds", "wait_http"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE_SIZE


def runqueue_seconds(pid: int) -> float:
    """Seconds the process's threads have spent runnable but waiting for a CPU (/proc/PID/task/*/schedstat).

    The cores are shared: a window in which a neighbour held the core shows up here, not as CPU.
    """
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pinned(cmd: List[str], core: Optional[int]) -> List[str]:
    """`cmd` bound to one core when taskset exists and the machine has that core (None: unpinned)."""
    if core is not None and shutil.which("taskset") and core < (os.cpu_count() or 1):
        return ["taskset", "-c", str(core), *cmd]
    return cmd


def wait_http(url: str, timeout: float = 30.0, proc: "Optional[subprocess.Popen[bytes]]" = None) -> None:
    """Poll `url` until it answers 2xx; RuntimeError if `proc` exits first or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout:g}s")
