"""The audit.k8s.io/v1 Policy: which requests are audited at which level, and which stages are left out.

As k8s.io/apiserver's audit/policy: rules are tried in order and the first
that matches gives the level (none: level None, nothing recorded). A rule
matches when each of its non-empty lists does: users (the user's name),
userGroups (any of its groups), verbs, and then either resources and
namespaces (resource requests only; `group` + `resources` with the
`pods/log`, `*/status`, `deployments/*` and `*` forms, resourceNames) or
nonResourceURLs (non-resource requests only; a trailing `*` is a prefix).
omitStages are the policy's plus the rule's; omitManagedFields is the
rule's if it says, else the policy's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, FrozenSet, List, Optional, Sequence, Tuple

import yaml

__all__ = ["Policy", "PolicyError", "Rule", "Attributes", "LEVELS", "STAGES", "load_policy", "parse_policy"]

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
_LEVEL_ORDER = {name: i for i, name in enumerate(LEVELS)}


class PolicyError(ValueError):
    """A policy file that does not load (the message says why, as kube-apiserver refuses to start)."""


@dataclass(frozen=True)
class GroupResources:
    group: str = ""
    resources: Tuple[str, ...] = ()
    resource_names: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    level: str
    users: Tuple[str, ...] = ()
    user_groups: Tuple[str, ...] = ()
    verbs: Tuple[str, ...] = ()
    resources: Tuple[GroupResources, ...] = ()
    namespaces: Tuple[str, ...] = ()
    non_resource_urls: Tuple[str, ...] = ()
    omit_stages: Tuple[str, ...] = ()
    omit_managed_fields: Optional[bool] = None


@dataclass(frozen=True)
class Attributes:
    """What a rule is matched against (authorizer.Attributes)."""

    user: str
    groups: Sequence[str]
    verb: str
    path: str
    resource_request: bool
    namespace: str = ""
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


@dataclass(frozen=True)
class Decision:
    level: str
    omit_stages: FrozenSet[str]
    omit_managed_fields: bool


_NONE = Decision("None", frozenset(), False)


@dataclass
class Policy:
    rules: List[Rule] = field(default_factory=list)
    omit_stages: Tuple[str, ...] = ()
    omit_managed_fields: bool = False

    def decide(self, attrs: Attributes) -> Decision:
        """The first matching rule's level and omitted stages; None when no rule matches."""
        for rule in self.rules:
            if _matches(rule, attrs):
                if rule.level == "None":
                    return _NONE
                omf = rule.omit_managed_fields if rule.omit_managed_fields is not None else self.omit_managed_fields
                return Decision(rule.level, frozenset(self.omit_stages) | frozenset(rule.omit_stages), omf)
        return _NONE


def _matches(r: Rule, a: Attributes) -> bool:
    if r.users and a.user not in r.users:
        return False
    if r.user_groups and not any(g in r.user_groups for g in a.groups):
        return False
    if r.verbs and a.verb not in r.verbs:
        return False
    if r.namespaces or r.resources:
        return _matches_resource(r, a)
    if r.non_resource_urls:
        return not a.resource_request and any(_path_matches(a.path, spec) for spec in r.non_resource_urls)
    return True


def _path_matches(path: str, spec: str) -> bool:
    if spec == "*" or spec == path:
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


def _matches_resource(r: Rule, a: Attributes) -> bool:
    if not a.resource_request:
        return False
    if r.namespaces and a.namespace not in r.namespaces:
        return False
    if not r.resources:
        return True
    combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    for gr in r.resources:
        if gr.group != a.group:
            continue
        if not gr.resources:
            return True
        for res in gr.resources:
            if gr.resource_names and a.name not in gr.resource_names:
                continue
            if res == combined or res == "*":
                return True
            if a.subresource and res.startswith("*/") and a.subresource == res[2:]:
                return True
            if res.endswith("/*") and a.resource == res[:-2]:
                return True
    return False


def _strings(value: Any, where: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: must be a list of strings")
    return tuple(value)


def _stages(value: Any, where: str) -> Tuple[str, ...]:
    stages = _strings(value, where)
    for s in stages:
        if s not in STAGES:
            raise PolicyError(f'{where}: Unsupported value: "{s}": supported values: '
                              + ", ".join(f'"{x}"' for x in STAGES))
    return stages


def parse_policy(doc: Any) -> Policy:
    """A decoded Policy document (validated as upstream's ValidatePolicy checks levels and stages)."""
    if not isinstance(doc, dict):
        raise PolicyError("policy: not an object")
    if doc.get("kind") != "Policy" or doc.get("apiVersion") not in ("audit.k8s.io/v1",):
        raise PolicyError(f"policy: kind {doc.get('kind')!r} apiVersion {doc.get('apiVersion')!r}: "
                          "want kind Policy, apiVersion audit.k8s.io/v1")
    rules: List[Rule] = []
    for i, raw in enumerate(doc.get("rules") or []):
        where = f"rules[{i}]"
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: not an object")
        level = raw.get("level")
        if level not in LEVELS:
            raise PolicyError(f'{where}.level: Unsupported value: "{level}": supported values: '
                              + ", ".join(f'"{x}"' for x in LEVELS))
        resources = []
        for j, gr in enumerate(raw.get("resources") or []):
            if not isinstance(gr, dict):
                raise PolicyError(f"{where}.resources[{j}]: not an object")
            resources.append(GroupResources(str(gr.get("group") or ""),
                                            _strings(gr.get("resources"), f"{where}.resources[{j}].resources"),
                                            _strings(gr.get("resourceNames"),
                                                     f"{where}.resources[{j}].resourceNames")))
        non_resource = _strings(raw.get("nonResourceURLs"), f"{where}.nonResourceURLs")
        if non_resource and (resources or raw.get("namespaces")):
            raise PolicyError(f"{where}.nonResourceURLs: Invalid value: rules cannot apply to both regular "
                              "resources and non-resource URLs")
        omf = raw.get("omitManagedFields")
        rules.append(Rule(level, _strings(raw.get("users"), f"{where}.users"),
                          _strings(raw.get("userGroups"), f"{where}.userGroups"),
                          _strings(raw.get("verbs"), f"{where}.verbs"), tuple(resources),
                          _strings(raw.get("namespaces"), f"{where}.namespaces"), non_resource,
                          _stages(raw.get("omitStages"), f"{where}.omitStages"),
                          bool(omf) if omf is not None else None))
    return Policy(rules, _stages(doc.get("omitStages"), "omitStages"), bool(doc.get("omitManagedFields")))


def load_policy(path: str) -> Policy:
    """--audit-policy-file: YAML or JSON."""
    try:
        with open(path, "rb") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"loading audit policy file {path}: {exc}") from None
    try:
        return parse_policy(doc)
    except PolicyError as exc:
        raise PolicyError(f"loading audit policy file {path}: {exc}") from None


def level_at_least(level: str, wanted: str) -> bool:
    return _LEVEL_ORDER.get(level, 0) >= _LEVEL_ORDER[wanted]

