"""Options of the write verbs, decoded once by the caller (HTTP query, or the in-process client)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WriteOptions"]


@dataclass(frozen=True)
class WriteOptions:
    """CreateOptions / UpdateOptions / PatchOptions as the registry needs them."""

    #: dryRun=All: every step but the write.
    dry_run: bool = False
    #: fieldValidation: "" (Warn), "Ignore", "Warn" or "Strict"; checked by field validation.
    field_validation: str = ""
    field_manager: str = ""


DEFAULT_WRITE = WriteOptions()
