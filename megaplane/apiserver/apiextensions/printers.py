"""additionalPrinterColumns: the server-side Table of a custom resource (apiextensions-apiserver's tableconvertor).

Columns are Name, then the version's additionalPrinterColumns (or upstream's
default, one Age column on .metadata.creationTimestamp). A cell is the first
result of the column's JSONPath: strings printed as the jsonpath printer does,
integer/number/boolean kept typed, dates as a human age; nothing found is null.
JSONPath here is the subset CRDs use: `.a.b`, `['a.b']`, `[0]`, `[*]`,
`[?(@.k=="v")]`.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import orjson

from megaplane.apiserver.printers.base import _DESC_AGE, _col, _name, _name_col
from megaplane.apiserver.printers.format import _since, parse_timestamp

__all__ = ["table_for", "jsonpath", "parse_jsonpath"]

Obj = Dict[str, Any]
_DEFAULT = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": _DESC_AGE}]
_TOKEN = re.compile(r"""\.([A-Za-z0-9_\-$]+)|\[['"]([^'"]+)['"]\]|\[(\d+|\*)\]|\[\?\(@\.([\w.\-]+)\s*==\s*['"]([^'"]*)['"]\)\]|\.\.""")


def parse_jsonpath(path: str) -> Optional[List[Tuple[str, Any]]]:
    """Steps of a JSONPath ("field", name) / ("index", i) / ("all", None) / ("filter", (key, value)); None if
    it is not of the supported subset."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    steps: List[Tuple[str, Any]] = []
    at = 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        if m is None or m.group(0) == "..":
            return None
        if m.group(1) is not None or m.group(2) is not None:
            steps.append(("field", m.group(1) if m.group(1) is not None else m.group(2)))
        elif m.group(3) is not None:
            steps.append(("all", None) if m.group(3) == "*" else ("index", int(m.group(3))))
        else:
            steps.append(("filter", (m.group(4), m.group(5))))
        at = m.end()
    return steps


def jsonpath(obj: Any, steps: List[Tuple[str, Any]]) -> List[Any]:
    values = [obj]
    for kind, arg in steps:
        nxt: List[Any] = []
        for v in values:
            if kind == "field" and isinstance(v, dict) and arg in v:
                nxt.append(v[arg])
            elif kind == "index" and isinstance(v, list) and -len(v) <= arg < len(v):
                nxt.append(v[arg])
            elif kind == "all" and isinstance(v, list):
                nxt.extend(v)
            elif kind == "filter" and isinstance(v, list):
                key, want = arg
                for item in v:
                    got: Any = item
                    for part in key.split("."):
                        got = got.get(part) if isinstance(got, dict) else None
                    if got is not None and str(got) == want:
                        nxt.append(item)
        values = nxt
    return values


def _print(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode()


def _cell(typ: str, value: Any, now: datetime.datetime) -> Any:
    """cellForJSONValue."""
    if value is None:
        return None
    if typ == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value)
    elif typ == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) if isinstance(value, float) else value
    elif typ == "boolean":
        if isinstance(value, bool):
            return value
    elif typ == "string":
        return _print(value)
    elif typ == "date":
        if isinstance(value, str):
            t = parse_timestamp(value)
            return "<invalid>" if t is None else _since(t, now)
    return None


def table_for(columns: Optional[List[Obj]]) -> Tuple[List[Obj], Callable[[Obj, datetime.datetime], List[Any]]]:
    """(column definitions, row printer) for a version's additionalPrinterColumns."""
    cols = [c for c in (columns or _DEFAULT) if isinstance(c, dict)]
    defs = [_name_col()] + [_col(str(c.get("name", "")), str(c.get("type", "")), str(c.get("description", "")),
                                 int(c.get("priority") or 0), str(c.get("format", ""))) for c in cols]
    parsed = [(str(c.get("type", "")), parse_jsonpath(str(c.get("jsonPath", "")))) for c in cols]

    def printer(obj: Obj, now: datetime.datetime) -> List[Any]:
        cells: List[Any] = [_name(obj)]
        for typ, steps in parsed:
            found = jsonpath(obj, steps) if steps is not None else []
            cells.append(_cell(typ, found[0], now) if found else None)
        return cells

    return defs, printer
