"""Namespaces: start Active with the `kubernetes` finalizer; spec changes only through /finalize."""

from __future__ import annotations

from typing import Any, Dict, Optional

from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["NamespaceStrategy", "FINALIZER"]

# spec.finalizers entry the namespace controller owns.
FINALIZER = "kubernetes"


class NamespaceStrategy(Strategy):
    def initial_status(self, obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        return {"phase": "Active"}

    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        obj.setdefault("spec", {})["finalizers"] = [FINALIZER]

    def keep_on_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        obj["spec"] = old.get("spec") or {}

    def should_delete_during_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> bool:
        # ShouldDeleteNamespaceDuringUpdate: spec.finalizers (the namespace controller's) must be gone too.
        return super().should_delete_during_update(obj, old) and not (obj.get("spec") or {}).get("finalizers")
