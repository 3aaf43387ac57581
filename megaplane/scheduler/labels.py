"""Label selectors as the scheduler's plugins read them: metav1.LabelSelector turned into a hashable `Selector`.

As `metav1.LabelSelectorAsSelector` (v1.32): a nil selector selects
nothing (`NOTHING`), an empty one (no matchLabels, no matchExpressions)
selects everything and is `empty` (PodTopologySpread counts no pod for an
empty selector, yet the incoming pod matches it); matchLabels become `In`
requirements. Requirements are kept sorted so that equal selectors hash
equal, which lets the pod index keep one counter per distinct selector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

__all__ = ["LabelRequirement", "Selector", "SelectorError", "NOTHING", "EVERYTHING", "selector_from",
           "selector_from_set"]


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: str  # In NotIn Exists DoesNotExist
    values: Tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "In":
            return self.key in labels and labels[self.key] in self.values
        if op == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if op == "Exists":
            return self.key in labels
        if op == "DoesNotExist":
            return self.key not in labels
        return False


@dataclass(frozen=True)
class Selector:
    requirements: Tuple[LabelRequirement, ...] = ()
    nothing: bool = False

    @property
    def empty(self) -> bool:
        """labels.Selector.Empty(): no requirements (Everything); Nothing is not empty."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.nothing:
            return False
        for r in self.requirements:
            if not r.matches(labels):
                return False
        return True

    def add(self, requirements: Tuple[LabelRequirement, ...]) -> "Selector":
        """selector.Add: Nothing stays Nothing."""
        if self.nothing or not requirements:
            return self
        return Selector(tuple(sorted(set(self.requirements) | set(requirements),
                                     key=lambda r: (r.key, r.operator, r.values))))


NOTHING = Selector(nothing=True)
EVERYTHING = Selector()


class SelectorError(ValueError):
    pass


def selector_from(obj: Optional[Mapping[str, Any]]) -> Selector:
    """metav1.LabelSelectorAsSelector; an unknown operator raises SelectorError."""
    if obj is None:
        return NOTHING
    reqs = []
    for key, val in (obj.get("matchLabels") or {}).items():
        reqs.append(LabelRequirement(str(key), "In", (str(val),)))
    for expr in obj.get("matchExpressions") or ():
        op = str(expr.get("operator", ""))
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise SelectorError(f"{op!r} is not a valid label selector operator")
        reqs.append(LabelRequirement(str(expr.get("key", "")), op,
                                     tuple(sorted(str(v) for v in expr.get("values") or ()))))
    return EVERYTHING.add(tuple(reqs))


def selector_from_set(labels: Mapping[str, str]) -> Selector:
    """labels.Set(m).AsSelector(): an empty set selects everything."""
    return EVERYTHING.add(tuple(LabelRequirement(str(k), "In", (str(v),)) for k, v in labels.items()))
