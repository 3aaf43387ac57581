"""Object metadata validation with upstream's rules and messages (apimachinery/pkg/util/validation).

Each check returns field-error causes (`errors.field_error`); the handler
turns a non-empty list into one 422 Invalid status, as upstream does.
Names follow the rule of each kind's upstream validator: DNS-1123
subdomain for most, DNS-1123 label for namespaces, DNS-1035 label for
services.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List

from megaplane.apimachinery.errors import field_error

__all__ = ["validate_name", "validate_metadata", "validate_label_selector", "name_rule", "Cause"]

Cause = Dict[str, Any]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)

_RULES = {
    "subdomain": (_SUBDOMAIN, SUBDOMAIN_MSG, 253),
    "label": (_LABEL, LABEL_MSG, 63),
    "dns1035": (_DNS1035, DNS1035_MSG, 63),
}


def name_rule(plural: str, group: str) -> str:
    """Which name rule upstream's validator for this kind applies."""
    if group == "" and plural == "namespaces":
        return "label"
    if group == "" and plural == "services":
        return "dns1035"
    if group == "rbac.authorization.k8s.io":
        return "path"  # ValidateRBACName: path.ValidatePathSegmentName (system:controller:... names)
    return "subdomain"


def validate_name(name: str, rule: str, path: str = "metadata.name") -> List[Cause]:
    if rule == "path":
        return [field_error("", path, name, why) for why in _path_segment_errors(name)]
    pattern, message, limit = _RULES[rule]
    causes = []
    if len(name) > limit:
        causes.append(field_error("", path, name, f"must be no more than {limit} characters"))
    if not pattern.match(name):
        causes.append(field_error("", path, name, message))
    return causes


