"""The API server's Prometheus metrics, under kube-apiserver's names and labels.

Requests are counted with plain dicts on the hot path (a prometheus_client
observe costs about as much as a small request handler) and rendered by a
Collector at scrape time. Names and labels follow kube-apiserver:
apiserver_request_total{verb,dry_run,group,version,resource,subresource,scope,component,code},
apiserver_request_duration_seconds (same labels but code, upstream's buckets),
apiserver_current_inflight_requests{request_kind}, apiserver_watch_events_total
{group,version,kind}, apiserver_storage_objects{resource},
apiserver_longrunning_requests (watches). A watch is counted in the request
metrics when it ends, as upstream counts it.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Callable, Dict, Iterator, List, Protocol, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.watchcache import WatchCache


class WatchCounts(Protocol):
    """One kind's watch fan-out, as the collector reads it."""

    sent_total: int

    def __len__(self) -> int: ...


class CacheSource(Protocol):
    """What the collector reads at scrape time: each kind's watch cache."""

    def caches_by_resource(self) -> Iterator[Tuple[Resource, WatchCache]]: ...

__all__ = ["APIMetrics"]

# kube-apiserver's apiserver_request_duration_seconds buckets.
BUCKETS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60]

Key = Tuple[str, str, str, str, str, str, str]
# The verb label as kube-apiserver reports it: the route's HTTP-ish action, not the RBAC verb.
_METRIC_VERBS = {
    "get": "GET", "list": "LIST", "watch": "WATCH", "create": "POST", "update": "PUT",
    "patch": "PATCH", "delete": "DELETE", "deletecollection": "DELETE",
}


class APIMetrics(Collector):
    def __init__(self, caches: CacheSource) -> None:
        self.caches = caches
        #: The HTTP watch fan-outs by cache prefix (watchers and events sent), set by the server.
        self.watches: Dict[bytes, WatchCounts] = {}
        self.requests: Dict[Tuple[Key, int], int] = {}
        self.durations: Dict[Key, List[float]] = {}  # bucket counts..., then sum
        self.inflight = {"mutating": 0, "readOnly": 0}
        self.watches_started: Dict[Tuple[str, str, str], int] = {}
        #: Object counts polled from etcd by cache prefix (--etcd-count-metric-poll-period); others count the cache.
        self.storage_counts: Callable[[], Dict[bytes, int]] = dict

    def observe(
        self, verb: str, r: Resource, subresource: str, scope: str, code: int, seconds: float, dry_run: str = ""
    ) -> None:
        key = (_METRIC_VERBS.get(verb, verb), dry_run, r.group, r.version, r.plural, subresource, scope)
        rk = (key, code)
        self.requests[rk] = self.requests.get(rk, 0) + 1
        d = self.durations.get(key)
        if d is None:
            d = self.durations[key] = [0.0] * (len(BUCKETS) + 2)
        d[bisect_left(BUCKETS, seconds)] += 1
        d[-1] += seconds

    def watchers_started(self, r: Resource) -> None:
        k = (r.group, r.version, r.plural)
        self.watches_started[k] = self.watches_started.get(k, 0) + 1

    def collect(self) -> Iterator[object]:
        labels = ["verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"]
        total = CounterMetricFamily(
            "apiserver_request_total",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
            labels=labels + ["code"],
        )
        for (key, code), n in self.requests.items():
            total.add_metric(list(key) + ["apiserver", str(code)], n)
        yield total
        hist = HistogramMetricFamily(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
            labels=labels,
        )
        for key, d in self.durations.items():
            acc = 0.0
            buckets = []
            for bound, n in zip(BUCKETS, d):
                acc += n
                buckets.append((repr(float(bound)), acc))
            acc += d[len(BUCKETS)]
            buckets.append(("+Inf", acc))
            hist.add_metric(list(key) + ["apiserver"], buckets, d[-1])
        yield hist
        inflight = GaugeMetricFamily(
            "apiserver_current_inflight_requests",
            "Maximal number of currently used inflight request limit of this apiserver per request kind in last second.",
            labels=["request_kind"],
        )
        for kind, n in self.inflight.items():
            inflight.add_metric([kind], n)
        yield inflight
        events = CounterMetricFamily(
            "apiserver_watch_events_total", "Number of events sent in watch clients", labels=["group", "version", "kind"]
        )
        watchers = GaugeMetricFamily(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.",
            labels=["verb", "group", "version", "resource", "subresource", "scope", "component"],
        )
        objects = GaugeMetricFamily(
            "apiserver_storage_objects", "Number of stored objects at the time of last check split by kind.", labels=["resource"]
        )
        counts = self.storage_counts()
        for r, cache in self.caches.caches_by_resource():
            fanout = self.watches.get(cache.prefix)
            events.add_metric([r.group, r.version, r.kind], fanout.sent_total if fanout is not None else 0)
            watchers.add_metric(
                ["WATCH", r.group, r.version, r.plural, "", "resource", "apiserver"], len(fanout) if fanout is not None else 0
            )
            objects.add_metric([f"{r.plural}.{r.group}" if r.group else r.plural],
                               counts.get(cache.prefix, len(cache.objects)))
        yield events
        yield watchers
        yield objects
