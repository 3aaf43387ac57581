"""megaplane.store.wal: everything that makes the store survive a restart.

`log` (the write-ahead log: per-partition segment streams, cycles, the
flusher thread, replay), `durability` (when buffers reach the disk, who
waits for fsync, when checkpoints are taken), `reservation` (the revision
ceiling kept on disk ahead of use, so no revision is handed out twice),
`snapshot` (the snapshot file: checkpoints and etcd-style backups) and
`recovery` (checkpoint + WAL replay on start, then the revision to resume at). Nothing here imports the store: each module states what it needs
from it as a Protocol, which `megaplane.store.writer.Writer` implements.
"""

from .durability import Durability, DurabilityView
from .log import MODES, WalStream, WriteAheadLog
from .recovery import ReplayTarget, ResumeTarget, recover, resume
from .reservation import ReservationError, RevisionReservation

__all__ = [
    "Durability",
    "DurabilityView",
    "MODES",
    "WalStream",
    "WriteAheadLog",
    "ReplayTarget",
    "ResumeTarget",
    "recover",
    "resume",
    "ReservationError",
    "RevisionReservation",
]