def _path_segment_errors(name: str) -> List[str]:
    """IsValidPathSegmentName."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in "/%" if c in name]


QUALIFIED_NAME_WITH_PREFIX_MSG = (
    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
    "(e.g. 'example.com/MyName')"
)


# Label and annotation keys repeat across objects (every Node carries the same dozen), so the keys found
# valid are remembered; bounded, since keys are client-chosen.
_VALID_QUALIFIED_NAMES: set = set()
_VALID_QUALIFIED_NAMES_MAX = 8192


def _validate_qualified_name(key: str, path: str) -> List[Cause]:
    if key in _VALID_QUALIFIED_NAMES:
        return []
    causes = _qualified_name_errors(key, path)
    if not causes and len(_VALID_QUALIFIED_NAMES) < _VALID_QUALIFIED_NAMES_MAX:
        _VALID_QUALIFIED_NAMES.add(key)
    return causes


def _qualified_name_errors(key: str, path: str) -> List[Cause]:
    if key.count("/") > 1:
        return [field_error("", path, key, QUALIFIED_NAME_WITH_PREFIX_MSG)]
    prefix, slash, name = key.rpartition("/")
    causes = []
    if slash:
        if not prefix:
            causes.append(field_error("", path, key, "prefix part must be non-empty"))
        elif len(prefix) > 253 or not _SUBDOMAIN.match(prefix):
            causes.append(field_error("", path, key, "prefix part " + SUBDOMAIN_MSG))
    if not name:
        causes.append(field_error("", path, key, "name part must be non-empty"))
    elif len(name) > 63:
        causes.append(field_error("", path, key, "name part must be no more than 63 characters"))
    elif not _QUALIFIED_NAME.match(name):
        causes.append(field_error("", path, key, QUALIFIED_NAME_MSG))
    return causes


def validate_metadata(meta: Dict[str, Any], rule: str, namespaced: bool) -> List[Cause]:
    """ValidateObjectMeta: name (or generateName), labels, annotations, finalizers."""
    causes: List[Cause] = []
    generate = meta.get("generateName")
    if generate and isinstance(generate, str):
        # As a prefix: a trailing dash is allowed (the random suffix follows it).
        prefix = generate[:-1] + "a" if generate.endswith("-") else generate
        causes += [dict(c, message=c["message"].replace(f'"{prefix}"', f'"{generate}"', 1))
                   for c in validate_name(prefix, rule, "metadata.generateName")]
    name = meta.get("name")
    if not name:
        if not meta.get("generateName"):
            causes.append(field_error("", "metadata.name", None, "name or generateName is required", "FieldValueRequired"))
    elif not isinstance(name, str):
        causes.append(field_error("", "metadata.name", name, "must be a string"))
    else:
        causes += validate_name(name, rule)
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        causes.append(field_error("", "metadata.labels", labels, "must be a map of strings"))
    else:
        for k, v in labels.items():
            causes += _validate_qualified_name(k, "metadata.labels")
            if not isinstance(v, str):
                causes.append(field_error("", "metadata.labels", v, "must be a string"))
            elif len(v) > 63:
                causes.append(field_error("", "metadata.labels", v, "must be no more than 63 characters"))
            elif not _LABEL_VALUE.match(v):
                causes.append(field_error("", "metadata.labels", v, LABEL_VALUE_MSG))
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        causes.append(field_error("", "metadata.annotations", annotations, "must be a map of strings"))
    else:
        total = 0
        for k, v in annotations.items():
            causes += _validate_qualified_name(k.lower(), "metadata.annotations")
            total += len(k) + (len(v) if isinstance(v, str) else 0)
        if total > 256 * 1024:
            causes.append(
                field_error("", "metadata.annotations", "", "must have at most 262144 bytes", "FieldValueTooLong")
            )
    finalizers = meta.get("finalizers") or []
    if not isinstance(finalizers, list):
        causes.append(field_error("", "metadata.finalizers", finalizers, "must be a list of strings"))
    else:
        for i, f in enumerate(finalizers):
            if not isinstance(f, str):
                causes.append(field_error("", f"metadata.finalizers[{i}]", f, "must be a string"))
            else:
                causes += _validate_qualified_name(f, f"metadata.finalizers[{i}]")
    return causes


# core.MaxSecretSize: ConfigMaps and Secrets hold at most 1 MiB of data.
MAX_DATA_BYTES = 1024 * 1024
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)


def _config_key_errors(key: str, path: str) -> List[Cause]:
    causes = []
    if len(key) > 253:
        causes.append(field_error("", path, key, "must be no more than 253 characters"))
    if not _CONFIG_KEY.match(key):
        causes.append(field_error("", path, key, CONFIG_KEY_MSG))
    if key in (".", ".."):
        causes.append(field_error("", path, key, f"must not be '{key}'"))
    elif key.startswith(".."):
        causes.append(field_error("", path, key, "must not start with '..'"))
    return causes


def validate_data(group: str, plural: str, obj: Dict[str, Any]) -> List[Cause]:
    """ValidateConfigMap / ValidateSecret: keys, and at most 1 MiB of data in all."""
    if group != "" or plural not in ("configmaps", "secrets"):
        return []
    causes: List[Cause] = []
    total = 0
    bags = ("data", "binaryData") if plural == "configmaps" else ("data", "stringData")
    for bag in bags:
        values = obj.get(bag)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            causes += _config_key_errors(key, f"{bag}[{key}]")
            if isinstance(value, str):
                # Secret data is base64 on the wire: count the bytes it stands for.
                total += len(value) * 3 // 4 if plural == "secrets" and bag == "data" else len(value.encode())
    if total > MAX_DATA_BYTES:
        path = "[]" if plural == "configmaps" else "data"
        causes.append(field_error("", path, None, f"must have at most {MAX_DATA_BYTES} bytes", "FieldValueTooLong"))
    return causes


def _label_value_errors(value: Any, path: str) -> List[Cause]:
    if not isinstance(value, str):
        return [field_error("", path, value, "must be a string")]
    if len(value) > 63:
        return [field_error("", path, value, "must be no more than 63 characters")]
    if not _LABEL_VALUE.match(value):
        return [field_error("", path, value, LABEL_VALUE_MSG)]
    return []


def validate_label_selector(selector: Any, path: str) -> List[Cause]:
    """unversioned ValidateLabelSelector: matchLabels keys and values, each matchExpression's operator,
    key and values (In/NotIn need values, Exists/DoesNotExist take none)."""
    if not isinstance(selector, dict):
        return []
    causes: List[Cause] = []
    labels = selector.get("matchLabels") or {}
    if isinstance(labels, dict):
        for k, v in labels.items():
            causes += _validate_qualified_name(k, f"{path}.matchLabels")
            causes += _label_value_errors(v, f"{path}.matchLabels")
    for i, expr in enumerate(selector.get("matchExpressions") or ()):
        at = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, dict):
            continue
        op, values = expr.get("operator"), expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                causes.append(field_error("", f"{at}.values", None, "must be specified when `operator` is 'In' or "
                                          "'NotIn'", "FieldValueRequired"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                causes.append(field_error("", f"{at}.values", None, "may not be specified when `operator` is "
                                          "'Exists' or 'DoesNotExist'", "FieldValueForbidden"))
        else:
            causes.append(field_error("", f"{at}.operator", op if op is not None else "",
                                      "not a valid selector operator"))
        causes += _validate_qualified_name(str(expr.get("key") or ""), f"{at}.key")
        for j, value in enumerate(values if isinstance(values, list) else ()):
            causes += _label_value_errors(value, f"{at}.values[{j}]")
    return causes
