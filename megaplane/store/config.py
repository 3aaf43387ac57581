"""The store's tunables (`StoreConfig`) and the WAL mode each partition gets from them.

Apart from `megaplane.store.mvcc` so that the write path, the WAL and the
durability policy can read their settings without importing the store.
"""

from __future__ import annotations

import json
from typing import Dict, Optional

from .kv import partition_prefix
from .wal.log import META_STREAM, MODES

__all__ = ["StoreConfig"]


class StoreConfig:
    """Tunables of a store; flag names in parentheses (etcd's where it has one)."""

    def __init__(
        self,
        *,
        wal_default: str = "buffered",
        wal_modes: Optional[Dict[bytes, str]] = None,
        wal_flush_interval: float = 0.005,
        history_max_events: int = 200_000,
        max_txn_ops: int = 128,
        max_request_bytes: int = 1_572_864,
        min_lease_ttl: int = 2,
        max_watch_buffer: int = 100_000,
        snapshot_count: int = 0,
        checkpoint_bytes: int = 256 << 20,
        revision_reserve_step: int = 100_000,
        revision_reserve_seconds: float = 5.0,
    ) -> None:
        #: WAL mode of partitions no --wal-mode prefix matches (--wal-default).
        self.wal_default = wal_default
        #: Partition prefix -> WAL mode (--wal-mode PREFIX=MODE, repeatable).
        self.wal_modes = dict(wal_modes or {})
        #: How long buffered-mode records may wait before a write (--wal-flush-interval).
        self.wal_flush_interval = wal_flush_interval
        #: Events kept per partition for watches and old reads (--history-max-events).
        self.history_max_events = history_max_events
        #: Most compares / ops per txn branch (--max-txn-ops).
        self.max_txn_ops = max_txn_ops
        #: Largest key + value accepted (--max-request-bytes).
        self.max_request_bytes = max_request_bytes
        #: Smallest lease TTL; shorter grants are raised to it (etcd: 2 s by default).
        self.min_lease_ttl = min_lease_ttl
        #: Events a watcher may have waiting before it is treated as slow.
        self.max_watch_buffer = max_watch_buffer
        #: Checkpoint after this many logged writes; 0: by size only (--snapshot-count).
        self.snapshot_count = snapshot_count
        #: Checkpoint once this many WAL bytes are written since the last one
        #: (raised to twice the last snapshot's size) (--wal-checkpoint-bytes).
        self.checkpoint_bytes = checkpoint_bytes
        #: Smallest block of revisions reserved on disk ahead of use (`megaplane.store.wal.reservation`);
        #: a crash skips at most about two blocks.
        self.revision_reserve_step = revision_reserve_step
        #: Blocks are sized to this many seconds of writes at the recent rate, if that is more.
        self.revision_reserve_seconds = revision_reserve_seconds
        if revision_reserve_step < 1:
            raise ValueError(f"revision_reserve_step must be at least 1, not {revision_reserve_step}")
        for prefix, mode in self.wal_modes.items():
            _check_mode(mode)
            inner = partition_prefix(prefix)
            if inner and inner != prefix:
                raise ValueError(
                    f"--wal-mode prefix {prefix.decode(errors='replace')!r} lies inside partition "
                    f"{inner.decode(errors='replace')!r}; a mode applies to whole partitions"
                )
        _check_mode(wal_default)

    def logging_rules(self) -> str:
        """Which partitions are logged, as JSON for the revision reservation (buffered and fsync alike).

        `logs_like` compares it with another run's: a restart that logs a
        partition the last run did not finds it empty, with no delete events.
        """
        rules = sorted((p.hex(), m != "none") for p, m in self.wal_modes.items())
        return json.dumps({"default": self.wal_default != "none", "prefixes": rules}, separators=(",", ":"))

    def logs_like(self, rules: str) -> bool:
        """True when `rules` (another run's `logging_rules`) logs exactly the partitions this config logs.

        Every partition takes the mode of its longest matching rule, so the
        two agree everywhere once they agree on each rule prefix of either
        and on partitions no rule matches.
        """
        try:
            doc = json.loads(rules)
            theirs = {bytes.fromhex(p): bool(logged) for p, logged in doc["prefixes"]}
            their_default = bool(doc["default"])
        except (ValueError, KeyError, TypeError):
            return False

        def logged_by(table: Dict[bytes, bool], default: bool, prefix: bytes) -> bool:
            best = -1
            out = default
            for p, logged in table.items():
                if prefix.startswith(p) and len(p) > best:
                    best, out = len(p), logged
            return out

        mine = {p: m != "none" for p, m in self.wal_modes.items()}
        my_default = self.wal_default != "none"
        if my_default != their_default:
            return False
        return all(
            logged_by(mine, my_default, p) == logged_by(theirs, their_default, p) for p in {*mine, *theirs}
        )

    def mode_for(self, prefix: bytes) -> str:
        """The WAL mode of a partition: the longest matching --wal-mode prefix, else the default."""
        if prefix == META_STREAM:
            # Lease and compaction records are as durable as the most durable partition.
            modes = [self.wal_default, *self.wal_modes.values()]
            return max(modes, key=MODES.index)
        best = -1
        mode = self.wal_default
        if prefix:
            for p, m in self.wal_modes.items():
                if prefix.startswith(p) and len(p) > best:
                    best, mode = len(p), m
        return mode


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown WAL mode {mode!r} (want one of {', '.join(MODES)})")
