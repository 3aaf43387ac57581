"""The PodDisruptionBudget printer (policy/v1): its budget and the disruptions allowed now (printPodDisruptionBudget).
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Tuple

from megaplane.apiserver.printers.base import Obj, Printer, _age, _age_col, _col, _d, _name, _name_col

_PDB_COLUMNS = [
    _name_col(),
    _col("Min Available", "string", "The minimum number of pods that must be available."),
    _col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
    _col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
    _age_col(),
]


def _int_or_string(value: Any) -> str:
    """IntOrString.String(), or "N/A" when the field is unset."""
    if value is None:
        return "N/A"
    return str(value)


def _print_pdb(pdb: Obj, now: datetime.datetime) -> List[Any]:
    spec, status = _d(pdb.get("spec")), _d(pdb.get("status"))
    allowed = status.get("disruptionsAllowed")
    return [_name(pdb), _int_or_string(spec.get("minAvailable")), _int_or_string(spec.get("maxUnavailable")),
            allowed if isinstance(allowed, int) and not isinstance(allowed, bool) else 0, _age(pdb, now)]


# What this module prints, by (API group, resource).
TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("policy", "poddisruptionbudgets"): (_PDB_COLUMNS, _print_pdb),
}
