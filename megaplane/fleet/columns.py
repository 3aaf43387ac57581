"""Per-node columns small enough for a million nodes: fixed-width bytes, resourceVersions as int64, a timer wheel.

A fleet's budget is a few hundred bytes per idle node, and a Python
object costs 30-60 bytes before its payload (a list of bytes, a heap of
(float, int, int) tuples: ~120 B per entry). So per-node values live in
flat arrays, each with a small dict for the odd value that does not fit:

- `ByteSlots`: values of one usual width (a Node's UID: 36 bytes) in one
  bytearray; a value of another width goes to the overflow dict.
- `ResourceVersions`: a resourceVersion is an opaque string to clients,
  but every server in practice writes a decimal revision: that is kept as
  an int64 (8 B) and written back as the same digits; anything else (a
  leading zero, letters) is kept as bytes in the overflow dict.
- `TimerWheel`: (due, code) entries bucketed into `tick`-second slots,
  each slot an array of int32 codes, the slots' numbers on a heap. A slot
  is released whole once its start has passed, so timer work is one
  wake-up per tick however many nodes fall due in it, and entries can be
  released up to one tick early. Removal is lazy: the caller keeps each
  node's current due time and skips codes whose due time changed.
"""

from __future__ import annotations

import heapq
import math
from array import array
from typing import Dict, List

__all__ = ["ByteSlots", "NodeNames", "ResourceVersions", "TimerWheel"]


class ByteSlots:
    """`count` byte strings, b"" when unset; the usual `width` is stored inline, others in a dict."""

    __slots__ = ("width", "count", "_data", "_set", "_other")

    def __init__(self, count: int, width: int) -> None:
        self.width = width
        self.count = count
        self._data = bytearray(width * count)
        self._set = bytearray(count)  # 1: inline, 2: in _other, 0: unset
        self._other: Dict[int, bytes] = {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> bytes:
        state = self._set[i]
        if state == 1:
            w = self.width
            return bytes(self._data[i * w:(i + 1) * w])
        if state == 2:
            return self._other[i]
        return b""

    def __setitem__(self, i: int, value: bytes) -> None:
        if not 0 <= i < self.count:
            raise IndexError(i)
        if len(value) == self.width:
            w = self.width
            self._data[i * w:(i + 1) * w] = value
            self._set[i] = 1
            self._other.pop(i, None)
        elif value:
            self._other[i] = bytes(value)
            self._set[i] = 2
        else:
            self._set[i] = 0
            self._other.pop(i, None)


_MAX_INT64 = (1 << 63) - 1


class ResourceVersions:
    """`count` resourceVersions as bytes (b"" when unknown), decimal ones stored as int64."""

    __slots__ = ("count", "_value", "_other")

    def __init__(self, count: int) -> None:
        self.count = count
        self._value = array("q", [-1]) * count  # -1: unknown or in _other
        self._other: Dict[int, bytes] = {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> bytes:
        v = self._value[i]
        if v >= 0:
            return b"%d" % v
        return self._other.get(i, b"") if self._other else b""

    def __setitem__(self, i: int, rv: bytes) -> None:
        if rv.isdigit() and (rv[0] != 0x30 or len(rv) == 1) and len(rv) <= 19 and int(rv) <= _MAX_INT64:
            self._value[i] = int(rv)
            if self._other:
                self._other.pop(i, None)
            return
        self._value[i] = -1
        if rv:
            self._other[i] = bytes(rv)
        elif self._other:
            self._other.pop(i, None)


class TimerWheel:
    """Codes (ints < 2**31) due at monotonic times, released a `tick`-wide slot at a time."""

    __slots__ = ("tick", "_slots", "_order", "size")

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self._slots: Dict[int, "array[int]"] = {}
        self._order: List[int] = []  # heap of the slot numbers in _slots
        self.size = 0

    def push(self, code: int, due: float) -> None:
        slot = int(math.floor(due / self.tick)) if due != math.inf else -1
        if slot < 0:
            return  # never due
        bucket = self._slots.get(slot)
        if bucket is None:
            bucket = self._slots[slot] = array("i")
            heapq.heappush(self._order, slot)
        bucket.append(code)
        self.size += 1

    def next_release(self) -> float:
        """When the earliest slot is released (math.inf when empty)."""
        return self._order[0] * self.tick if self._order else math.inf

    def horizon(self, now: float) -> float:
        """The end of the slot `now` is in: `pop_due(now)` releases every entry due before it."""
        return (math.floor(now / self.tick) + 1) * self.tick

    def pop_due(self, now: float) -> "List[array[int]]":
        """Every slot whose start is at or before `now`, earliest first."""
        out: "List[array[int]]" = []
        order, slots = self._order, self._slots
        last = int(math.floor(now / self.tick))
        while order and order[0] <= last:
            bucket = slots.pop(heapq.heappop(order))
            self.size -= len(bucket)
            out.append(bucket)
        return out


class NodeNames:
    """The fleet's node names, computed from the index (`prefix` + global index) instead of stored."""

    __slots__ = ("prefix", "start", "count", "_prefix_bytes")

    def __init__(self, prefix: str, start: int, count: int) -> None:
        self.prefix = prefix
        self.start = start
        self.count = count
        self._prefix_bytes = prefix.encode()

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> str:
        if not 0 <= i < self.count:
            raise IndexError(i)
        return f"{self.prefix}{self.start + i}"

    def encoded(self, i: int) -> bytes:
        return b"%s%d" % (self._prefix_bytes, self.start + i)
