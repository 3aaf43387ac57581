"""EndpointSlices: the generation moves on any change outside metadata, or of the labels."""

from __future__ import annotations

from typing import Any, Dict

from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["EndpointSliceStrategy"]


class EndpointSliceStrategy(Strategy):
    def spec_changed(self, obj: Dict[str, Any], old: Dict[str, Any]) -> bool:
        outside = any(
            obj.get(k) != old.get(k) for k in set(obj) | set(old) if k not in ("metadata", "apiVersion", "kind")
        )
        return outside or (obj["metadata"].get("labels") != (old.get("metadata") or {}).get("labels"))
