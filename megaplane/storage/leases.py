"""Sharing storage leases between writes with a TTL, as upstream's etcd3 lease manager does.

Granting a lease per Event would cost a lease record per object; upstream
(pkg/storage/etcd3/lease_manager.go) reuses the previous lease while it
outlives the new object's TTL by no more than the reuse window (the
smaller of 60 s and 5 % of the TTL) and holds fewer than 1000 objects.
A fresh lease is granted for TTL + that window. Backend-neutral: the
backend grants, this decides when.
"""

from __future__ import annotations

import time
from typing import Callable

__all__ = ["LeaseManager"]

DEFAULT_REUSE_DURATION_SECONDS = 60
DEFAULT_REUSE_DURATION_PERCENT = 0.05
DEFAULT_MAX_OBJECTS = 1000


class LeaseManager:
    """Which lease a write with `ttl` should carry: `reusable(ttl)`, else grant `grant_ttl(ttl)` and `granted`."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        reuse_duration_seconds: int = DEFAULT_REUSE_DURATION_SECONDS,
        reuse_duration_percent: float = DEFAULT_REUSE_DURATION_PERCENT,
        max_objects: int = DEFAULT_MAX_OBJECTS,
    ) -> None:
        self.clock = clock
        self.reuse_duration_seconds = reuse_duration_seconds
        self.reuse_duration_percent = reuse_duration_percent
        self.max_objects = max_objects if max_objects > 0 else DEFAULT_MAX_OBJECTS
        self.lease_id = 0
        self.expires_at = 0.0
        self.attached = 0

    def __repr__(self) -> str:
        return f"<LeaseManager lease={self.lease_id} expires_at={self.expires_at:.1f} attached={self.attached}>"

    def _reuse_window(self, ttl: int) -> int:
        return min(int(self.reuse_duration_percent * ttl), self.reuse_duration_seconds)

    def reusable(self, ttl: int) -> int:
        """The previous lease if a write with `ttl` may share it, else 0 (then grant a new one)."""
        now = self.clock()
        window = self._reuse_window(ttl)
        # Upstream counts every request, successful or not.
        self.attached += 1
        valid = now + ttl < self.expires_at
        sufficient = now + ttl + window > self.expires_at
        if self.lease_id and valid and sufficient and self.attached <= self.max_objects:
            return self.lease_id
        return 0

    def grant_ttl(self, ttl: int) -> int:
        """The TTL to grant a new lease with: a little extra, so it can be shared."""
        return ttl + self._reuse_window(ttl)

    def granted(self, lease_id: int, granted_ttl: int) -> None:
        """Remember a lease just granted with `granted_ttl` as the one to share."""
        self.lease_id = lease_id
        self.expires_at = self.clock() + granted_ttl
        self.attached = 1

    def forget(self, lease_id: int) -> None:
        """The backend no longer has this lease (it expired or was revoked): never hand it out again."""
        if self.lease_id == lease_id:
            self.lease_id = 0
            self.expires_at = 0.0
