"""Test kit shipped with the package: deterministic time for anything time-driven.

Lease expiry, node heartbeats and controller timeouts all read a clock; give
them a `FakeClock` and a test moves time explicitly instead of sleeping.
"""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """A monotonic clock that only moves when told to.

    Call it like `time.monotonic`; `advance(seconds)` moves it forward.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self.now += seconds
        return self.now

    def __repr__(self) -> str:
        return f"<FakeClock now={self.now}>"
