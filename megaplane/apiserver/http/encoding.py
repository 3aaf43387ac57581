"""Response bodies: lists from pre-encoded items, server-side Tables, watch event lines, protobuf.

A list body is assembled from the stored bytes of its items with one join
(never re-encoding an item). Tables (`Accept: ...;as=Table;g=meta.k8s.io`,
what kubectl asks for) need each item decoded once for its cells; the
cells themselves come from `megaplane.apiserver.printers`.

Protobuf (`Accept: application/vnd.kubernetes.protobuf`, client-go's
default for built-in kinds): `negotiate` picks the format from Accept as
upstream's negotiation does (first acceptable entry; custom resources have
no protobuf and fall back to JSON when the client also accepts it). An
object's bare message is memoised on its cache entry (`CachedObject.pb`)
and a watch event's frame on the event (`CacheEvent.pb_wire`), so a list
or an event is encoded once per revision for all protobuf clients; the
encoding itself is `megaplane.apiserver.schema.protobuf_encode`.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.watchevent import event_line
from megaplane.apiserver.schema import protobuf_encode as pb
from megaplane.apiserver.watchcache import CachedObject, CacheEvent

__all__ = [
    "PROTOBUF",
    "PROTOBUF_STREAM",
    "negotiate",
    "not_acceptable",
    "pb_body",
    "pb_cached_body",
    "pb_list_body",
    "pb_event_frame",
    "pb_frame",
    "pb_json_frame",
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
    table: Any = resource.extra.get("table")
    rows = []
    for obj in objs:
        # A runtime resource may carry its own printer (custom resources' additionalPrinterColumns).
        cells = table[1](obj, now) if table else row_cells(resource.group, resource.plural, obj, now)
        row: Dict[str, Any] = {"cells": cells}
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
            "columnDefinitions": (resource.extra["table"][0] if "table" in resource.extra  # type: ignore[index]
                                  else column_definitions(resource.group, resource.plural)),
            "rows": _rows(resource, objs, include),
        }
    )


def table_watch_line(resource: Resource, etype: str, obj: Dict[str, Any], include: str = "Metadata") -> bytes:
    rv = (obj.get("metadata") or {}).get("resourceVersion", "")
    table = table_body(resource, [obj], int(rv) if rv.isdigit() else 0, include=include)
    return event_line(etype, table)


# --- protobuf ------------------------------------------------------------------------------------

PROTOBUF = pb.CONTENT_TYPE.encode()
PROTOBUF_STREAM = pb.STREAM_CONTENT_TYPE.encode()
_JSON_TYPES = ("application/json", "application/yaml", "*/*", "application/*", "")


def negotiate(accept: str) -> Tuple[str, bool]:
    """(format, JSON acceptable too) for an Accept header: format "json", "protobuf" or "" (406).

    Entries are taken in order, as client-go lists them by preference
    (`application/vnd.kubernetes.protobuf, application/json`). An entry with
    an `as=` parameter (Table, PartialObjectMetadata) is not plain protobuf
    or JSON; Tables are `wants_table`'s, and a JSON one megaplane does not
    transform keeps its plain JSON answer, as before protobuf existed here.
    """
    known = _NEGOTIATED.get(accept)
    if known is None:
        known = _negotiate(accept)
        if len(_NEGOTIATED) < 256:
            _NEGOTIATED[accept] = known
    return known


_NEGOTIATED: Dict[str, Tuple[str, bool]] = {}


def _negotiate(accept: str) -> Tuple[str, bool]:
    first = ""
    json_ok = False
    json_with_as = False
    for part in accept.split(","):
        params = [p.strip() for p in part.split(";")]
        mime = params[0].lower()
        has_as = any(p.startswith("as=") for p in params[1:])
        if mime in _JSON_TYPES:
            if has_as:
                json_with_as = True
                continue
            json_ok = True
            first = first or "json"
        elif mime == pb.CONTENT_TYPE and not has_as:
            first = first or "protobuf"
    if not first and (json_with_as or not accept.strip()):
        return "json", True
    return first, json_ok


def not_acceptable(protobuf: bool) -> errors.StatusError:
    """406 as upstream's negotiation answers it (errNotAcceptable), listing what the resource can be sent as."""
    types = ["application/json", "application/yaml"] + ([pb.CONTENT_TYPE] if protobuf else [])
    return errors.StatusError(406, "NotAcceptable", "only the following media types are accepted: " + ", ".join(types))


