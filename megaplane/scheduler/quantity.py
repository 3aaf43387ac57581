"""Kubernetes resource quantities: the scheduler's name for `megaplane.apimachinery.quantity` (one parser).

`milli_value` and `value` are memoised per string here: the scheduler
parses every pod's and node's requests and allocatable on each informer
event, and a cluster uses a handful of distinct strings ("100m", "128Mi",
"110"), while exact parsing (Fractions) costs microseconds each.
"""

from __future__ import annotations

from typing import Callable, Dict

from megaplane.apimachinery import quantity as _quantity
from megaplane.apimachinery.quantity import QuantityError, parse_quantity

__all__ = ["QuantityError", "parse_quantity", "milli_value", "value"]

#: Distinct strings remembered per function; past this the memo starts over (bounded whatever clients send).
MAX_MEMOISED = 4096


def _memoised(parse: Callable[[object], int]) -> Callable[[object], int]:
    table: Dict[object, int] = {}

    def parsed(text: object) -> int:
        try:
            return table[text]
        except (KeyError, TypeError):  # TypeError: an unhashable value (a malformed object) is parsed each time
            pass
        out = parse(text)
        if isinstance(text, str):
            if len(table) >= MAX_MEMOISED:
                table.clear()
            table[text] = out
        return out

    parsed.__doc__ = parse.__doc__
    return parsed


#: Thousandths of the quantity, rounded up (CPU in millicores).
milli_value = _memoised(_quantity.milli_value)
#: The quantity as an integer, rounded up (memory and storage in bytes, pods, extended resources).
value = _memoised(_quantity.value)
