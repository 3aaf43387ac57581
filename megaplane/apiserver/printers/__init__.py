"""Server-side printing: the columns and cells of `kubectl get`.

kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and
prints whatever the server puts in the meta.k8s.io/v1 Table. This package owns
what goes into that table for each resource megaplane serves:

* `column_definitions(group, resource)`: the TableColumnDefinition dicts;
* `row_cells(group, resource, obj, now)`: one object's cells, in column order;

plus the small formatting conventions upstream's printers share and other
modules reuse (`human_duration`, `age`, `format_labels`,
`format_label_selector`, the "<none>"/"<unknown>" placeholders; format.py).

The printers live one module per API group (core.py, apps.py, batch.py,
coordination.py, discovery.py, events.py, policy.py, scheduling.py; pods.py for the Pod printer alone),
each with a TABLES mapping of what it prints; base.py holds the column
machinery they share.

It follows kube-apiserver 1.32's printers (k8s.io/kubernetes
pkg/printers/internalversion/printers.go). Those run on the *internal* type,
after conversion from v1; where that conversion changes what a printer sees
(pod IPs, cluster IPs, events.k8s.io field names, secret stringData) the
printer here reads the v1 fields the way the converted object would have them.

The server always prints with `Wide: true` (kubectl hides columns of priority
1 unless `-o wide`), so every row carries every column's cell. Building the
Table envelope (kind, metadata, rows with their partial-object metadata,
includeObject) is the caller's job.

Objects are plain decoded JSON; nothing here assumes they passed validation,
so every field access tolerates a missing or wrongly-typed value.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Tuple

from megaplane.apiserver.printers import (
    apps,
    batch,
    coordination,
    core,
    discovery,
    events,
    pods,
    policy,
    rbac,
    scheduling,
)
from megaplane.apiserver.printers.base import _DESC_AGE, Obj, Printer, _col, _d, _name, _name_col
from megaplane.apiserver.printers.format import (
    NONE,
    UNKNOWN,
    _since,
    age,
    format_label_selector,
    format_labels,
    human_duration,
    label_selector_string,
    parse_timestamp,
)

__all__ = [
    "NONE",
    "UNKNOWN",
    "column_definitions",
    "row_cells",
    "human_duration",
    "parse_timestamp",
    "age",
    "format_labels",
    "format_label_selector",
    "label_selector_string",
]

# What a resource without a printer gets: upstream's default for custom
# resources without additionalPrinterColumns (Name, then an "Age" date column).
_DEFAULT_COLUMNS = [_name_col(), _col("Age", "date", _DESC_AGE)]


def _print_default(obj: Obj, now: datetime.datetime) -> List[Any]:
    # The custom-resource convertor's "date" cell: nothing when the field is
    # absent, "<invalid>" when it does not parse.
    created = _d(obj.get("metadata")).get("creationTimestamp")
    if created is None:
        return [_name(obj), None]
    t = parse_timestamp(created)
    return [_name(obj), "<invalid>" if t is None else _since(t, now)]


_TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    **pods.TABLES,
    **core.TABLES,
    **events.TABLES,
    **coordination.TABLES,
    **apps.TABLES,
    **batch.TABLES,
    **discovery.TABLES,
    **policy.TABLES,
    **scheduling.TABLES,
    **rbac.TABLES,
}


def column_definitions(group: str, resource: str) -> List[Obj]:
    """The meta.k8s.io/v1 TableColumnDefinitions for a resource (fresh dicts,
    safe to mutate). Resources without a printer get Name and Age."""
    columns, _ = _TABLES.get((group, resource), (_DEFAULT_COLUMNS, _print_default))
    return [dict(c) for c in columns]


def row_cells(group: str, resource: str, obj: Obj, now: datetime.datetime) -> List[Any]:
    """One object's cells, in `column_definitions` order, as upstream renders
    them (strings and integers). `now` is the time ages are measured to; a
    naive datetime is taken as UTC."""
    _, printer = _TABLES.get((group, resource), (_DEFAULT_COLUMNS, _print_default))
    return printer(obj if isinstance(obj, dict) else {}, now)
