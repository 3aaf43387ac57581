"""Options of the write verbs, decoded once by the caller (HTTP query, or the in-process client)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error

__all__ = ["WriteOptions", "write_options", "dry_run"]


@dataclass(frozen=True)
class WriteOptions:
    """CreateOptions / UpdateOptions / PatchOptions as the registry needs them."""

    #: dryRun=All: every step but the write.
    dry_run: bool = False
    #: fieldValidation: "" (Warn), "Ignore", "Warn" or "Strict"; checked by field validation.
    field_validation: str = ""
    field_manager: str = ""
    #: Who asks (megaplane.apimachinery.user.UserInfo; None: the server itself): admission that depends on the
    #: requester (RBAC escalation checks, NodeRestriction) reads it.
    user: Any = None


DEFAULT_WRITE = WriteOptions()


def dry_run(values: Any, options_kind: str) -> bool:
    """ValidateDryRun: dryRun may only be "All"; 422 on the verb's options otherwise."""
    if not values:
        return False
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or any(v != "All" for v in values):
        shown = "[]string{" + ", ".join(f'"{v}"' for v in values) + "}" if isinstance(values, list) else repr(values)
        raise errors.invalid("meta.k8s.io", options_kind, "", [
            field_error("", "dryRun", None, 'supported values: "All"', "FieldValueNotSupported", shown=shown)])
    return True


def write_options(q: Optional[Mapping[str, str]], options_kind: str, user: Any = None) -> WriteOptions:
    """The options of a create/update/patch from its query parameters, dryRun validated for `options_kind`."""
    if not q:
        if user is None:
            return DEFAULT_WRITE  # the common case: no allocation per request
        return _for_user(user)
    return WriteOptions(dry_run=dry_run(q.get("dryRun"), options_kind), field_validation=q.get("fieldValidation", ""),
                        field_manager=q.get("fieldManager", ""), user=user)


# The options of a write without query parameters, one per user seen (users repeat: components, kubelets).
_BY_USER: Dict[Any, WriteOptions] = {}


def _for_user(user: Any) -> WriteOptions:
    opts = _BY_USER.get(user)
    if opts is None:
        if len(_BY_USER) > 10_000:
            _BY_USER.clear()
        opts = _BY_USER[user] = WriteOptions(user=user)
    return opts
