"""The Lease printer (coordination.k8s.io/v1): the holder of each lease.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Tuple

from megaplane.apiserver.printers.base import Obj, Printer, _age, _age_col, _col, _d, _name, _name_col, _s

_LEASE_COLUMNS = [
    _name_col(),
    _col(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader "
        "Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name "
        "field.",
    ),
    _age_col(),
]


def _print_lease(lease: Obj, now: datetime.datetime) -> List[Any]:
    return [_name(lease), _s(_d(lease.get("spec")).get("holderIdentity")), _age(lease, now)]


# What this module prints, by (API group, resource).
TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("coordination.k8s.io", "leases"): (_LEASE_COLUMNS, _print_lease),
}
