"""The tenant worker processes of `megaplane scheduler --tenant-workers N`, started and kept running.

A `megaplane.runtime.Component` of the leading scheduler process: it
starts workers 1..N-1 as `megaplane scheduler` processes of their own
(the same flags, without leader election and endpoints, with
`--tenant-worker-index i`), restarts one that exits (after a second, so a
worker that cannot start does not spin), and stops them all when it
stops, so only the elected scheduler's workers place pods. Each worker
is told to die with its parent (PR_SET_PDEATHSIG), so a parent killed by
SIGKILL leaves no worker scheduling behind a new leader.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Callable, Dict, List, Optional, Sequence

from megaplane.runtime import die_with_parent

__all__ = ["TenantWorkers", "worker_argv"]

log = logging.getLogger("megaplane.scheduler.workers")

RESTART_DELAY = 1.0


def worker_argv(parent_argv: Sequence[str], index: int) -> List[str]:
    """`megaplane scheduler` arguments for worker `index` from the parent's (its own election and ports dropped)."""
    out: List[str] = []
    skip = False
    for arg in parent_argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in ("--port", "--tenant-worker-index"):
            skip = "=" not in arg
            continue
        if name == "--leader-elect":
            continue  # a bare flag or --leader-elect=...; a separate value is read as the next flag's
        out.append(arg)
    return out + ["--leader-elect=false", "--port", "0", "--tenant-worker-index", str(index)]


class TenantWorkers:
    """Workers 1..count-1 as child processes, supervised while this component runs."""

    def __init__(self, parent_argv: Sequence[str], count: int, announce: Callable[[str], None] = print) -> None:
        self.parent_argv = list(parent_argv)
        self.count = count
        self.announce = announce
        self.processes: Dict[int, asyncio.subprocess.Process] = {}
        self.restarts = 0
        self._tasks: List["asyncio.Task[None]"] = []
        self._stopping = False

    @property
    def name(self) -> str:
        return "tenant-workers"

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        argv = [sys.executable, "-c", "import sys; from megaplane.cli import main; sys.exit(main())",
                "scheduler", *worker_argv(self.parent_argv, index)]
        proc = await asyncio.create_subprocess_exec(*argv, preexec_fn=die_with_parent)
        self.processes[index] = proc
        return proc

    async def _supervise(self, index: int) -> None:
        while not self._stopping:
            proc = await self._spawn(index)
            self.announce(f"tenant worker {index}/{self.count} started (pid {proc.pid})")
            code = await proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            self.announce(f"tenant worker {index}/{self.count} exited with {code}; restarting in {RESTART_DELAY:.0f}s")
            await asyncio.sleep(RESTART_DELAY)

    async def start(self) -> None:
        self._stopping = False
        loop = asyncio.get_running_loop()
        for index in range(1, self.count):
            self._tasks.append(loop.create_task(self._supervise(index)))

    async def stop(self) -> None:
        self._stopping = True
        for proc in self.processes.values():
            if proc.returncode is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.processes = {}

    def ready(self) -> bool:
        return all(p.returncode is None for p in self.processes.values()) and len(self.processes) == self.count - 1

    def statistics(self) -> Dict[str, float]:
        alive = sum(1 for p in self.processes.values() if p.returncode is None)
        return {"workers": float(alive), "restarts": float(self.restarts)}

    def pids(self) -> List[Optional[int]]:
        return [p.pid for p in self.processes.values()]
