"""Go-style formatting shared by the printers and by other modules: ages, durations, labels, selectors.

`human_duration` is apimachinery's duration.HumanDuration, `age` the AGE cell of every
printer, `format_labels` / `format_label_selector` / `label_selector_string` are how
upstream prints label maps and selectors, and NONE / UNKNOWN the placeholders it uses for
"no value" and "can't tell".
"""

from __future__ import annotations

import datetime
import math
from typing import Any, List, Optional, Tuple

# The placeholders upstream's printers use for "no value" and "can't tell".
NONE = "<none>"
UNKNOWN = "<unknown>"


def human_duration(seconds: float) -> str:
    """apimachinery's `duration.HumanDuration`: ~2-3 significant figures.

    "45s", "119s", "2m3s", "9m", "42m", "3h", "7h59m", "30h", "4d", "4d5h",
    "300d", "2y10d", "12y". Up to one second in the future reads as "0s"
    (clock skew); further in the future is "<invalid>".
    """
    # Go computes int(d.Seconds()), which truncates toward zero.
    whole = math.trunc(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        s = whole % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def parse_timestamp(value: Any) -> Optional[datetime.datetime]:
    """An RFC 3339 timestamp ("2026-11-22T10:00:00Z", with or without
    fractional seconds) as an aware datetime; None if missing or unparseable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t


def _aware(now: datetime.datetime) -> datetime.datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=datetime.timezone.utc)


def _since(t: datetime.datetime, now: datetime.datetime) -> str:
    return human_duration((_aware(now) - t).total_seconds())


def age(timestamp: Any, now: datetime.datetime) -> str:
    """Upstream's `translateTimestampSince`: the human duration from an RFC 3339
    timestamp to `now`, or "<unknown>" when there is no timestamp."""
    t = parse_timestamp(timestamp)
    return UNKNOWN if t is None else _since(t, now)


def format_labels(labels: Any) -> str:
    """`labels.FormatLabels`: "k1=v1,k2=v2" sorted by key, "<none>" if empty."""
    if not isinstance(labels, dict) or not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


# LabelSelector operators and how a selector's String() writes them.
_SELECTOR_OPS = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": ""}


def label_selector_string(selector: Any) -> Optional[str]:
    """`metav1.LabelSelectorAsSelector(selector).String()`; None if the
    selector is invalid.

    A missing selector selects nothing and an empty one everything; both
    print as "". Requirements are sorted by key; set values are sorted.
    """
    if selector is None:
        return ""
    if not isinstance(selector, dict):
        return None
    reqs: List[Tuple[str, str]] = []
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        return None
    for key, value in match_labels.items():
        if not isinstance(value, str):
            return None
        reqs.append((key, f"{key}={value}"))
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        return None
    for expr in expressions:
        if not isinstance(expr, dict):
            return None
        key, op = expr.get("key"), expr.get("operator")
        values = expr.get("values") or []
        if not isinstance(key, str) or op not in _SELECTOR_OPS or not isinstance(values, list):
            return None
        if op in ("In", "NotIn"):
            # labels.NewRequirement refuses a set operator without values.
            if not values or not all(isinstance(v, str) for v in values):
                return None
            joined = values[0] if len(values) == 1 else ",".join(sorted(values))
            reqs.append((key, f"{key}{_SELECTOR_OPS[op]}({joined})"))
        else:
            if values:
                return None
            reqs.append((key, key if op == "Exists" else f"!{key}"))
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def format_label_selector(selector: Any) -> str:
    """`metav1.FormatLabelSelector`: the selector string, "<none>" if it is
    empty, "<error>" if it is invalid."""
    s = label_selector_string(selector)
    if s is None:
        return "<error>"
    return s or NONE
