"""The log backend: audit events to a file (or stdout), one JSON object per line, off the request path.

Requests only append an event to a bounded queue (--audit-log-batch-buffer-size,
10000 as upstream's batch buffer); one writer thread, looking every 50 ms,
encodes and writes them in batches. A full queue drops the event and counts it in
`apiserver_audit_error_total{plugin="log"}`, so a slow or full disk (or a
FIFO nobody reads) never holds up a request. The file is opened by the
writer (an open that blocks blocks only it), mode 0600 as kube-apiserver's
ensureLogFile.

Rotation is lumberjack's, as kube-apiserver configures it: when a write
would take the file past --audit-log-maxsize megabytes (0: lumberjack's
100), it is renamed to `<name>-<UTC time 2006-01-02T15-04-05.000><ext>`
and a new one is started; backups beyond --audit-log-maxbackup (0: all) or
older than --audit-log-maxage days (0: any age) are removed.
"""

from __future__ import annotations

import collections
import datetime
import logging
import os
import sys
import threading
from typing import IO, Any, Callable, Deque, Dict, List, Optional

__all__ = ["LogBackend", "RotatingFile"]

log = logging.getLogger("megaplane.apiserver.audit")

_MEGABYTE = 1024 * 1024
#: How long the writer sleeps when it found nothing to write (events reach the file at most this late).
WRITE_INTERVAL = 0.05
_BACKUP_TIME = "%Y-%m-%dT%H-%M-%S"


class RotatingFile:
    """lumberjack.Logger: a file that rotates by size, keeping a bounded set of backups."""

    def __init__(self, path: str, max_size_mb: int = 0, max_backups: int = 0, max_age_days: int = 0) -> None:
        self.path = path
        self.max_size = (max_size_mb or 100) * _MEGABYTE
        self.max_backups = max_backups
        self.max_age_days = max_age_days
        self._file: Optional[IO[bytes]] = None
        self._size = 0
        directory = os.path.dirname(path)
        if directory:  # at start, as kube-apiserver's ensureLogFile (the file itself is opened by the writer)
            os.makedirs(directory, exist_ok=True)

    def _open(self) -> IO[bytes]:
        if self._file is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._file = os.fdopen(fd, "ab", buffering=0)
            try:
                st = os.fstat(fd)
                self._size = st.st_size if os.path.isfile(self.path) else 0
            except OSError:
                self._size = 0
        return self._file

    def write_lines(self, lines: List[bytes]) -> None:
        """One write for the batch, unless it would cross the size limit (then line by line, to rotate there)."""
        data = b"".join(lines)
        if self._size + len(data) > self.max_size:
            for line in lines:
                self.write(line)
        else:
            self.write(data)

    def write(self, data: bytes) -> None:
        f = self._open()
        if self._size and self._size + len(data) > self.max_size and os.path.isfile(self.path):
            self._rotate()
            f = self._open()
        f.write(data)
        self._size += len(data)

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        base, ext = os.path.splitext(self.path)
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp = now.strftime(_BACKUP_TIME) + f".{now.microsecond // 1000:03d}"
        os.rename(self.path, f"{base}-{stamp}{ext}")
        self._size = 0
        self._prune(base, ext)

    def backups(self) -> List[str]:
        base, ext = os.path.splitext(self.path)
        directory = os.path.dirname(self.path) or "."
        prefix = os.path.basename(base) + "-"
        found = []
        for name in os.listdir(directory):
            if name.startswith(prefix) and name.endswith(ext) and name != os.path.basename(self.path):
                found.append(os.path.join(directory, name))
        return sorted(found)  # the timestamp sorts them oldest first

    def _prune(self, base: str, ext: str) -> None:
        backups = self.backups()
        doomed = set()
        if self.max_backups > 0 and len(backups) > self.max_backups:
            doomed.update(backups[: len(backups) - self.max_backups])
        if self.max_age_days > 0:
            cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=self.max_age_days)
            for b in backups:
                stamp = b[len(base) + 1: len(b) - len(ext)]
                try:
                    when = datetime.datetime.strptime(stamp, _BACKUP_TIME + ".%f").replace(
                        tzinfo=datetime.timezone.utc)
                except ValueError:
                    continue
                if when < cutoff:
                    doomed.add(b)
        for b in doomed:
            try:
                os.remove(b)
            except OSError:
                pass

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Stdout:
    def write_lines(self, lines: List[bytes]) -> None:
        self.write(b"".join(lines))

    def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def close(self) -> None:
        pass


class LogBackend:
    """Events (dicts) in, JSON lines out, on a writer thread."""

    name = "log"

    def __init__(self, path: str, *, max_size_mb: int = 0, max_backups: int = 0, max_age_days: int = 0,
                 buffer_size: int = 10000, encode: Optional[Callable[[Dict[str, Any]], bytes]] = None) -> None:
        self.path = path
        self.sink: Any = _Stdout() if path == "-" else RotatingFile(path, max_size_mb, max_backups, max_age_days)
        # A deque, not queue.Queue: appends are atomic and take no lock, so queuing costs a request one append
        # and no wake-up; the writer looks every WRITE_INTERVAL (upstream's batch backend waits up to 30 s).
        self._pending: Deque[Dict[str, Any]] = collections.deque()
        self._capacity = max(1, buffer_size)
        self._wake = threading.Event()
        self._stopping = False
        self._encode = encode
        #: Events handed to the backend, and those lost (queue full, or the write failed).
        self.events = 0
        self.errors = 0
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-log", daemon=True)
            self._thread.start()

    def process(self, event: Dict[str, Any]) -> None:
        """Queue one event; never waits."""
        self.events += 1
        if len(self._pending) >= self._capacity:
            self.errors += 1
            return
        self._pending.append(event)

    def _run(self) -> None:
        import orjson

        encode = self._encode or orjson.dumps
        pending = self._pending
        while True:
            if not pending:
                if self._stopping:
                    break
                self._wake.wait(WRITE_INTERVAL)  # set only by stop
                continue
            batch: List[Dict[str, Any]] = []
            while pending and len(batch) < 400:  # what piled up, in one write (upstream's batch backend too)
                batch.append(pending.popleft())
            self._write(batch, encode)
        self.sink.close()

    def _write(self, batch: List[Dict[str, Any]], encode: Callable[[Dict[str, Any]], bytes]) -> None:
        lines = []
        for event in batch:
            try:
                lines.append(encode(event) + b"\n")
            except Exception:  # an event that does not encode is lost, not the writer
                self.errors += 1
                log.exception("audit: event did not encode")
        try:
            self.sink.write_lines(lines)
        except OSError as exc:
            self.errors += len(lines)
            log.error("audit: writing %s failed: %s", self.path, exc)

    def stop(self, timeout: float = 2.0) -> None:
        """Let the writer finish what is queued (up to `timeout`: a stuck disk is left behind)."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
