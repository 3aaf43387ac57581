"""Cron schedules as Kubernetes reads them: robfig/cron v3's ParseStandard, and the next run time.

Five fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or
jan-dec, day of week 0-6 or sun-sat), each a comma list of `*`, `?`, `N`,
`N-M`, with an optional `/step` (`N/step` means N to the maximum); the
descriptors @yearly, @annually, @monthly, @weekly, @daily, @midnight,
@hourly and `@every <duration>`; an optional `TZ=<zone>` or
`CRON_TZ=<zone>` prefix. Errors carry robfig's wording, since the API
server shows it in a CronJob's 422 (`spec.schedule: Invalid value: "x":
expected exactly 5 fields, found 1: [x]`).

Day matching as cron and robfig do: when both day of month and day of
week are restricted (neither starts with `*`), a day matching either one
counts; otherwise both must match. `next_after` works in the schedule's
time zone (UTC when none is given: the controller's `time.Local` in a
container), on wall-clock minutes, and skips local times a DST change
leaves out.

This module is our own (no cron library here speaks robfig's grammar and
error wording, which validation must reproduce).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "Schedule", "load_location", "parse_standard"]

UTC = datetime.timezone.utc


class CronError(ValueError):
    """A schedule robfig/cron would refuse; str() is its message."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: Optional[Dict[str, int]] = None


_MONTHS = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                          "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MINUTE, _HOUR, _DOM = _Bounds(0, 59), _Bounds(0, 23), _Bounds(1, 31)
_MONTH, _DOW = _Bounds(1, 12, _MONTHS), _Bounds(0, 6, _DAYS)

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_ZONE_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")


def load_location(name: str) -> datetime.tzinfo:
    """Go's time.LoadLocation: "" and "UTC" are UTC; otherwise an IANA zone, or CronError like Go's."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return UTC  # the controller's local zone; in a container that is UTC
    if name.startswith("/") or ".." in name.split("/") or not all(_ZONE_PART.match(p) for p in name.split("/")):
        raise CronError(f"unknown time zone {name}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError):
        raise CronError(f"unknown time zone {name}") from None


def _go_fields(fields: Tuple[str, ...]) -> str:
    return "[" + " ".join(fields) + "]"


def _parse_int(expr: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", expr):
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax')
    num = int(expr)
    if num < 0:
        raise CronError(f"negative number ({num}) not allowed: {expr}")
    return num


def _int_or_name(expr: str, bounds: _Bounds) -> int:
    if bounds.names is not None and expr.lower() in bounds.names:
        return bounds.names[expr.lower()]
    return _parse_int(expr)


def _range(expr: str, bounds: _Bounds) -> Tuple[FrozenSet[int], bool]:
    """One comma item: the values it allows, and whether it is a star (no step > 1)."""
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    star = False
    if low_high[0] in ("*", "?"):
        start, end, star = bounds.low, bounds.high, True
    else:
        start = _int_or_name(low_high[0], bounds)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], bounds)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _parse_int(range_and_step[1])
        if len(low_high) == 1:
            end = bounds.high  # "N/step" is "N-max/step"
        if step > 1:
            star = False
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < bounds.low:
        raise CronError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise CronError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return frozenset(range(start, end + 1, step)), star


def _field(text: str, bounds: _Bounds) -> Tuple[FrozenSet[int], bool]:
    values: set[int] = set()
    star = False
    for item in text.split(","):
        got, is_star = _range(item, bounds)
        values |= got
        star = star or is_star
    return frozenset(values), star


def _parse_duration(text: str) -> float:
    """Go's time.ParseDuration for the positive durations @every takes."""
    if not text or _DURATION.sub("", text) != "":
        raise CronError(f'failed to parse duration @every {text}: time: invalid duration "{text}"')
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION.findall(text))


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: `next_after(t)` is the first run strictly after epoch seconds `t`."""

    minutes: FrozenSet[int] = frozenset()
    hours: FrozenSet[int] = frozenset()
    dom: FrozenSet[int] = frozenset()
    months: FrozenSet[int] = frozenset()
    dow: FrozenSet[int] = frozenset()
    dom_star: bool = False
    dow_star: bool = False
    location: datetime.tzinfo = UTC
    #: @every: a constant delay (seconds) instead of fields.
    every: float = 0.0

    def _day_matches(self, day: datetime.date) -> bool:
        dom_match = day.day in self.dom
        dow_match = (day.isoweekday() % 7) in self.dow
        if self.dom_star or self.dow_star:
            return dom_match and dow_match
        return dom_match or dow_match

    def next_after(self, after: float) -> Optional[float]:
        """The next run after `after` (epoch seconds), or None if none comes within five years."""
        if self.every:
            # ConstantDelaySchedule: whole seconds, rounded down, after the delay.
            return float(int(after + self.every))
        start = datetime.datetime.fromtimestamp(int(after) // 60 * 60 + 60, self.location)
        limit_year = start.year + 5
        day = start.date()
        first_day = True
        while day.year <= limit_year:
            if day.month not in self.months:
                # On to the first of the next month.
                day = (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
                first_day = False
                continue
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    if first_day and hour < start.hour:
                        continue
                    for minute in sorted(self.minutes):
                        if first_day and hour == start.hour and minute < start.minute:
                            continue
                        local = datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.location)
                        at = local.timestamp()
                        # A wall time a DST change skipped does not round-trip: it never happens.
                        back = datetime.datetime.fromtimestamp(at, self.location)
                        if (back.hour, back.minute) != (hour, minute) or at <= after:
                            continue
                        return at
            day += datetime.timedelta(days=1)
            first_day = False
        return None


def parse_standard(spec: str) -> Schedule:
    """robfig/cron's ParseStandard (see the module docstring); CronError with its message otherwise."""
    if not spec:
        raise CronError("empty spec string")
    location: datetime.tzinfo = UTC
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        space = spec.find(" ")
        eq = spec.find("=")
        name = spec[eq + 1:space] if space >= 0 else spec[eq + 1:]
        try:
            location = load_location(name)
        except CronError as exc:
            raise CronError(f"provided bad location {name}: {exc}") from None
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        if spec.startswith("@every "):
            return Schedule(location=location, every=max(1.0, float(int(_parse_duration(spec[7:].strip())))))
        expanded = _DESCRIPTORS.get(spec)
        if expanded is None:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = expanded
    fields = tuple(spec.split())
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {_go_fields(fields)}")
    minutes, _ = _field(fields[0], _MINUTE)
    hours, _ = _field(fields[1], _HOUR)
    dom, dom_star = _field(fields[2], _DOM)
    months, _ = _field(fields[3], _MONTH)
    dow, dow_star = _field(fields[4], _DOW)
    return Schedule(minutes, hours, dom, months, dow, dom_star, dow_star, location)
