"""megaplane.store.wal: everything that makes the store survive a restart.

`log` (the write-ahead log: per-partition segment streams, cycles, the
flusher thread, replay), `durability` (when buffers reach the disk, who
waits for fsync, when checkpoints are taken), `snapshot` (the snapshot file:
checkpoints and etcd-style backups) and `recovery` (checkpoint + WAL replay
on start). Nothing here imports the store: each module states what it needs
from it as a Protocol, which `megaplane.store.writer.Writer` implements.
"""

from .durability import Durability, DurabilityView
from .log import MODES, WalStream, WriteAheadLog
from .recovery import ReplayTarget, recover

__all__ = ["Durability", "DurabilityView", "MODES", "WalStream", "WriteAheadLog", "ReplayTarget", "recover"]
