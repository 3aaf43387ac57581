"""Apply conflicts as upstream reports them (managedfields/internal/conflict.go): a 409 with one cause per field."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from megaplane.apimachinery import errors
from megaplane.apiserver.fieldmanager import fieldpath
from megaplane.apiserver.fieldmanager.fieldpath import FieldSet

__all__ = ["conflict_error", "print_manager"]


def print_manager(entry: Dict[str, Any]) -> str:
    """printManager: the quoted name, the subresource, and for Update managers the version they used."""
    out = '"' + str(entry.get("manager", "")).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if entry.get("subresource"):
        out += f' with subresource "{entry["subresource"]}"'
    if entry.get("operation") == "Update":
        out += f" using {entry.get('apiVersion', '')}"
    return out


def conflict_error(conflicts: List[Tuple[Dict[str, Any], FieldSet]]) -> errors.StatusError:
    """NewConflictError: the message lists the conflicts by manager (sorted), the causes one per field."""
    flat: List[Tuple[str, str]] = []
    for entry, s in sorted(conflicts, key=lambda c: print_manager(c[0])):
        who = print_manager(entry)
        flat.extend((who, fieldpath.path_string(p)) for p in fieldpath.members(s))
    causes = [{"type": "FieldManagerConflict", "message": f"conflict with {who}", "field": path} for who, path in flat]
    if len(flat) == 1:
        message = f"Apply failed with 1 conflict: conflict with {flat[0][0]}: {flat[0][1]}"
    else:
        lines: List[str] = []
        current = None
        for who, path in flat:
            if who != current:
                lines.append(f"conflicts with {who}:")
                current = who
            lines.append(f"- {path}")
        message = f"Apply failed with {len(flat)} conflicts: " + "\n".join(lines)
    return errors.StatusError(409, "Conflict", message, {"causes": causes})
