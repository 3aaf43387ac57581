"""Response bodies: lists from pre-encoded items, server-side Tables, watch event lines.

A list body is assembled from the stored bytes of its items with one join
(never re-encoding an item). Tables (`Accept: ...;as=Table;g=meta.k8s.io`,
what kubectl asks for) need each item decoded once for its cells; the
cells themselves come from `megaplane.apiserver.printers`.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, Iterable, List, Optional

import orjson

from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.watchevent import event_line

__all__ = [
    "list_body",
    "wants_table",
    "table_body",
    "table_watch_line",
    "event_line",
]


def list_body(
    resource: Resource, items: Iterable[bytes], revision: int, cont: str = "", remaining: Optional[int] = None
) -> bytes:
    meta = b'{"resourceVersion":"%d"' % revision
    if cont:
        meta += b',"continue":"' + cont.encode() + b'"'
        if remaining is not None:
            meta += b',"remainingItemCount":%d' % remaining
    meta += b"}"
    return b"".join(
        (
            b'{"kind":"',
            resource.list_kind.encode(),
            b'","apiVersion":"',
            resource.group_version.encode(),
            b'","metadata":',
            meta,
            b',"items":[',
            b",".join(items),
            b"]}",
        )
    )


def wants_table(accept: str) -> bool:
    """True when the client's first acceptable format is a meta.k8s.io/v1 Table."""
    known = _WANTS_TABLE.get(accept)
    if known is None:
        known = _wants_table(accept)
        if len(_WANTS_TABLE) < 256:  # clients send a handful of distinct Accept headers
            _WANTS_TABLE[accept] = known
    return known


_WANTS_TABLE: Dict[str, bool] = {}


def _wants_table(accept: str) -> bool:
    for part in accept.split(","):
        params = [p.strip() for p in part.split(";")]
        opts = dict(p.split("=", 1) for p in params[1:] if "=" in p)
        if opts.get("as") == "Table":
            if opts.get("g") == "meta.k8s.io" and opts.get("v") == "v1":
                return True
            continue  # a Table version we do not serve: try the next choice
        if params[0] in ("application/json", "*/*", "application/*", "application/yaml"):
            return False
    return False


def _partial(obj: Dict[str, Any]) -> Dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def _rows(resource: Resource, objs: Iterable[Dict[str, Any]], include: str) -> List[Dict[str, Any]]:
    from megaplane.apiserver.printers import row_cells

    now = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for obj in objs:
        row: Dict[str, Any] = {"cells": row_cells(resource.group, resource.plural, obj, now)}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = _partial(obj)
        rows.append(row)
    return rows


def table_body(
    resource: Resource, objs: Iterable[Dict[str, Any]], revision: int, cont: str = "", include: str = "Metadata"
) -> bytes:
    from megaplane.apiserver.printers import column_definitions

    meta: Dict[str, Any] = {"resourceVersion": str(revision)}
    if cont:
        meta["continue"] = cont
    return orjson.dumps(
        {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "columnDefinitions": column_definitions(resource.group, resource.plural),
            "rows": _rows(resource, objs, include),
        }
    )


def table_watch_line(resource: Resource, etype: str, obj: Dict[str, Any], include: str = "Metadata") -> bytes:
    rv = (obj.get("metadata") or {}).get("resourceVersion", "")
    table = table_body(resource, [obj], int(rv) if rv.isdigit() else 0, include=include)
    return event_line(etype, table)
