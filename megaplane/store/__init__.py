"""megaplane.store: the etcd-compatible in-memory state store.

Owns the keyspace and everything that makes it durable and observable.
Imports only go down this list:

- `mvcc`: `Store`, the facade every caller uses (checks, then delegates);
- `txn`, `leases`, `ranges`: running a txn, the lease API, reads;
- `watch/`: the watch hub, watchers and their groups;
- `writer`: the one mutator (put/delete at a revision, WAL append, watch dispatch);
- `wal/`: the write-ahead log, durability policy, snapshots, recovery;
- `keyspace`, `lessor`, `requests`, `config`: partitions, lease books,
  request shapes and checks, tunables;
- `kv`, `errors`: record and event types, etcd's error vocabulary.

Beside them: `backend` (the API server's seam over a store), `metrics`
(Prometheus collector), `compactor` (auto-compaction). It imports nothing
from the rest of megaplane; the API server and the etcd front end
(`megaplane.etcd`) build on it, never the other way round (.importlinter).
"""

from .errors import StoreError
from .kv import Event, KeyValue
from .mvcc import Store, StoreConfig
from .requests import (
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
from .wal import snapshot
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
    "snapshot",
]
