"""Runner, run_forever (in a real child process, stopped by real signals) and PeriodicTask."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest

from megaplane.runtime import Component, ComponentStopError, PeriodicTask, Runner, Statistics
from megaplane.testing import AutoAdvanceClock

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("runner_child.py")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


class Recorder:
    """A component that records its calls in a shared journal."""

    def __init__(self, name: str, journal: List[str], *, fail_start: bool = False,
                 fail_stop: bool = False, hang_stop: bool = False) -> None:
        self.name = name
        self.journal = journal
        self.fail_start = fail_start
        self.fail_stop = fail_stop
        self.hang_stop = hang_stop
        self.running = False

    async def start(self) -> None:
        self.journal.append(f"start {self.name}")
        await asyncio.sleep(0)
        if self.fail_start:
            raise OSError(f"{self.name}: address in use")
        self.running = True

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")
        if self.hang_stop:
            await asyncio.Event().wait()
        self.running = False
        if self.fail_stop:
            raise RuntimeError(f"{self.name}: flush failed")

    def ready(self) -> bool:
        return self.running

    def statistics(self) -> Statistics:
        return {"running": self.running, "calls": len(self.journal)}


def test_recorder_is_a_component() -> None:
    component: Component = Recorder("x", [])
    assert component.name == "x"


def test_starts_in_order_and_stops_in_reverse() -> None:
    journal: List[str] = []
    runner = Runner([Recorder(n, journal) for n in ("store", "apiserver", "scheduler")])

    async def main() -> None:
        assert not runner.ready()
        await runner.start()
        assert runner.ready()
        assert [c.name for c in runner.started] == ["store", "apiserver", "scheduler"]
        await runner.stop()
        assert not runner.ready()
        assert runner.started == ()

    run(main())
    assert journal == [
        "start store", "start apiserver", "start scheduler",
        "stop scheduler", "stop apiserver", "stop store",
    ]


def test_failed_start_stops_what_started_in_reverse_and_reraises(caplog: pytest.LogCaptureFixture) -> None:
    journal: List[str] = []
    runner = Runner([Recorder("store", journal), Recorder("apiserver", journal),
                     Recorder("etcd", journal, fail_start=True), Recorder("scheduler", journal)])
    with caplog.at_level(logging.ERROR, logger="megaplane.runtime"):
        with pytest.raises(OSError, match="etcd: address in use"):
            run(runner.start())
    # the failed component is stopped too (it may hold part of what it took); later ones never start
    assert journal == ["start store", "start apiserver", "start etcd",
                       "stop etcd", "stop apiserver", "stop store"]
    assert runner.started == ()
    assert "etcd failed to start" in caplog.text


def test_failed_start_reraises_the_start_error_even_if_a_rollback_stop_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: List[str] = []
    runner = Runner([Recorder("store", journal, fail_stop=True), Recorder("api", journal, fail_start=True)])
    with caplog.at_level(logging.ERROR, logger="megaplane.runtime"):
        with pytest.raises(OSError):
            run(runner.start())
    assert journal == ["start store", "start api", "stop api", "stop store"]
    assert "store failed to stop" in caplog.text
    assert "flush failed" in caplog.text


def test_stop_errors_are_logged_the_rest_still_stop_then_they_are_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: List[str] = []
    runner = Runner([Recorder("store", journal), Recorder("apiserver", journal, fail_stop=True),
                     Recorder("scheduler", journal)])

    async def main() -> None:
        await runner.start()
        with pytest.raises(ComponentStopError) as info:
            await runner.stop()
        assert [str(e) for e in info.value.exceptions] == ["apiserver: flush failed"]

    with caplog.at_level(logging.ERROR, logger="megaplane.runtime"):
        run(main())
    assert journal[-3:] == ["stop scheduler", "stop apiserver", "stop store"]
    assert "apiserver failed to stop" in caplog.text
    assert "RuntimeError: apiserver: flush failed" in caplog.text  # with its traceback


def test_each_stop_is_bounded_by_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    journal: List[str] = []
    runner = Runner([Recorder("store", journal), Recorder("stuck", journal, hang_stop=True)],
                    stop_timeout=0.05)

    async def main() -> None:
        await runner.start()
        with pytest.raises(ComponentStopError) as info:
            await runner.stop()
        (error,) = info.value.exceptions
        assert isinstance(error, TimeoutError)
        assert "stuck did not stop" in str(error)

    with caplog.at_level(logging.ERROR, logger="megaplane.runtime"):
        run(main())
    assert journal[-2:] == ["stop stuck", "stop store"]
    assert "stuck did not stop within" in caplog.text


def test_ready_needs_every_component_ready_and_statistics_are_prefixed() -> None:
    journal: List[str] = []
    store, api = Recorder("store", journal), Recorder("api", journal)
    runner = Runner([store, api])

    async def main() -> None:
        await runner.start()
        assert runner.ready()
        api.running = False
        assert not runner.ready()
        stats = runner.statistics()
        assert stats["started"] == 2
        assert stats["store.running"] is True and stats["api.running"] is False
        await runner.stop()

    run(main())


def test_runners_nest_and_refuse_bad_configuration() -> None:
    journal: List[str] = []
    inner = Runner([Recorder("a", journal), Recorder("b", journal)], name="controllers")
    outer = Runner([Recorder("store", journal), inner])

    async def main() -> None:
        await outer.start()
        assert outer.ready()
        with pytest.raises(RuntimeError, match="already started"):
            await outer.start()
        await outer.stop()

    run(main())
    assert journal == ["start store", "start a", "start b", "stop b", "stop a", "stop store"]
    with pytest.raises(ValueError, match="unique, repeated: a"):
        Runner([Recorder("a", []), Recorder("a", [])])
    with pytest.raises(ValueError, match="stop_timeout must be positive"):
        Runner([], stop_timeout=0)
    with pytest.raises(ValueError, match="NaN"):
        Runner([], stop_timeout=math.nan)


# -- run_forever in a real process ---------------------------------------------


class Child:
    """A `runner_child.py` process whose stdout lines are read as they come."""

    def __init__(self, mode: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, str(CHILD), mode], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.seen: List[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, marker: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"child exited before printing {marker!r}; printed {self.seen}")
            self.seen.append(line)

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        while (line := self.lines.get(timeout=timeout)) is not None:
            self.seen.append(line)
        return code

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_forever_stops_components_in_reverse_on_a_signal(signum: signal.Signals) -> None:
    child = Child("normal")
    try:
        child.wait_for("started")
        child.proc.send_signal(signum)
        code = child.finish()
    finally:
        child.proc.kill()
    assert code == 0, child.stderr()
    assert child.seen == ["start store", "start apiserver", "start controllers", "started",
                          "stop controllers", "stop apiserver", "stop store", "exited"]


def test_run_forever_exits_at_once_on_a_second_signal() -> None:
    child = Child("slowstop")
    try:
        child.wait_for("started")
        child.proc.send_signal(signal.SIGTERM)
        child.wait_for("stop controllers")  # hangs there
        child.proc.send_signal(signal.SIGTERM)
        code = child.finish()
    finally:
        child.proc.kill()
    assert code == 1
    assert "stop apiserver" not in child.seen and "exited" not in child.seen
    assert "second SIGTERM: exiting now" in child.stderr()


def test_run_forever_propagates_a_start_failure_after_rolling_back() -> None:
    child = Child("failstart")
    try:
        code = child.finish()
    finally:
        child.proc.kill()
    assert code == 1
    assert child.seen == ["start store", "start apiserver", "start controllers",
                          "stop controllers", "stop apiserver", "stop store"]
    assert "RuntimeError: controllers cannot start" in child.stderr()


# -- PeriodicTask ----------------------------------------------------------------


def test_periodic_task_runs_every_interval_on_the_clock() -> None:
    async def main() -> None:
        clock = AutoAdvanceClock(start=0.0)
        calls: List[float] = []
        task = PeriodicTask("lease-expiry", 0.5, lambda: calls.append(clock.monotonic()), clock=clock)
        assert not task.ready()
        await task.start()
        assert task.ready()
        await clock.sleep(2.2)
        await task.stop()
        assert not task.ready()
        assert calls == [0.5, 1.0, 1.5, 2.0]
        assert task.statistics() == {"runs": 4, "errors": 0, "last_duration_seconds": 0.0}
        await task.stop()  # idempotent

    run(main())


def test_periodic_task_logs_errors_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> PeriodicTask:
        clock = AutoAdvanceClock(start=0.0)
        calls: List[float] = []

        async def flaky() -> None:
            calls.append(clock.monotonic())
            await clock.sleep(0.25)  # measured from the end of a call: next one 1 s after this
            if len(calls) % 2:
                raise ValueError(f"call {len(calls)} failed")

        task = PeriodicTask("flaky", 1, flaky, clock=clock, immediately=True)
        await task.start()
        await clock.sleep(4)
        await task.stop()
        assert calls == [0.0, 1.25, 2.5, 3.75]
        return task

    with caplog.at_level(logging.ERROR, logger="megaplane.runtime"):
        task = run(main())
    assert task.runs == 3 and task.errors == 2
    assert task.last_duration == 0.25
    assert "flaky: periodic call failed (1 failures so far)" in caplog.text
    assert "ValueError: call 3 failed" in caplog.text


def test_periodic_task_stop_cancels_a_call_in_progress_and_input_is_checked() -> None:
    async def main() -> None:
        clock = AutoAdvanceClock(start=0.0)
        entered = asyncio.Event()

        async def forever() -> None:
            entered.set()
            await asyncio.Event().wait()

        task = PeriodicTask("stuck", 1, forever, clock=clock, immediately=True)
        await task.start()
        with pytest.raises(RuntimeError, match="already started"):
            await task.start()
        await entered.wait()
        await task.stop()
        assert not task.ready()

    run(main())
    with pytest.raises(ValueError, match="interval must be positive"):
        PeriodicTask("x", 0, lambda: None)
    with pytest.raises(TypeError, match="must be callable"):
        PeriodicTask("x", 1, None)  # type: ignore[arg-type]


def test_freeze_survivors_moves_survivors_out_of_the_collectors_generations() -> None:
    import gc

    from megaplane.runtime import cancel_tasks, freeze_survivors

    async def main() -> int:
        survivors = [{"i": [i]} for i in range(1000)]  # tracked containers that live on
        task = asyncio.ensure_future(freeze_survivors(0.01))
        deadline = asyncio.get_running_loop().time() + 10
        while gc.get_freeze_count() < len(survivors) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await cancel_tasks([task])
        return gc.get_freeze_count()

    gc.unfreeze()
    try:
        assert asyncio.run(main()) >= 1000
    finally:
        gc.unfreeze()
