"""megaplane.store: the etcd-compatible in-memory state store.

Owns the keyspace and everything that makes it durable and observable:
MVCC records and revisions (`mvcc`), per-kind partitions (`keyspace`),
watches (`watch`), etcd leases (`leases`), the write-ahead log (`wal`),
snapshots (`snapshot`) and the store's Prometheus metrics (`metrics`).
It imports nothing from the rest of megaplane; the API server and the etcd
gRPC front end build on it, never the other way round.
"""

from .errors import StoreError
from .kv import Event, KeyValue
from .mvcc import Store, StoreConfig
from .txn import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    SortOrder,
    SortTarget,
    TxnRequest,
)
from .watch import Watcher

__all__ = [
    "Store",
    "StoreConfig",
    "StoreError",
    "KeyValue",
    "Event",
    "Watcher",
    "Compare",
    "CompareResult",
    "CompareTarget",
    "RangeRequest",
    "PutRequest",
    "DeleteRangeRequest",
    "TxnRequest",
    "SortOrder",
    "SortTarget",
]
