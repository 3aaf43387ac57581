"""Label and field selectors: parsing as upstream does, and matching cached objects.

Label selectors (k8s.io/apimachinery/pkg/labels): comma-separated
requirements `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
`k>n`, `k<n`. Field selectors (pkg/fields): `f=v`, `f==v`, `f!=v`, with `\\`
escapes, and only the fields a kind supports (others are refused with
upstream's "field label not supported" message).

A parsed selector is a tuple of requirements, each `(key, op, values)`;
`matches_labels` / `matches_fields` test a labels dict / a dict of field
values. An empty selector matches everything and is None.
"""

from __future__ import annotations

import re
from typing import Dict, FrozenSet, Iterable, Optional, Tuple

from . import errors

__all__ = [
    "LabelSelector",
    "FieldSelector",
    "parse_label_selector",
    "parse_field_selector",
    "matches_labels",
    "matches_fields",
    "selector_from_dict",
]

Requirement = Tuple[str, str, FrozenSet[str]]
LabelSelector = Tuple[Requirement, ...]
FieldSelector = Tuple[Tuple[str, str, str], ...]

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_TOKEN = re.compile(r"\s*(!=|==|=|>|<|\(|\)|,|!|[^\s!=<>(),]+)")


def _bad(selector: str, why: str) -> errors.StatusError:
    return errors.bad_request(f'unable to parse requirement: {why}')


def _check_key(selector: str, key: str) -> None:
    if len(key.rpartition("/")[2]) > 63 or not _LABEL_KEY.match(key):
        raise _bad(selector, f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
                             "'-', '_' or '.', and must start and end with an alphanumeric character")


def _check_value(selector: str, value: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise _bad(selector, f'Invalid value: "{value}": a valid label must be an empty string or consist of '
                             "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                             "alphanumeric character")


def parse_label_selector(text: str) -> Optional[LabelSelector]:
    """Parse `labelSelector`; None for an empty one. Raises a 400 StatusError."""
    text = text.strip()
    if not text:
        return None
    tokens = [t for t in _TOKEN.findall(text)]
    pos = 0
    out = []

    def peek() -> str:
        return tokens[pos] if pos < len(tokens) else ""

    while pos < len(tokens):
        tok = tokens[pos]
        if tok == "!":
            pos += 1
            key = peek()
            _check_key(text, key)
            pos += 1
            out.append((key, "!", frozenset()))
        else:
            key = tok
            _check_key(text, key)
            pos += 1
            op = peek()
            if op in ("", ","):
                out.append((key, "exists", frozenset()))
            elif op in ("=", "==", "!="):
                pos += 1
                value = peek()
                if value in (",", ""):
                    value = ""
                else:
                    pos += 1
                _check_value(text, value)
                out.append((key, "!=" if op == "!=" else "=", frozenset((value,))))
            elif op in ("in", "notin"):
                pos += 1
                if peek() != "(":
                    raise _bad(text, f"found '{peek()}', expected: '('")
                pos += 1
                values = set()
                while peek() != ")":
                    v = peek()
                    if v == "":
                        raise _bad(text, "found '', expected: ')'")
                    if v != ",":
                        _check_value(text, v)
                        values.add(v)
                    pos += 1
                pos += 1
                out.append((key, op, frozenset(values)))
            elif op in (">", "<"):
                pos += 1
                value = peek()
                pos += 1
                if not re.fullmatch(r"-?\d+", value or ""):
                    raise _bad(text, f'for \'gt\', \'lt\' operators, the value must be an integer, got "{value}"')
                out.append((key, op, frozenset((value,))))
            else:
                raise _bad(text, f"found '{op}', expected: '=', '!=', '==', 'in', notin'")
        if pos < len(tokens):
            if tokens[pos] != ",":
                raise _bad(text, f"found '{tokens[pos]}', expected: ',' or 'end of string'")
            pos += 1
    return tuple(out)


def selector_from_dict(selector: Dict) -> Optional[LabelSelector]:  # type: ignore[type-arg]
    """A metav1.LabelSelector object (matchLabels / matchExpressions) as requirements."""
    out = []
    for k, v in (selector.get("matchLabels") or {}).items():
        out.append((k, "=", frozenset((v,))))
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or ():
        out.append((expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or ())))
    return tuple(out) or None


def matches_labels(selector: Optional[LabelSelector], labels: Dict[str, str]) -> bool:
    if not selector:
        return True
    for key, op, values in selector:
        present = key in labels
        if op == "=":
            if not present or labels[key] not in values:
                return False
        elif op == "!=":
            if present and labels[key] in values:
                return False
        elif op == "in":
            if not present or labels[key] not in values:
                return False
        elif op == "notin":
            if present and labels[key] in values:
                return False
        elif op == "exists":
            if not present:
                return False
        elif op == "!":
            if present:
                return False
        else:  # > <
            if not present:
                return False
            try:
                have = int(labels[key])
            except ValueError:
                return False
            (want,) = values
            if (op == ">" and not have > int(want)) or (op == "<" and not have < int(want)):
                return False
    return True


def _split_unescaped(text: str, sep: str) -> Iterable[str]:
    part = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            part.append(text[i : i + 2])
            i += 2
            continue
        if c == sep:
            yield "".join(part)
            part = []
        else:
            part.append(c)
        i += 1
    yield "".join(part)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str, supported: Iterable[str]) -> Optional[FieldSelector]:
    """Parse `fieldSelector` against the fields a kind supports; None for an empty one."""
    text = text.strip()
    if not text:
        return None
    allowed = set(supported)
    out = []
    for term in _split_unescaped(text, ","):
        if not term:
            continue
        m = re.match(r"^((?:[^\\=!]|\\.)*)(==|!=|=)(.*)$", term)
        if not m:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3))
        if field not in allowed:
            raise errors.bad_request(f'field label not supported: {field}')
        out.append((field, "!=" if op == "!=" else "=", value))
    return tuple(out) or None


def matches_fields(selector: Optional[FieldSelector], fields: Dict[str, str]) -> bool:
    if not selector:
        return True
    for field, op, value in selector:
        have = fields.get(field, "")
        if (op == "=") != (have == value):
            return False
    return True
