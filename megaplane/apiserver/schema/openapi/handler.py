"""GET /openapi/v2 as kube-openapi's handler answers it: content negotiation, ETag and conditional requests.

Upstream (k8s.io/kube-openapi pkg/handler, ``RegisterOpenAPIVersionedService``):

* the Accept header (empty means ``*/*``) is parsed by goautoneg: clauses split on ``,``, ``q``
  taken from the parameters (not dropped when 0), sorted by its Less (higher q first, but also a
  concrete type or subtype before a ``*`` one);
  the first clause that matches ``application/json``,
  ``application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` (what client-go sends) or
  ``application/com.github.proto-openapi.spec.v2.v1.0+protobuf`` decides; both protobuf forms are
  answered with the latter as Content-Type; nothing matching is a bare 406;
* every answer carries ``Vary: Accept``; a served one ``ETag: "<SHA-512 of the JSON, upper hex>"``
  (the protobuf form reuses the JSON's, the Vary header tells caches apart) and, from
  ``http.ServeContent``, ``Last-Modified`` (when the JSON was built);
* ``http.ServeContent``'s preconditions: If-Match (strong) / If-Unmodified-Since fail with 412;
  If-None-Match (weak comparison, ``*``, lists) or, without it, If-Modified-Since answer a GET or
  HEAD with 304 (no body, no Last-Modified since an ETag is set);
* a document gnostic's compiler refuses is logged and answered 503 (in the form asked for).

Not done here: upstream wraps the handler in gziphandler (gzip for ``Accept-Encoding: gzip`` above
1400 bytes) and ServeContent serves byte ranges (``Accept-Ranges: bytes``); megaplane's HTTP layer
compresses nothing and this answers whole bodies only.
"""

from __future__ import annotations

import email.utils
import logging
from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Protocol, Tuple

from megaplane.apiserver.schema.openapi.v2proto import InvalidDocument

__all__ = ["JSON", "PROTOBUF", "PROTOBUF_DEPRECATED", "Reply", "negotiate", "serve_v2"]

JSON = "application/json"
PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
PROTOBUF_DEPRECATED = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"

log = logging.getLogger("megaplane.apiserver")

# (type, subtype, the form it is served as), in kube-openapi's order.
_ACCEPTED: Tuple[Tuple[str, str, str], ...] = (
    ("application", "json", JSON),
    ("application", PROTOBUF_DEPRECATED.split("/", 1)[1], PROTOBUF),
    ("application", PROTOBUF.split("/", 1)[1], PROTOBUF),
)


@dataclass
class Reply:
    """What to answer; the server turns it into its HTTP response (this layer knows no transport)."""

    status: int
    body: bytes
    content_type: str
    headers: List[Tuple[str, str]] = field(default_factory=list)


class V2Source(Protocol):
    """The served document (`OpenAPI`): both bodies, built once, the JSON's ETag and when it was built."""

    def v2_document(self) -> bytes: ...

    def v2_protobuf(self) -> bytes: ...

    def v2_etag(self) -> str: ...

    def v2_last_modified(self) -> float: ...


def _parse_accept(header: str) -> List[Tuple[str, str]]:
    """goautoneg.ParseAccept: (type, subtype) of each clause, in the order it sorts them."""
    clauses: List[Tuple[float, str, str]] = []
    for part in header.split(","):
        media, *params = part.strip(" ").split(";")
        sp = media.split("/")
        typ = sp[0].strip(" ")
        if len(sp) == 1 and typ == "*":
            sub = "*"
        elif len(sp) == 2:
            sub = sp[1].strip(" ")
        else:
            continue
        q = 1.0
        for param in params:
            kv = param.split("=", 1)
            if len(kv) == 2 and kv[0].strip(" ") == "q":
                q = _go_float(kv[1])
        clauses.append((q, typ, sub))
    # sort.Sort with goautoneg's Less, which is no ordering (a concrete type sorts before */* even of a
    # higher q): for the dozen clauses a header has, Go's pdqsort is this insertion sort.
    for i in range(1, len(clauses)):
        j = i
        while j > 0 and _less(clauses[j], clauses[j - 1]):
            clauses[j], clauses[j - 1] = clauses[j - 1], clauses[j]
            j -= 1
    return [(typ, sub) for _, typ, sub in clauses]


def _less(a: Tuple[float, str, str], b: Tuple[float, str, str]) -> bool:
    return a[0] > b[0] or (a[1] != "*" and b[1] == "*") or (a[2] != "*" and b[2] == "*")


def _go_float(text: str) -> float:
    # strconv.ParseFloat takes no surrounding blanks; goautoneg keeps the 0 of a failed parse.
    if text != text.strip() or not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        return 0.0


def negotiate(accept: str) -> Optional[str]:
    """The media type GET /openapi/v2 answers an Accept header with, None for 406."""
    for typ, sub in _parse_accept(accept or "*/*"):
        for a_typ, a_sub, served in _ACCEPTED:
            if typ in (a_typ, "*") and sub in (a_sub, "*"):
                return served
    return None


def serve_v2(doc: V2Source, method: str, headers: Mapping[str, str]) -> Reply:
    """The answer to GET/HEAD /openapi/v2 with these (lower-cased) request headers."""
    served = negotiate(headers.get("accept", ""))
    vary = [("Vary", "Accept")]
    if served is None:
        return Reply(406, b"", "text/plain; charset=utf-8", vary)
    try:
        body = doc.v2_document() if served == JSON else doc.v2_protobuf()
    except InvalidDocument:
        # kube-openapi logs the compiler's error and, with no older body to fall back on, answers 503.
        log.exception("Error in OpenAPI handler")
        return Reply(503, b"", "text/plain; charset=utf-8", vary)
    etag = '"' + doc.v2_etag() + '"'
    modified = doc.v2_last_modified()
    out = vary + [("Etag", etag)]
    status = _preconditions(method, headers, etag, modified)
    if status == 304:
        return Reply(304, b"", served, out)
    if status == 412:
        return Reply(412, b"", served, out)
    out.append(("Last-Modified", email.utils.formatdate(int(modified), usegmt=True)))
    return Reply(200, body, served, out)


def _preconditions(method: str, headers: Mapping[str, str], etag: str, modified: float) -> int:
    """net/http checkPreconditions without ranges: 0 to serve, 304 or 412."""
    if_match = headers.get("if-match")
    if if_match is not None:
        if not _etag_listed(if_match, etag, weak=False):
            return 412
    elif _not_after(headers.get("if-unmodified-since"), modified) is False:
        return 412
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if _etag_listed(if_none_match, etag, weak=True):
            return 304 if method in ("GET", "HEAD") else 412
    elif method in ("GET", "HEAD") and _not_after(headers.get("if-modified-since"), modified):
        return 304
    return 0


def _not_after(header: Optional[str], modified: float) -> Optional[bool]:
    """Whether the document (to the second) is not newer than an HTTP date; None when absent or unparsable."""
    if not header or modified <= 0:
        return None
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return int(modified) <= when.timestamp()


def _etag_listed(header: str, etag: str, weak: bool) -> bool:
    """An If-Match / If-None-Match list names the ETag (`*` names any); weak comparison ignores W/."""
    for item in header.split(","):
        item = item.strip()
        if item == "*":
            return True
        if item.startswith("W/"):
            if not weak:
                continue
            item = item[2:]
        if item == etag:
            return True
    return False
