"""ListOptions: the query parameters of list, watch and deletecollection, decoded and validated as upstream does.

Order and wording follow kube-apiserver 1.32's handlers: first the
parameters are decoded (a malformed number, boolean or label selector is a
400 with Go's parse error), then defaulted (the WatchList feature, on in
1.32: a watch from resourceVersion "" or "0" is a watch with initial
events), then checked by ValidateListOptions (422 Invalid on
`ListOptions.meta.k8s.io`), and last the field selector is converted for
the kind (400 for a field the kind cannot select on).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)

__all__ = ["ListOptions", "list_options", "parse_resource_version", "go_parse_int", "go_parse_bool"]

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def go_parse_bool(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise errors.bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def go_parse_int(value: str) -> int:
    body = value[1:] if value[:1] in ("+", "-") else value
    if not body or not body.isascii() or not body.isdigit():
        raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    n = int(value)
    if not -(1 << 63) <= n < (1 << 63):
        raise errors.bad_request(f'strconv.ParseInt: parsing "{value}": value out of range')
    return n


def parse_resource_version(value: str) -> int:
    """A resourceVersion query value as the storage layer reads it; "" is 0."""
    if not value:
        return 0
    if not value.isascii() or not value.isdigit():
        raise errors.bad_request(
            f'invalid resource version: resourceVersion: Invalid value: "{value}": '
            f'strconv.ParseUint: parsing "{value}": invalid syntax'
        )
    return int(value)


class ListOptions:
    __slots__ = ("labels", "fields", "limit", "continue_token", "resource_version", "match", "send_initial_events",
                 "allow_bookmarks", "timeout_seconds", "watch")

    def __init__(self) -> None:
        self.labels: Optional[LabelSelector] = None
        self.fields: Optional[FieldSelector] = None
        self.limit = 0
        self.continue_token = ""
        self.resource_version = ""
        self.match = ""
        self.send_initial_events: Optional[bool] = None
        self.allow_bookmarks = False
        self.timeout_seconds: Optional[int] = None
        self.watch = False


def list_options(q: Dict[str, str], resource: Resource, watch: bool) -> ListOptions:
    opts = ListOptions()
    opts.watch = watch
    # 1. decoding
    if q.get("limit"):
        opts.limit = max(go_parse_int(q["limit"]), 0)
    if q.get("timeoutSeconds"):
        opts.timeout_seconds = go_parse_int(q["timeoutSeconds"])
    if q.get("allowWatchBookmarks"):
        opts.allow_bookmarks = go_parse_bool(q["allowWatchBookmarks"])
    if q.get("sendInitialEvents"):
        opts.send_initial_events = go_parse_bool(q["sendInitialEvents"])
    opts.labels = parse_label_selector(q.get("labelSelector", ""))
    opts.continue_token = q.get("continue", "")
    opts.resource_version = q.get("resourceVersion", "")
    opts.match = q.get("resourceVersionMatch", "")
    # 2. defaults (SetListOptionsDefaults with the WatchList feature on)
    if watch and opts.send_initial_events is None and not opts.match and opts.resource_version in ("", "0"):
        opts.send_initial_events = True
        opts.match = "NotOlderThan"
    # 3. ValidateListOptions
    causes = _validate(opts)
    if causes:
        raise errors.invalid("meta.k8s.io", "ListOptions", "", causes)
    # 4. field label conversion
    opts.fields = parse_field_selector(q.get("fieldSelector", ""), resource)
    return opts


def _validate(opts: ListOptions) -> List[Dict[str, Any]]:
    causes = []
    match, rv = opts.match, opts.resource_version

    def forbidden(field: str, why: str) -> None:
        causes.append(field_error("", field, None, why, "FieldValueForbidden"))

    if not opts.watch:
        if match and not rv:
            forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided")
        if match and opts.continue_token:
            forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided")
        if match and match not in ("Exact", "NotOlderThan"):
            causes.append(field_error("", "resourceVersionMatch", match,
                                      'supported values: "Exact", "NotOlderThan", ""', "FieldValueNotSupported"))
        if match == "Exact" and rv == "0":
            forbidden("resourceVersionMatch", 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"')
        if opts.send_initial_events is not None:
            forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list")
        return causes
    if opts.send_initial_events is not None:
        if match != "NotOlderThan":
            forbidden("resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")
    elif match:
        forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")
    if match and match != "NotOlderThan":
        causes.append(field_error("", "resourceVersionMatch", match, 'supported values: "NotOlderThan"',
                                  "FieldValueNotSupported"))
    if match and opts.continue_token:
        forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided")
    return causes
