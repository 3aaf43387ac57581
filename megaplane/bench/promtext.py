"""Prometheus text exposition read back: samples by name and labels, histogram deltas and quantiles.

The quantile is PromQL's histogram_quantile over the increase between two
scrapes (linear within a bucket, the highest finite bound when the rank
lies in +Inf), which is what clusterloader2's simple latency queries
compute over a test's window.
"""

from __future__ import annotations

import math
import re
import ssl
import urllib.request
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "Histogram",
    "Labels",
    "Metrics",
    "counter_delta",
    "counter_total",
    "histogram_delta",
    "histograms",
    "parse",
    "quantile",
    "scrape",
]

Labels = Tuple[Tuple[str, str], ...]
#: sample name (e.g. `apiserver_request_duration_seconds_bucket`) -> labels -> value
Metrics = Dict[str, Dict[Labels, float]]
#: upper bound -> cumulative count (one series, or a sum of series)
Histogram = Dict[float, float]

_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _value(text: str) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    return float(text)


def parse(text: str) -> Metrics:
    out: Metrics = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        if brace >= 0:
            close = line.rfind("}")
            name = line[:brace]
            labels: Labels = tuple(sorted(
                (k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
                for k, v in _LABEL.findall(line[brace + 1:close])))
            rest = line[close + 1:].split()
        else:
            parts = line.split()
            name, labels, rest = parts[0], (), parts[1:]
        if not rest:
            continue
        try:
            out.setdefault(name, {})[labels] = _value(rest[0])
        except ValueError:
            continue
    return out


def scrape(url: str, timeout: float = 10.0, context: Optional[ssl.SSLContext] = None) -> Metrics:
    """GET `url` (a /metrics endpoint) and parse it; `context` the TLS context for https."""
    with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
        body: bytes = r.read()
    return parse(body.decode("utf-8", "replace"))


def counter_total(metrics: Metrics, name: str, where: Callable[[Mapping[str, str]], bool] = lambda _: True) -> float:
    """The sum of a counter's series whose labels `where` accepts."""
    return sum(v for labels, v in metrics.get(name, {}).items() if where(dict(labels)))


def counter_delta(before: Metrics, after: Metrics, name: str,
                  where: Callable[[Mapping[str, str]], bool] = lambda _: True) -> float:
    return counter_total(after, name, where) - counter_total(before, name, where)


def histograms(metrics: Metrics, name: str, by: Sequence[str],
               where: Callable[[Mapping[str, str]], bool] = lambda _: True) -> Dict[Tuple[str, ...], Histogram]:
    """`name`'s buckets summed by the `by` labels (as `sum(...) by (by..., le)`), series `where` accepts."""
    out: Dict[Tuple[str, ...], Histogram] = {}
    for labels, value in metrics.get(name + "_bucket", {}).items():
        d = dict(labels)
        if not where(d):
            continue
        le = _value(d.get("le", "+Inf"))
        key = tuple(d.get(k, "") for k in by)
        h = out.setdefault(key, {})
        h[le] = h.get(le, 0.0) + value
    return out


def histogram_delta(before: Mapping[Tuple[str, ...], Histogram],
                    after: Mapping[Tuple[str, ...], Histogram]) -> Dict[Tuple[str, ...], Histogram]:
    """What each group observed between two scrapes (a group absent before started at zero)."""
    out: Dict[Tuple[str, ...], Histogram] = {}
    for key, h in after.items():
        b = before.get(key, {})
        out[key] = {le: count - b.get(le, 0.0) for le, count in h.items()}
    return out


def quantile(q: float, histogram: Histogram) -> float:
    """histogram_quantile(q, ...) of one cumulative histogram; 0.0 when it observed nothing."""
    bounds: List[Tuple[float, float]] = sorted(histogram.items())
    if not bounds:
        return 0.0
    total = bounds[-1][1]
    if total <= 0:
        return 0.0
    rank = q * total
    lower, below = 0.0, 0.0
    for le, cumulative in bounds:
        if cumulative >= rank:
            if math.isinf(le):
                return lower
            if cumulative - below <= 0:
                return le
            return lower + (le - lower) * (rank - below) / (cumulative - below)
        lower, below = le, cumulative
    return lower


def merged(histograms_: Iterable[Histogram]) -> Histogram:
    """The sum of several cumulative histograms with the same bounds."""
    out: Histogram = {}
    for h in histograms_:
        for le, count in h.items():
            out[le] = out.get(le, 0.0) + count
    return out


def count(histogram: Histogram) -> float:
    return histogram.get(math.inf, max(histogram.values(), default=0.0))
