"""megaplane.storage.etcd3: the `Storage` contract over etcd v3 clusters (real etcd or `megaplane store`).

Owns the storage over one cluster (`storage`: kube-apiserver's etcd3 store
keys, txns and leases, watches for the watch cache), the compaction
protocol shared by every API server on a cluster (`compactor`), routing
resources to their own clusters (`split`, --etcd-servers-overrides) and
turning kube-apiserver's etcd flags into backends (`backends`). The etcd
wire itself is megaplane.etcd.client's; this package never sees protobufs.
"""

from .backends import (
    EMBEDDED,
    BackendConfig,
    EtcdBackends,
    build_storage,
    parse_overrides,
    parse_servers,
)
from .compactor import Compactor
from .split import SplitStorage
from .storage import DEFAULT_PREFIX, Etcd3Storage, Etcd3Watch

__all__ = [
    "Etcd3Storage",
    "Etcd3Watch",
    "DEFAULT_PREFIX",
    "Compactor",
    "SplitStorage",
    "BackendConfig",
    "EtcdBackends",
    "EMBEDDED",
    "build_storage",
    "parse_overrides",
    "parse_servers",
]
