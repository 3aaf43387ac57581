"""Options of the write verbs, decoded once by the caller (HTTP query, or the in-process client)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

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


def write_options(q: Optional[Mapping[str, str]], options_kind: str) -> WriteOptions:
    """The options of a create/update/patch from its query parameters, dryRun validated for `options_kind`."""
    if not q:
        return DEFAULT_WRITE  # the common case: no allocation per request
    return WriteOptions(dry_run=dry_run(q.get("dryRun"), options_kind), field_validation=q.get("fieldValidation", ""),
                        field_manager=q.get("fieldManager", ""))
