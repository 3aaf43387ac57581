"""The EndpointSlice printer (discovery.k8s.io/v1): address type, ports and endpoints, three at most.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Tuple

from megaplane.apiserver.printers.base import (
    Obj,
    Printer,
    _age,
    _age_col,
    _col,
    _d,
    _is_int,
    _l,
    _list_with_more,
    _name,
    _name_col,
    _s,
)

_ENDPOINTSLICE_COLUMNS = [
    _name_col(),
    _col(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice. All addresses in this "
        "slice must be the same type. This field is immutable after creation. The following address types "
        "are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. "
        "* FQDN: Represents a Fully Qualified Domain Name.",
    ),
    _col(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must "
        "have a unique name. When ports is empty, it indicates that there are no defined ports. When a port "
        'is defined with a nil port value, it indicates "all ports". Each slice may include a maximum of '
        "100 ports.",
    ),
    _col(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
    ),
    _age_col(),
]


def _print_endpointslice(slice_: Obj, now: datetime.datetime) -> List[Any]:
    ports = []
    for port in _l(slice_.get("ports")):
        port = _d(port)
        if _is_int(port.get("port")):
            ports.append(str(port["port"]))
        elif isinstance(port.get("name"), str):
            ports.append(port["name"])
        else:
            ports.append("*")
    addresses = [_s(a) for ep in _l(slice_.get("endpoints")) for a in _l(_d(ep).get("addresses"))]
    return [
        _name(slice_),
        _s(slice_.get("addressType")),
        _list_with_more(ports),
        _list_with_more(addresses),
        _age(slice_, now),
    ]


# What this module prints, by (API group, resource).
TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("discovery.k8s.io", "endpointslices"): (_ENDPOINTSLICE_COLUMNS, _print_endpointslice),
}
