"""events.k8s.io/v1 Events: stored as core/v1 Events (as upstream stores them), converted on the way in and out.

`events_v1_from_core` and `core_from_events_v1` are upstream's field mapping
between the two; `view_bytes` is what a resource's clients see of stored bytes.
"""

from __future__ import annotations

from typing import Any, Dict

import orjson

from megaplane.apimachinery.resources import Resource

__all__ = ["events_v1_from_core", "core_from_events_v1", "view_bytes"]


_V1_FROM_CORE = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
]
_SAME = ("eventTime", "series", "reportingInstance", "action", "reason", "related", "type")


def events_v1_from_core(core: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": core.get("metadata", {})}
    for src, dst in _V1_FROM_CORE:
        if src in core and core[src] not in (None, {}, ""):
            out[dst] = core[src]
    for k in _SAME:
        if k in core:
            out[k] = core[k]
    if "eventTime" not in out:
        out["eventTime"] = None
    return out


def core_from_events_v1(ev: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"kind": "Event", "apiVersion": "v1", "metadata": ev.get("metadata", {})}
    for src, dst in _V1_FROM_CORE:
        if dst in ev:
            out[src] = ev[dst]
    for k in _SAME:
        if k in ev:
            out[k] = ev[k]
    out.setdefault("involvedObject", {})
    return out


def view_bytes(resource: Resource, data: bytes) -> bytes:
    """Stored bytes as this resource's clients see them (only events.k8s.io differs)."""
    if resource.storage_of is None:
        return data
    return orjson.dumps(events_v1_from_core(orjson.loads(data)))
