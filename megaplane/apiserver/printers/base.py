"""Column machinery shared by every printer module: tolerant field access, column definitions, shared cells.

Objects are plain decoded JSON that may not have passed validation, so the accessors here
(`_d`, `_l`, `_s`, `_i`) read a field or fall back to Go's zero value. `_col` builds one
meta.k8s.io/v1 TableColumnDefinition, and the SwaggerDoc descriptions more than one printer quotes
live here. The helpers keep underscore names because only this package uses them.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Dict, Iterable, List

from megaplane.apiserver.printers.format import age

Obj = Dict[str, Any]
Printer = Callable[[Obj, datetime.datetime], List[Any]]


def _d(value: Any) -> Obj:
    """A dict field, or {} if it is missing or not a dict."""
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> List[Any]:
    """A list field, or [] if it is missing or not a list."""
    return value if isinstance(value, list) else []


def _s(value: Any) -> str:
    """A string field, or "" (Go's zero value) if it is missing or not a string."""
    return value if isinstance(value, str) else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _i(value: Any) -> int:
    """An integer field, or 0 if it is missing or not an integer."""
    return value if _is_int(value) else 0


def _name(obj: Obj) -> str:
    return _s(_d(obj.get("metadata")).get("name"))


def _age(obj: Obj, now: datetime.datetime) -> str:
    return age(_d(obj.get("metadata")).get("creationTimestamp"), now)


def _container_cells(pod_spec: Any) -> List[str]:
    """`layoutContainerCells`: the container names and images, comma-joined."""
    containers = [_d(c) for c in _l(_d(pod_spec).get("containers"))]
    return [",".join(_s(c.get("name")) for c in containers), ",".join(_s(c.get("image")) for c in containers)]


def _template_spec(obj: Obj) -> Obj:
    return _d(_d(_d(obj.get("spec")).get("template")).get("spec"))


def _list_with_more(items: Iterable[str], limit: int = 3) -> str:
    """`listWithMoreString`: the first three, then "+ N more...", "<unset>" if none."""
    items = list(items)
    shown = ",".join(items[:limit])
    if len(items) > limit:
        return f"{shown} + {len(items) - limit} more..."
    return shown or "<unset>"


# Descriptions are the SwaggerDoc strings upstream's printers quote; the
# types they name (extensions/v1beta1, discovery/v1beta1) are the ones the
# printers use, which is why some differ from the apps/v1 wording.
_DESC_NAME = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_DESC_AGE = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is not guaranteed to be set in happens-before order across separate operations. Clients "
    "may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the "
    "system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_DESC_CONTAINERS = "Names of each container in the template."
_DESC_IMAGES = "Images referenced by each container in the template."


def _col(name: str, type_: str, description: str, priority: int = 0, format_: str = "") -> Obj:
    # Key order as Go serialises metav1.TableColumnDefinition.
    return {"name": name, "type": type_, "format": format_, "description": description, "priority": priority}


def _name_col(priority: int = 0) -> Obj:
    return _col("Name", "string", _DESC_NAME, priority, "name")


def _age_col() -> Obj:
    return _col("Age", "string", _DESC_AGE)


def _condition_true(conditions: Any, type_: str) -> bool:
    """Whether the first condition of this type has status "True"."""
    for cond in _l(conditions):
        cond = _d(cond)
        if cond.get("type") == type_:
            return cond.get("status") == "True"
    return False
