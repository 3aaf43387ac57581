"""Kubernetes resource quantities: the scheduler's name for `megaplane.apimachinery.quantity` (one parser)."""

from __future__ import annotations

from megaplane.apimachinery.quantity import QuantityError, milli_value, parse_quantity, value

__all__ = ["QuantityError", "parse_quantity", "milli_value", "value"]
