"""x-kubernetes-validations: a CRD schema's CEL rules evaluated on custom resources (cel-python).

Each rule is compiled once (per rule text) and evaluated with `self` bound to
the value at its schema node; a transition rule (one naming `oldSelf`) only on
an update, with `oldSelf` the stored value at the same place (objects by
property, list-type=map items by their keys), as upstream. A rule that
evaluates to false is one cause with upstream's wording: `<path>: Invalid
value: "<schema type>": <message>` (`failed rule: <rule>` without a
message), at `fieldPath` below the node when given, of the rule's `reason`.

Kubernetes adds functions to CEL (quantity, URL, IP, CIDR, semver, format
libraries, two-variable comprehensions); cel-python has the standard ones
only, so a rule that does not compile or fails to evaluate here is skipped
rather than refused (upstream refuses such a CRD or reports the error):
megaplane never rejects an object on a rule it cannot evaluate.
`messageExpression` is not evaluated (the message, or the default, is used).
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Dict, List, Optional, Tuple

from megaplane.apimachinery.errors import field_error

__all__ = ["validate_rules", "has_rules"]

log = logging.getLogger("megaplane.apiserver.apiextensions")

Cause = Dict[str, Any]
Schema = Dict[str, Any]
_ABSENT = object()


def has_rules(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("x-kubernetes-validations"):
        return True
    props = schema.get("properties")
    if isinstance(props, dict) and any(has_rules(v) for v in props.values()):
        return True
    return has_rules(schema.get("items")) or has_rules(schema.get("additionalProperties"))


@functools.lru_cache(maxsize=1024)
def _program(rule: str) -> Optional[Any]:
    try:
        import celpy

        env = celpy.Environment()
        return env.program(env.compile(rule))
    except Exception as exc:  # a rule using Kubernetes' own CEL libraries, or not CEL at all: not checked here
        log.debug("x-kubernetes-validations rule %r not evaluated: %s", rule, exc)
        return None


def _evaluate(rule: str, value: Any, old: Any) -> Optional[bool]:
    """True / False, or None when the rule cannot be evaluated here."""
    program = _program(rule)
    if program is None:
        return None
    try:
        import celpy
        from celpy.adapter import json_to_cel

        activation = {"self": json_to_cel(value)}
        if old is not _ABSENT:
            activation["oldSelf"] = json_to_cel(old)
        result = program.evaluate(activation)
    except Exception as exc:
        log.debug("x-kubernetes-validations rule %r: %s", rule, exc)
        return None
    if isinstance(result, celpy.celtypes.BoolType):
        return bool(result)
    return None  # an error value or a non-boolean result


def validate_rules(obj: Dict[str, Any], old: Optional[Dict[str, Any]], schema: Schema) -> List[Cause]:
    """Every rule `obj` fails (an update's stored object is `old`)."""
    out: List[Cause] = []
    _node(obj, old if old is not None else _ABSENT, schema, "", out, root=True)
    return out


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _node(value: Any, old: Any, s: Schema, path: str, out: List[Cause], root: bool = False) -> None:
    if value is None:
        return
    for rule in s.get("x-kubernetes-validations") or ():
        if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str):
            continue
        text = rule["rule"]
        transition = "oldSelf" in text
        if transition and (old is _ABSENT or rule.get("optionalOldSelf")):
            continue
        if _evaluate(text, value, old if transition else _ABSENT) is False:
            out.append(_cause(rule, s, path))
    props = s.get("properties")
    extra = s.get("additionalProperties")
    if isinstance(value, dict):
        old_map = old if isinstance(old, dict) else {}
        for k, v in value.items():
            if root and k in ("apiVersion", "kind", "metadata"):
                continue
            sub = props.get(k) if isinstance(props, dict) else None
            if sub is None and isinstance(extra, dict):
                sub = extra
            if isinstance(sub, dict):
                _node(v, old_map.get(k, _ABSENT), sub, _child(path, k), out)
    elif isinstance(value, list):
        items = s.get("items")
        if not isinstance(items, dict):
            return
        keys = s.get("x-kubernetes-list-map-keys") if s.get("x-kubernetes-list-type") == "map" else None
        olds: Dict[Tuple[Any, ...], Any] = {}
        if keys and isinstance(old, list):
            olds = {tuple(o.get(k) for k in keys): o for o in old if isinstance(o, dict)}
        for i, item in enumerate(value):
            prior = olds.get(tuple(item.get(k) for k in keys), _ABSENT) if keys and isinstance(item, dict) else _ABSENT
            _node(item, prior, items, f"{path}[{i}]", out)


def _cause(rule: Dict[str, Any], s: Schema, path: str) -> Cause:
    message = rule.get("message") or f"failed rule: {rule['rule']}"
    where = path
    if isinstance(rule.get("fieldPath"), str) and rule["fieldPath"]:
        where = path + rule["fieldPath"] if path else rule["fieldPath"].lstrip(".")
    reason = rule.get("reason") or "FieldValueInvalid"
    typ = s.get("type") or ("object" if s.get("x-kubernetes-preserve-unknown-fields") else "")
    if reason in ("FieldValueRequired", "FieldValueForbidden"):
        return field_error("", where, None, message, reason)
    return field_error("", where, typ, message, reason if reason == "FieldValueDuplicate" else "FieldValueInvalid")
