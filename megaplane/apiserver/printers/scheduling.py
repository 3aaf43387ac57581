"""The PriorityClass printer (scheduling.k8s.io/v1): value, global default, age, preemption policy (printPriorityClass).
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Tuple

from megaplane.apiserver.printers.base import Obj, Printer, _age, _age_col, _col, _i, _name, _name_col, _s

_PRIORITY_CLASS_COLUMNS = [
    _name_col(),
    _col("Value", "integer", "value represents the integer value of this priority class. This is the actual priority "
         "that pods receive when they have the name of this class in their pod spec."),
    _col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the "
         "default priority for pods that do not have any priority class. Only one PriorityClass can be marked as "
         "`globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to "
         "true, the smallest value of such global default PriorityClasses will be used as the default priority."),
    _age_col(),
    _col("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority. One "
         "of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."),
]


def _print_priority_class(pc: Obj, now: datetime.datetime) -> List[Any]:
    # An unset preemptionPolicy prints as "" (the printer's zero string), never "<none>".
    return [_name(pc), _i(pc.get("value")), pc.get("globalDefault") is True, _age(pc, now),
            _s(pc.get("preemptionPolicy"))]


# What this module prints, by (API group, resource).
TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("scheduling.k8s.io", "priorityclasses"): (_PRIORITY_CLASS_COLUMNS, _print_priority_class),
}
