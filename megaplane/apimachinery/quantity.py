"""Kubernetes resource quantities ("100m", "1.5Gi", "2e3"): parsed exactly, rounded as the scheduler counts, printed as Go.

As `resource.Quantity`: `milli_value` (CPU in millicores) and `value`
(bytes, counts) both round up, so "0.1m" of CPU is 1 millicore and "1.5"
pods is 2, as `MilliValue()` / `Value()` do.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Dict

__all__ = ["QuantityError", "parse_quantity", "milli_value", "value", "quantity_format", "format_quantity"]


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity (raised with the offending text)."""


_SUFFIXES = {
    "": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(1 << 10), "Mi": Fraction(1 << 20), "Gi": Fraction(1 << 30), "Ti": Fraction(1 << 40),
    "Pi": Fraction(1 << 50), "Ei": Fraction(1 << 60),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$")
_cache: Dict[str, Fraction] = {}


def parse_quantity(text: object) -> Fraction:
    """The exact amount `text` (a string, or a JSON number) stands for."""
    if isinstance(text, bool):
        raise QuantityError(f"quantity must be a string or number, not {text!r}")
    if isinstance(text, (int, float)):
        return Fraction(str(text))
    if not isinstance(text, str):
        raise QuantityError(f"quantity must be a string or number, not {text!r}")
    found = _cache.get(text)
    if found is not None:
        return found
    m = _QUANTITY.match(text.strip())
    if m is None:
        raise QuantityError(f"quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")
    number, exponent, suffix = m.groups()
    amount = Fraction(number)
    if exponent:
        amount *= Fraction(10) ** int(exponent[1:])
    elif suffix:
        amount *= _SUFFIXES[suffix]
    if len(_cache) < 4096:
        _cache[text] = amount
    return amount


def _ceil(amount: Fraction) -> int:
    return -((-amount.numerator) // amount.denominator)


def milli_value(text: object) -> int:
    """Thousandths of the quantity, rounded up (CPU in millicores)."""
    return _ceil(parse_quantity(text) * 1000)


def value(text: object) -> int:
    """The quantity as an integer, rounded up (memory and storage in bytes, pods, extended resources)."""
    return _ceil(parse_quantity(text))


#: resource.Quantity's formats: what a parsed string's suffix says, and what a sum keeps (the first operand's).
DECIMAL_SI, BINARY_SI, DECIMAL_EXPONENT = "DecimalSI", "BinarySI", "DecimalExponent"
_DECIMAL_SUFFIX = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY_SUFFIX = {0: "", 10: "Ki", 20: "Mi", 30: "Gi", 40: "Ti", 50: "Pi", 60: "Ei"}


def quantity_format(text: object) -> str:
    """The format a quantity string is in (its suffix: Ki.. binary, e/E exponent, else decimal SI)."""
    m = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        return DECIMAL_SI
    if m.group(2):
        return DECIMAL_EXPONENT
    return BINARY_SI if (m.group(3) or "").endswith("i") else DECIMAL_SI


def format_quantity(amount: Fraction, fmt: str = DECIMAL_SI) -> str:
    """Quantity.String() of `amount`: its canonical form in `fmt` (rounded up to nanos, as Go's inf.Dec)."""
    if amount == 0:
        return "0"
    if fmt == BINARY_SI and (amount <= -1024 or amount >= 1024) and amount.denominator == 1:
        n, exp = amount.numerator, 0
        while n % 1024 == 0 and exp < 60:
            n //= 1024
            exp += 10
        return f"{n}{_BINARY_SUFFIX[exp]}"
    nanos = _ceil(amount * 10**9)
    exp = -9
    while nanos % 1000 == 0 and exp < 18:
        nanos //= 1000
        exp += 3
    if fmt == DECIMAL_EXPONENT:
        return f"{nanos}e{exp}" if exp else str(nanos)
    return f"{nanos}{_DECIMAL_SUFFIX[exp]}"
