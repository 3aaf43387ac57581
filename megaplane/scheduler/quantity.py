"""Kubernetes resource quantities: the scheduler's name for `megaplane.apimachinery.quantity` (one parser).

`milli_value` and `value` are memoised per string here: the scheduler
parses every pod's and node's requests and allocatable on each informer
event, and a cluster uses a handful of distinct strings ("100m", "128Mi",
"110"), while exact parsing (Fractions) costs microseconds each.
"""

from __future__ import annotations

from typing import Dict

from megaplane.apimachinery import quantity as _quantity
from megaplane.apimachinery.quantity import QuantityError, parse_quantity

__all__ = ["QuantityError", "parse_quantity", "milli_value", "value"]

#: Distinct strings remembered per function; past this the memo starts over (bounded whatever clients send).
MAX_MEMOISED = 4096
_milli: Dict[object, int] = {}
_whole: Dict[object, int] = {}


def milli_value(text: object) -> int:
    """Thousandths of the quantity, rounded up (CPU in millicores)."""
    try:
        return _milli[text]
    except (KeyError, TypeError):
        pass
    out = _quantity.milli_value(text)
    if isinstance(text, str):
        if len(_milli) >= MAX_MEMOISED:
            _milli.clear()
        _milli[text] = out
    return out


def value(text: object) -> int:
    """The quantity as an integer, rounded up (memory and storage in bytes, pods, extended resources)."""
    try:
        return _whole[text]
    except (KeyError, TypeError):
        pass
    out = _quantity.value(text)
    if isinstance(text, str):
        if len(_whole) >= MAX_MEMOISED:
            _whole.clear()
        _whole[text] = out
    return out
