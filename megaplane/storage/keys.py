"""Key ranges: the end of a prefix's range, as etcd's clientv3.GetPrefixRangeEnd computes it."""

from __future__ import annotations

__all__ = ["prefix_end"]


def prefix_end(prefix: bytes) -> bytes:
    """The range end that makes [prefix, end) hold exactly the keys starting with `prefix`.

    The last byte below 0xff is incremented and the rest dropped; a prefix
    of only 0xff bytes has no end, which etcd spells b"\\0" (to the end).
    """
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"
