"""The time the client waits on: rate limiting, Retry-After, informer backoff and resync.

`Clock` here is the part of `megaplane.runtime.Clock` the client uses
(`monotonic()` and `async sleep(seconds)`), so any runtime clock, the real
one or `megaplane.testing`'s FakeClock, fits, and so does a two-method test
double. The default is the process's `megaplane.runtime.REAL_CLOCK`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from megaplane.runtime import REAL_CLOCK

__all__ = ["Clock", "REAL_CLOCK"]


@runtime_checkable
class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after `seconds` of this clock's time."""
        ...