def _kind_of(data: bytes) -> Tuple[str, str, Dict[str, Any]]:
    obj = orjson.loads(data)
    return obj.get("apiVersion", ""), obj.get("kind", ""), obj


log = logging.getLogger(__name__)


def pb_body(data: bytes) -> Optional[bytes]:
    """A JSON response body in protobuf; None when its kind has no protobuf message (a custom resource) or the
    object does not fit it (the caller answers JSON then: a stored object protobuf cannot carry stays readable)."""
    api_version, kind, obj = _kind_of(data)
    if not pb.encodable(api_version, kind):
        return None
    try:
        return pb.encode(api_version, kind, obj)
    except pb.EncodeError as exc:
        log.warning("answering in JSON: %s", exc)
        return None


def pb_object(resource: Resource, obj: CachedObject) -> bytes:
    """A cached object's bare message, encoded once per revision."""
    raw = obj.pb
    if raw is None:
        raw = obj.pb = pb.object_raw(resource.group_version, resource.kind, orjson.loads(obj.data))
    return raw


def pb_cached_body(resource: Resource, obj: CachedObject) -> Optional[bytes]:
    """A get's protobuf body for a cached object, from its memoised message (None: see pb_body)."""
    try:
        return pb.envelope(resource.group_version, resource.kind, pb_object(resource, obj))
    except pb.EncodeError as exc:
        log.warning("answering in JSON: %s", exc)
        return None


def pb_list_body(
    resource: Resource, items: Sequence[bytes], objects: Optional[Sequence[CachedObject]], revision: int,
    cont: str = "", remaining: Optional[int] = None,
) -> Optional[bytes]:
    """The <Kind>List in protobuf; from the cache's memoised messages when the items are cached objects
    (None: an item does not fit its message, see pb_body)."""
    gv, kind = resource.group_version, resource.kind
    try:
        if objects is not None:
            raws = [obj.pb or pb_object(resource, obj) for obj in objects]
        else:
            raws = [pb.object_raw(gv, kind, orjson.loads(b)) for b in items]
    except pb.EncodeError as exc:
        log.warning("answering in JSON: %s", exc)
        return None
    return pb.list_body(gv, resource.list_kind, raws, revision, cont, remaining)


def pb_frame(resource: Resource, etype: str, obj: CachedObject) -> bytes:
    """One protobuf watch frame for a cached object; an ERROR frame (500) for one its message cannot carry, so the
    stream says so rather than skipping the event (a watch's format is fixed when it starts)."""
    try:
        raw = pb_object(resource, obj)
    except pb.EncodeError as exc:
        log.warning("watch event not encodable in protobuf: %s", exc)
        status = orjson.loads(errors.internal(f"unable to encode the object as protobuf: {exc}").body())
        return pb_json_frame("ERROR", status)
    return pb.watch_frame(etype, pb.envelope(resource.group_version, resource.kind, raw))


def pb_event_frame(resource: Resource, ev: CacheEvent) -> bytes:
    """A cache event's protobuf frame, encoded once and shared by every protobuf watcher."""
    frame = ev.pb_wire
    if frame is None:
        frame = ev.pb_wire = pb_frame(resource, ev.type, ev.obj)
    return frame


def pb_json_frame(etype: str, obj: Dict[str, Any]) -> bytes:
    """A frame for an object not in the cache (bookmarks, an ERROR's Status, a converted view)."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    return pb.watch_frame(etype, pb.encode(api_version, kind, obj))
