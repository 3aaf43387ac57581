"""The scheduler's /metrics with kube-scheduler's names, read from plain counters at scrape time.

- scheduler_schedule_attempts_total{result,profile}: result is scheduled,
  unschedulable or error, counted when the attempt's outcome is known
  (a bind's end for scheduled).
- scheduler_scheduling_attempt_duration_seconds{result,profile}: from the
  pod's pop to that outcome; upstream's buckets (1 ms doubling, 15).
- scheduler_pending_pods{queue}: active, backoff, unschedulable, gated
  (upstream's labels); pods being scheduled or bound are in none of them.
"""

from __future__ import annotations

import bisect
from typing import Callable, Dict, Iterator, List, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["SchedulerMetrics", "DURATION_BUCKETS"]

DURATION_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))
#: scheduler_preemption_victims' buckets (ExponentialBuckets(1, 2, 7)).
VICTIM_BUCKETS = tuple(float(2 ** i) for i in range(7))


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0


class SchedulerMetrics(Collector):
    def __init__(self, pending: Callable[[], Dict[str, int]]) -> None:
        self.pending = pending
        self._attempts: Dict[Tuple[str, str], int] = {}
        self._durations: Dict[Tuple[str, str], _Histogram] = {}
        self.preemption_attempts = 0
        self._victims = [0] * (len(VICTIM_BUCKETS) + 1)
        self._victims_total = 0

    def preemption(self, victims: int) -> None:
        """A preemption attempt; `victims` > 0 when it chose a node (scheduler_preemption_victims observes it)."""
        self.preemption_attempts += 1
        if victims:
            self._victims[bisect.bisect_left(VICTIM_BUCKETS, float(victims))] += 1
            self._victims_total += victims

    def attempt(self, result: str, profile: str, seconds: float) -> None:
        key = (result, profile)
        self._attempts[key] = self._attempts.get(key, 0) + 1
        hist = self._durations.get(key)
        if hist is None:
            hist = self._durations[key] = _Histogram()
        hist.counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        hist.total += seconds

    def totals(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for (result, _), count in self._attempts.items():
            out[result] = out.get(result, 0) + count
        return out

    def collect(self) -> Iterator[Metric]:
        attempts = CounterMetricFamily("scheduler_schedule_attempts", "Number of attempts to schedule pods, by the "
                                       "result. 'unschedulable' means a pod could not be scheduled, while 'error' "
                                       "means an internal scheduler problem.", labels=["result", "profile"])
        for (result, profile), count in sorted(self._attempts.items()):
            attempts.add_metric([result, profile], count)
        yield attempts
        durations = HistogramMetricFamily("scheduler_scheduling_attempt_duration_seconds",
                                          "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
                                          labels=["result", "profile"])
        for (result, profile), hist in sorted(self._durations.items()):
            buckets: List[Tuple[str, float]] = []
            cumulative = 0
            for bound, count in zip(DURATION_BUCKETS, hist.counts):
                cumulative += count
                buckets.append((repr(bound), cumulative))
            cumulative += hist.counts[-1]
            buckets.append(("+Inf", cumulative))
            durations.add_metric([result, profile], buckets, hist.total)
        yield durations
        yield CounterMetricFamily("scheduler_preemption_attempts", "Total preemption attempts in the cluster till now",
                                  value=self.preemption_attempts)
        victims = HistogramMetricFamily("scheduler_preemption_victims", "Number of selected preemption victims")
        cumulative, vbuckets = 0, []
        for bound, count in zip(VICTIM_BUCKETS, self._victims):
            cumulative += count
            vbuckets.append((repr(bound), float(cumulative)))
        vbuckets.append(("+Inf", float(cumulative + self._victims[-1])))
        victims.add_metric([], vbuckets, float(self._victims_total))
        yield victims
        pending = GaugeMetricFamily("scheduler_pending_pods", "Number of pending pods, by the queue type. 'active' "
                                    "means number of pods in activeQ; 'backoff' means number of pods in backoffQ; "
                                    "'unschedulable' means number of pods in unschedulablePods that the scheduler "
                                    "attempted to schedule and failed; 'gated' is the number of unschedulable pods "
                                    "that the scheduler never attempted to schedule because they are gated.",
                                    labels=["queue"])
        counts = self.pending()
        for queue in ("active", "backoff", "unschedulable", "gated"):
            pending.add_metric([queue], counts.get(queue, 0))
        yield pending
