"""Nodes: a kubelet registers its node with a status, which a create keeps."""

from __future__ import annotations

from typing import Any, Dict, Optional

from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["NodeStrategy"]


class NodeStrategy(Strategy):
    def initial_status(self, obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        return obj.get("status") or {}
