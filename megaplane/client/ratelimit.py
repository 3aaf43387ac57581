"""Client-side rate limiting as client-go's default: a token bucket of `qps` and `burst`.

`--kube-api-qps` / `--kube-api-burst` semantics: `burst` requests may go at
once, then `qps` per second on average. Like golang.org/x/time/rate's
Wait, a caller reserves its token at once (the bucket may go negative) and
sleeps until the token would have been there, so concurrent callers are
served in arrival order without a queue. `qps <= 0` means no limit.
"""

from __future__ import annotations

from typing import Optional

from .clock import REAL_CLOCK, Clock

__all__ = ["TokenBucket"]


class TokenBucket:
    __slots__ = ("qps", "burst", "_tokens", "_last", "_clock")

    def __init__(self, qps: float, burst: int, clock: Optional[Clock] = None) -> None:
        if qps > 0 and burst < 1:
            # client-go's rest.RESTClientFor refuses the same combination.
            raise ValueError(f"burst must be at least 1 when qps > 0 (qps={qps}, burst={burst})")
        self.qps = qps
        self.burst = burst
        self._clock = clock or REAL_CLOCK
        self._tokens = float(burst)
        self._last = self._clock.monotonic()

    @property
    def unlimited(self) -> bool:
        return self.qps <= 0

    def reserve(self) -> float:
        """Take a token now; return how many seconds to wait before using it (0.0: go)."""
        if self.qps <= 0:
            return 0.0
        now = self._clock.monotonic()
        tokens = self._tokens + (now - self._last) * self.qps
        if tokens > self.burst:
            tokens = float(self.burst)
        self._last = now
        tokens -= 1.0
        self._tokens = tokens
        return 0.0 if tokens >= 0 else -tokens / self.qps

    async def wait(self) -> None:
        """Block until this caller may send one request."""
        delay = self.reserve()
        if delay > 0:
            await self._clock.sleep(delay)
