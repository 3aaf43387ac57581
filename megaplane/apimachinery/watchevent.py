"""The watch event's JSON form: `{"type":...,"object":...}` and a newline, as a watch stream carries it.

The object is spliced in as its stored bytes (never re-encoded), so one
event's line can be built once and shared by every watcher.
"""

from __future__ import annotations

__all__ = ["event_line", "EVENT_TYPES"]

EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")
_EVENT_PREFIX = {t: b'{"type":"%s","object":' % t.encode() for t in EVENT_TYPES}


def event_line(etype: str, data: bytes) -> bytes:
    """One watch event as it goes on the wire: `{"type":...,"object":...}` and a newline."""
    prefix = _EVENT_PREFIX.get(etype) or b'{"type":"%s","object":' % etype.encode()
    return prefix + data + b"}\n"
