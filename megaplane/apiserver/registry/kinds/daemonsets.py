"""DaemonSets: the template generation, kept in the `deprecated.daemonset.template.generation` annotation.

Upstream's daemonSetStrategy keeps spec.templateGeneration internally and
apps/v1 carries it as that annotation: 1 on create (unless given higher),
kept from the stored object on every update, and raised by one with the
generation when the pod template changes. The DaemonSet controller labels
its pods `pod-template-generation` with it.
"""

from __future__ import annotations

from typing import Any, Dict

from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["DaemonSetStrategy", "TEMPLATE_GENERATION"]

TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"


def _generation(obj: Dict[str, Any]) -> int:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION)
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _set(obj: Dict[str, Any], generation: int) -> None:
    meta = obj.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations[TEMPLATE_GENERATION] = str(generation)
    meta["annotations"] = annotations


class DaemonSetStrategy(Strategy):
    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        _set(obj, max(1, _generation(obj)))

    def prepare_for_update(self, obj: Dict[str, Any], old: Dict[str, Any], subresource: str) -> None:
        super().prepare_for_update(obj, old, subresource)
        stored = max(1, _generation(old))  # objects stored before the annotation was kept count as 1
        if subresource == "status":
            _set(obj, stored)
            return
        template_changed = (obj.get("spec") or {}).get("template") != (old.get("spec") or {}).get("template")
        _set(obj, stored + 1 if template_changed else stored)
