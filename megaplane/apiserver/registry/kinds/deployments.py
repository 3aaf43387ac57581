"""Deployments: status updates keep labels; annotation changes move the generation (they reach ReplicaSets)."""

from __future__ import annotations

from typing import Any, Dict, Optional

from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["DeploymentStrategy"]


class DeploymentStrategy(Strategy):
    status_keeps_metadata = ("labels",)

    def spec_changed(self, obj: Dict[str, Any], old: Dict[str, Any]) -> bool:
        if obj.get("spec") != old.get("spec"):
            return True
        annotations: Optional[Dict[str, str]] = obj["metadata"].get("annotations")
        old_annotations: Optional[Dict[str, str]] = (old.get("metadata") or {}).get("annotations")
        return annotations != old_annotations
