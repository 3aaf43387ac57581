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
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, Iterable, Mapping, Optional, Protocol, Set, Tuple

from megaplane.apimachinery import errors

if TYPE_CHECKING:
    from megaplane.apimachinery.resources import Resource

__all__ = [
    "LabelSelector",
    "FieldSelector",
    "FieldLookup",
    "parse_label_selector",
    "parse_field_selector",
    "matches_labels",
    "matches_fields",
    "selector_from_dict",
]

Requirement = Tuple[str, str, FrozenSet[str]]
LabelSelector = Tuple[Requirement, ...]
FieldSelector = Tuple[Tuple[str, str, str], ...]


class FieldLookup(Protocol):
    """What field matching reads: a dict of field values, or the cache's compact FieldValues."""

    def get(self, name: str, default: str, /) -> str: ...

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _check_key(key: str) -> None:
    if len(key.rpartition("/")[2]) > 63 or not _LABEL_KEY.match(key):
        raise ValueError(f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
                         "'-', '_' or '.', and must start and end with an alphanumeric character")


def _check_value(value: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValueError(f'Invalid value: "{value}": a valid label must be an empty string or consist of '
                         "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                         "alphanumeric character")


_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
# The lexer's literal tokens (labels.string2token); anything else is an identifier.
_LITERALS = {")": ")", ",": ",", "!": "!", "==": "==", "=": "=", ">": ">", "in": "in", "<": "<", "!=": "!=",
             "notin": "notin", "(": "("}
_IDENT, _END, _ERROR = "ident", "end", "error"
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"


def _lex(text: str) -> Tuple[Tuple[str, str], ...]:
    """labels.Lexer: (token, literal) pairs, ending with (_END, "")."""
    out = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            out.append((_END, ""))
            return tuple(out)
        if text[i] in _SPECIAL:
            # The longest run of symbols that is still a token ("!=" over "!").
            buf, best, j = "", None, i
            while j < n and text[j] in _SPECIAL:
                buf += text[j]
                if buf in _LITERALS:
                    best = (buf, j + 1)
                elif best is not None:
                    break
                j += 1
            if best is None:
                out.append((_ERROR, f"error expected: keyword found '{buf}'"))
                i = j
                continue
            out.append((_LITERALS[best[0]], best[0]))
            i = best[1]
            continue
        j = i
        while j < n and text[j] not in _SPECIAL and text[j] not in _WHITESPACE:
            j += 1
        word = text[i:j]
        out.append((_LITERALS.get(word, _IDENT), word))
        i = j


class _Parser:
    """labels.Parser: a transcription, so that errors read as upstream's do."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items = _lex(text)
        self.pos = 0

    def lookahead(self, values: bool = True) -> Tuple[str, str]:
        tok, lit = self.items[min(self.pos, len(self.items) - 1)]
        if values and tok in ("in", "notin"):
            tok = _IDENT  # in a value position the keywords are plain words
        return tok, lit

    def consume(self, values: bool = True) -> Tuple[str, str]:
        item = self.lookahead(values)
        self.pos += 1
        return item

    def parse(self) -> LabelSelector:
        out = []
        while True:
            tok, lit = self.lookahead()
            if tok in (_IDENT, "!"):
                try:
                    out.append(self.requirement())
                except ValueError as exc:
                    raise errors.bad_request(f"unable to parse requirement: {exc}") from None
                t, lit = self.consume()
                if t == _END:
                    return tuple(out)
                if t == ",":
                    t2, lit2 = self.lookahead()
                    if t2 not in (_IDENT, "!"):
                        raise errors.bad_request(f"found '{lit2}', expected: identifier after ','")
                    continue
                raise errors.bad_request(f"found '{lit}', expected: ',' or 'end of string'")
            if tok == _END:
                return tuple(out)
            raise errors.bad_request(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        tok, lit = self.consume()
        negated = tok == "!"
        if negated:
            tok, lit = self.consume()
        if tok != _IDENT:
            raise ValueError(f"found '{lit}', expected: identifier")
        _check_key(lit)
        key = lit
        if self.lookahead()[0] in (_END, ","):
            return (key, "!" if negated else "exists", frozenset())
        if negated:
            return (key, "!", frozenset())  # NewRequirement refuses values; the caller sees the next token
        tok, lit = self.consume(values=False)
        ops = {"in": "in", "notin": "notin", "=": "=", "==": "=", "!=": "!=", ">": ">", "<": "<"}
        op = ops.get(tok)
        if op is None:
            raise ValueError(f"found '{lit}', expected: {_BINARY_OPERATORS}")
        values = self.set_values() if op in ("in", "notin") else self.exact_value()
        if op in (">", "<"):
            for v in values:
                if not re.fullmatch(r"[-+]?\d+", v):
                    raise ValueError(f'Invalid value: "{v}": for \'Gt\', \'Lt\' operators, the value must be an integer')
        for v in values:
            _check_value(v)
        return (key, op, frozenset(values))

    def set_values(self) -> Set[str]:
        tok, lit = self.consume()
        if tok != "(":
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok == ")":
            self.consume()
            return {""}
        if tok not in (_IDENT, ","):
            raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")
        values: Set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == _IDENT:
                values.add(lit)
                t2, l2 = self.lookahead()
                if t2 == ",":
                    continue
                if t2 == ")":
                    break
                raise ValueError(f"found '{l2}', expected: ',' or ')'")
            if tok == ",":
                if not values:
                    values.add("")
                t2, _ = self.lookahead()
                if t2 == ")":
                    values.add("")
                    break
                if t2 == ",":
                    self.consume()
                    values.add("")
                continue
            raise ValueError(f"found '{lit}', expected: ',', or identifier")
        tok, _ = self.consume()
        if tok != ")":
            raise ValueError(f"found '{lit}', expected: ')'")
        return values

    def exact_value(self) -> Set[str]:
        tok, _ = self.lookahead()
        if tok in (_END, ","):
            return {""}
        tok, lit = self.consume()
        if tok == _IDENT:
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")


def parse_label_selector(text: str) -> Optional[LabelSelector]:
    """Parse `labelSelector` as labels.Parse does; None for an empty one. Raises a 400 StatusError."""
    if not text.strip():
        return None
    return _Parser(text).parse() or None


def selector_from_dict(selector: Mapping[str, Any]) -> Optional[LabelSelector]:
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


def parse_field_selector(text: str, resource: "Resource") -> Optional[FieldSelector]:
    """Parse `fieldSelector` and convert its labels as the kind's field label conversion does.

    Kinds with their own conversion (core Pod, Node, Event, Namespace, Secret,
    Service; batch Job; events.k8s.io Event) know their fields and aliases
    (pods: spec.host is spec.nodeName; events.k8s.io: regarding.* is
    involvedObject.*); every other kind knows only metadata.name and
    metadata.namespace. None for an empty selector.
    """
    text = text.strip()
    if not text:
        return None
    allowed = resource.field_selectors
    out = []
    for term in _split_unescaped(text, ","):
        if not term:
            continue
        m = re.match(r"^((?:[^\\=!]|\\.)*)(==|!=|=)(.*)$", term)
        if not m:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3))
        field = resource.field_aliases.get(field, field)
        if field not in allowed:
            raise errors.bad_request(_unsupported_field(resource, m.group(1).strip()))
        field = resource.field_storage_names.get(field, field)
        out.append((field, "!=" if op == "!=" else "=", value))
    return tuple(out) or None


def _unsupported_field(resource: "Resource", label: str) -> str:
    if resource.field_label_conversion == "core":
        return f"field label not supported: {label}"
    if resource.field_label_conversion == "job":
        return f'field label "{label}" not supported for {resource.kind}'
    return f'"{label}" is not a known field selector: only "metadata.name", "metadata.namespace"'


def matches_fields(selector: Optional[FieldSelector], fields: FieldLookup) -> bool:
    if not selector:
        return True
    for field, op, value in selector:
        have = fields.get(field, "")
        if (op == "=") != (have == value):
            return False
    return True
