"""Key ranges: the end of a prefix's range, as etcd's clientv3.GetPrefixRangeEnd computes it (the store's own)."""

from __future__ import annotations

from megaplane.store.kv import prefix_end

__all__ = ["prefix_end"]
