"""A process run by test_runner.py: `run_forever` over components that print what happens to them.

Usage: runner_child.py MODE, MODE one of
  normal     three components; stop on SIGTERM/SIGINT
  slowstop   the last component's stop hangs (a second signal must exit at once)
  failstart  the third component fails to start
"""

from __future__ import annotations

import asyncio
import sys

from megaplane.runtime import run_forever


def say(line: str) -> None:
    print(line, flush=True)


class Marker:
    def __init__(self, name: str, fail_start: bool = False, hang_stop: bool = False) -> None:
        self.name = name
        self.fail_start = fail_start
        self.hang_stop = hang_stop
        self.running = False

    async def start(self) -> None:
        say(f"start {self.name}")
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.running = True

    async def stop(self) -> None:
        say(f"stop {self.name}")
        if self.hang_stop:
            await asyncio.Event().wait()
        self.running = False

    def ready(self) -> bool:
        return self.running

    def statistics(self) -> dict:  # type: ignore[type-arg]
        return {"running": self.running}


def main() -> None:
    mode = sys.argv[1]
    components = [
        Marker("store"),
        Marker("apiserver"),
        Marker("controllers", fail_start=mode == "failstart", hang_stop=mode == "slowstop"),
    ]
    run_forever(lambda: components, on_started=lambda: say("started"), stop_timeout=60)
    say("exited")


if __name__ == "__main__":
    main()
