"""Response bodies: lists from pre-encoded items, server-side Tables, and the events.k8s.io view.

A list body is assembled from the stored bytes of its items with one join
(never re-encoding an item). Tables (`Accept: ...;as=Table;g=meta.k8s.io`,
what kubectl asks for) need each item decoded once for its cells; the
cells themselves come from `megaplane.apiserver.printers`.

events.k8s.io/v1 Events share storage with core/v1 Events (stored in the
core form, as upstream stores them); `events_v1_from_core` and
`core_from_events_v1` are upstream's field mapping between the two.
"""

from __future__ import annotations

import base64
import datetime
import posixpath
from typing import Any, Dict, Iterable, List, Optional

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import Resource

__all__ = [
    "list_body",
    "wants_table",
    "table_body",
    "table_watch_line",
    "encode_continue",
    "decode_continue",
    "events_v1_from_core",
    "core_from_events_v1",
    "view_bytes",
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


_EVENT_PREFIX = {t: b'{"type":"%s","object":' % t.encode() for t in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")}


def event_line(etype: str, data: bytes) -> bytes:
    """One watch event as it goes on the wire: `{"type":...,"object":...}` and a newline."""
    prefix = _EVENT_PREFIX.get(etype) or b'{"type":"%s","object":' % etype.encode()
    return prefix + data + b"}\n"


def table_watch_line(resource: Resource, etype: str, obj: Dict[str, Any], include: str = "Metadata") -> bytes:
    rv = (obj.get("metadata") or {}).get("resourceVersion", "")
    table = table_body(resource, [obj], int(rv) if rv.isdigit() else 0, include=include)
    return event_line(etype, table)


# -- continue tokens (apiserver/pkg/storage: encodeContinue) ---------------------------------

_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - "
    "objects that were created, modified, or deleted between the time the first chunk was returned and now "
    "may show up in the list."
)


def encode_continue(next_key: bytes, prefix: bytes, revision: int) -> str:
    start = next_key[len(prefix) :].decode("utf-8", "surrogateescape")
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def decode_continue(token: str, prefix: bytes) -> tuple:
    """(start key, revision) of a continue token; 400 with storage's wording when it is not one of ours."""

    def invalid(why: str) -> errors.StatusError:
        return errors.bad_request(f"invalid continue token: continue key is not valid: {why}")

    bad = next((i for i, c in enumerate(token) if c not in _B64URL), None)
    if bad is None and len(token) % 4 == 1:
        bad = len(token) - 1
    if bad is not None:
        raise invalid(f"illegal base64 data at input byte {bad}")
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise invalid(str(exc)) from None
    if not isinstance(data, dict) or data.get("v") != "meta.k8s.io/v1":
        version = data.get("v", "") if isinstance(data, dict) else ""
        raise invalid(f'server does not recognize this encoded version "{version}"')
    rev, start = data.get("rv"), data.get("start")
    if not isinstance(rev, int) or rev <= 0:
        raise invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if not isinstance(start, str) or not start:
        raise invalid("encoded start key empty (version meta.k8s.io/v1)")
    key = start if start.startswith("/") else "/" + start
    if posixpath.normpath(key) != key or key.startswith("//"):
        raise invalid(start)  # no climbing out of the collection's prefix
    return prefix + key[1:].encode("utf-8", "surrogateescape"), rev


def continue_expired() -> errors.StatusError:
    return errors.expired(_EXPIRED)


# -- events.k8s.io/v1 <-> core/v1 Event ---------------------------------------------------------

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
