"""Prometheus metrics of a store, under etcd's names where etcd has the same figure.

The store counts with plain integer attributes on its hot paths (a
prometheus_client Counter.inc() costs ~0.5 us, a third of a put); this
collector reads them at scrape time. Names follow etcd (server/storage/mvcc
and wal metrics) so etcd dashboards and alerts apply unchanged; figures
etcd has no counterpart for are prefixed ``megaplane_store_``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .wal.log import FSYNC_BUCKETS

if TYPE_CHECKING:
    from .mvcc import Store

__all__ = ["StoreCollector"]


class StoreCollector(Collector):
    """Exposes one store's counters; register with a prometheus_client registry."""

    def __init__(self, store: "Store") -> None:
        self.store = store

    def collect(self) -> Iterator[object]:
        s = self.store
        hub = s.hub
        lessor = s.lessor

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield counter("etcd_mvcc_put_total", "Total number of puts seen by this member.", s.puts_total)
        yield counter("etcd_mvcc_delete_total", "Total number of deletes seen by this member.", s.deletes_total)
        yield counter("etcd_mvcc_range_total", "Total number of ranges seen by this member.", s.ranges_total)
        yield counter("etcd_mvcc_txn_total", "Total number of txns seen by this member.", s.txns_total)
        yield gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", s.key_count())
        yield gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.", s.revision)
        yield gauge(
            "etcd_debugging_mvcc_compact_revision",
            "The revision of the last compaction in store.",
            s.compact_revision,
        )
        yield counter("megaplane_store_compactions_total", "Compactions run.", s.compactions_total)
        yield gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.", len(hub.watchers))
        yield gauge(
            "etcd_debugging_mvcc_slow_watcher_total",
            "Total number of unsynced slow watchers.",
            len(hub.unsynced),
        )
        yield counter(
            "etcd_debugging_mvcc_events_total",
            "Total number of events sent by this member.",
            hub.events_total,
        )
        yield counter(
            "etcd_debugging_lease_granted_total", "The total number of granted leases.", lessor.granted_total
        )
        yield counter(
            "etcd_debugging_lease_revoked_total", "The total number of revoked leases.", lessor.revoked_total
        )
        yield counter(
            "etcd_debugging_lease_renewed_total",
            "The number of renewed leases seen by the leader.",
            lessor.renewed_total,
        )
        yield counter(
            "etcd_debugging_server_lease_expired_total",
            "The total number of expired leases.",
            lessor.expired_total,
        )
        keys = GaugeMetricFamily(
            "megaplane_store_partition_keys", "Live keys per partition.", labels=["partition"]
        )
        events = GaugeMetricFamily(
            "megaplane_store_partition_history_events",
            "Events kept per partition for watches and reads at old revisions.",
            labels=["partition"],
        )
        for p in s.partitions():
            label = p.prefix.decode(errors="replace") or "default"
            keys.add_metric([label], len(p.kvs))
            events.add_metric([label], len(p.events))
        yield keys
        yield events
        wal = s.wal
        if wal is not None:
            yield counter(
                "etcd_disk_wal_write_bytes_total",
                "Total number of bytes written in WAL.",
                wal.bytes_written_total,
            )
            buckets = []
            acc = 0
            for bound, n in zip(FSYNC_BUCKETS, wal.fsync_bucket_counts):
                acc += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), acc))
            yield HistogramMetricFamily(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                buckets=buckets,
                sum_value=wal.fsync_seconds_sum,
            )
            yield counter(
                "megaplane_store_wal_cycles_total",
                "WAL write cycles (group commits) completed.",
                wal.cycles_total,
            )
            yield counter(
                "megaplane_store_checkpoints_total",
                "Checkpoint snapshots written.",
                s.durability.checkpoints_total if s.durability else 0,
            )
        r = s.reservation
        if r is not None:
            yield gauge(
                "megaplane_store_revision_reserved",
                "The revision ceiling on disk: no revision above it has been handed out.",
                r.reserved,
            )
            yield counter(
                "megaplane_store_revision_reservations_total",
                "Revision reservations written to disk.",
                r.reservations_total,
            )
            yield counter(
                "megaplane_store_revision_reservation_waits_total",
                "Writes that waited for a revision reservation to reach the disk.",
                r.waits_total,
            )
