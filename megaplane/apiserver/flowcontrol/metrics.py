"""The flow controller's Prometheus metrics under kube-apiserver's names, rendered at scrape time.

The controller counts with plain ints (`FlowStats`); this Collector turns them into
apiserver_flowcontrol_current_inflight_requests / _current_inqueue_requests /
_dispatched_requests_total / _rejected_requests_total{reason} / _request_wait_duration_seconds
{execute} (labels priority_level, flow_schema), and the per-level
apiserver_flowcontrol_nominal_limit_seats, _current_limit_seats, _request_concurrency_limit and
_current_executing_seats.
"""

from __future__ import annotations

from typing import Iterator, List, Tuple

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from megaplane.apiserver.flowcontrol.controller import WAIT_BUCKETS, FlowController

__all__ = ["FlowControlMetrics"]

_LABELS = ["priority_level", "flow_schema"]


class FlowControlMetrics(Collector):
    def __init__(self, controller: FlowController) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        fc = self.controller
        if not fc.apf:
            return
        inflight = GaugeMetricFamily(
            "apiserver_flowcontrol_current_inflight_requests",
            "Number of requests in initial (for a WATCH) or any (for a non-WATCH) execution stage in the API "
            "Priority and Fairness subsystem", labels=_LABELS)
        inqueue = GaugeMetricFamily(
            "apiserver_flowcontrol_current_inqueue_requests",
            "Number of requests currently pending in queues of the API Priority and Fairness subsystem", labels=_LABELS)
        dispatched = CounterMetricFamily(
            "apiserver_flowcontrol_dispatched_requests",
            "Number of requests executed by API Priority and Fairness subsystem", labels=_LABELS)
        rejected = CounterMetricFamily(
            "apiserver_flowcontrol_rejected_requests",
            "Number of requests rejected by API Priority and Fairness subsystem", labels=_LABELS + ["reason"])
        waits = HistogramMetricFamily(
            "apiserver_flowcontrol_request_wait_duration_seconds",
            "Length of time a request spent waiting in its queue", labels=_LABELS + ["execute"])
        for st in list(fc.stats.values()):
            labels = [st.level, st.schema]
            inflight.add_metric(labels, st.executing)
            inqueue.add_metric(labels, st.waiting)
            dispatched.add_metric(labels, st.dispatched)
            for reason, n in st.rejected.items():
                rejected.add_metric(labels + [reason], n)
            for execute, counts in st.waits.items():
                acc = 0.0
                buckets: List[Tuple[str, float]] = []
                for bound, count in zip(WAIT_BUCKETS, counts):
                    acc += count
                    buckets.append((repr(bound), acc))
                acc += counts[len(WAIT_BUCKETS)]
                buckets.append(("+Inf", acc))
                waits.add_metric(labels + [execute], buckets, counts[-1])
        yield inflight
        yield inqueue
        yield dispatched
        yield rejected
        yield waits
        nominal = GaugeMetricFamily("apiserver_flowcontrol_nominal_limit_seats",
                                    "Nominal number of execution seats configured for each priority level",
                                    labels=["priority_level"])
        current = GaugeMetricFamily("apiserver_flowcontrol_current_limit_seats",
                                    "current derived number of execution seats available to each priority level",
                                    labels=["priority_level"])
        concurrency = GaugeMetricFamily("apiserver_flowcontrol_request_concurrency_limit",
                                        "Nominal number of execution seats configured for each priority level",
                                        labels=["priority_level"])
        executing = GaugeMetricFamily("apiserver_flowcontrol_current_executing_seats",
                                      "Concurrency (number of seats) occupied by the currently executing (initial "
                                      "stage for a WATCH, any stage otherwise) requests in the API Priority and "
                                      "Fairness subsystem", labels=["priority_level"])
        nominal.add_metric(["exempt"], 0)
        for name, seats in fc.levels.items():
            nominal.add_metric([name], fc.nominal.get(name, seats.limit))
            current.add_metric([name], seats.limit)
            concurrency.add_metric([name], seats.limit)
            executing.add_metric([name], seats.in_use)
        yield nominal
        yield current
        yield concurrency
        yield executing
