"""Flag values as upstream tools write them (Go durations and booleans, go-humanize byte sizes)."""

from __future__ import annotations

import argparse
import re

__all__ = ["parse_duration", "parse_bool", "humanize_bytes"]

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|\u00b5s|ns|h|m|s)")


def parse_duration(text: str) -> float:
    """Seconds from a Go-style duration ("10m", "1h30m", "500ms") or a bare number of seconds.

    Raises argparse.ArgumentTypeError, so it works as an argparse `type`.
    """
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (want e.g. 10m, 5s, 500ms)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_bool(value: str) -> bool:
    """A Go-style boolean flag value (strconv.ParseBool's 1/t/true, 0/f/false); an argparse `type`."""
    v = value.strip().lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


def humanize_bytes(n: int) -> str:
    """Like go-humanize's Bytes (SI units), which etcdctl uses for sizes: "20 kB", "2.1 MB"."""
    if n < 10:
        return f"{n} B"
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    value = float(n)
    i = 0
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.0f} {units[i]}" if value >= 10 else f"{value:.1f} {units[i]}"
