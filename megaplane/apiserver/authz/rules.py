"""PolicyRules, compiled: matching a request against one rule, and whether rules cover other rules.

As k8s.io/component-helpers/auth/rbac/validation and rbac's RuleAllows: a
rule allows a resource request when its verbs, apiGroups, resources
(`pods`, `pods/status`, `*`, `*/status`, `pods/*`) and resourceNames (none
listed: any name) all match; a non-resource request when its verbs and
nonResourceURLs (`/healthz`, or a prefix ending in `*`) match. The sets are
frozensets built once per stored rule, so a check allocates nothing.

`covers(owner, requested)` is upstream's escalation check: every atomic
rule (one verb, group, resource, name) of `requested` must be allowed by
some rule of `owner`; the uncovered ones are what the Forbidden message
lists.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = ["Rule", "compile_rules", "covers", "rule_json", "describe_rule"]

_EMPTY: frozenset = frozenset()


class Rule:
    """One rbac/v1 PolicyRule."""

    __slots__ = ("verbs", "groups", "resources", "names", "urls", "url_prefixes", "any_verb", "any_group",
                 "any_resource", "source")

    def __init__(self, source: Dict[str, Any]) -> None:
        self.source = source
        self.verbs = frozenset(_strings(source.get("verbs")))
        self.groups = frozenset(_strings(source.get("apiGroups")))
        self.resources = frozenset(_strings(source.get("resources")))
        self.names = frozenset(_strings(source.get("resourceNames")))
        urls = _strings(source.get("nonResourceURLs"))
        self.urls = frozenset(u for u in urls if not u.endswith("*"))
        self.url_prefixes = tuple(u[:-1] for u in urls if u.endswith("*"))
        self.any_verb = "*" in self.verbs
        self.any_group = "*" in self.groups
        self.any_resource = "*" in self.resources

    def allows(self, verb: str, group: str, resource: str, subresource: str, name: str) -> bool:
        """RuleAllows for a resource request."""
        if not (self.any_verb or verb in self.verbs):
            return False
        if not (self.any_group or group in self.groups):
            return False
        res = self.resources
        if not self.any_resource:
            if subresource:
                combined = resource + "/" + subresource
                if combined not in res and ("*/" + subresource) not in res and (resource + "/*") not in res:
                    return False
            elif resource not in res:
                return False
        if self.names and name not in self.names:
            return False
        return True

    def allows_path(self, verb: str, path: str) -> bool:
        """RuleAllows for a non-resource request."""
        if not (self.any_verb or verb in self.verbs):
            return False
        if path in self.urls:
            return True
        for prefix in self.url_prefixes:
            if path.startswith(prefix):
                return True
        return False


def _strings(value: Any) -> List[str]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str)]


def compile_rules(rules: Any) -> Tuple[Rule, ...]:
    if not isinstance(rules, list):
        return ()
    return tuple(Rule(r) for r in rules if isinstance(r, dict))


def _atoms(rule: Dict[str, Any]) -> Iterable[Tuple[str, str, str, str, str]]:
    """BreakdownRule: (verb, group, resource, name, url) per combination."""
    verbs = _strings(rule.get("verbs"))
    for group in _strings(rule.get("apiGroups")):
        for resource in _strings(rule.get("resources")):
            names = _strings(rule.get("resourceNames")) or [""]
            for name in names:
                for verb in verbs:
                    yield verb, group, resource, name, ""
    for url in _strings(rule.get("nonResourceURLs")):
        for verb in verbs:
            yield verb, "", "", "", url


def _atom_covered(owner: Sequence[Rule], atom: Tuple[str, str, str, str, str]) -> bool:
    verb, group, resource, name, url = atom
    for r in owner:
        if not (r.any_verb or verb in r.verbs):
            continue
        if url:
            if url in r.urls or any(url.startswith(p) for p in r.url_prefixes):
                return True
            continue
        if not (r.any_group or group in r.groups):
            continue
        if not r.any_resource and resource not in r.resources:
            # "*/sub" and "res/*" in the owner cover the same patterns in the request.
            if "/" not in resource:
                continue
            base, sub = resource.split("/", 1)
            if ("*/" + sub) not in r.resources and (base + "/*") not in r.resources:
                continue
        if r.names and name not in r.names:
            continue
        return True
    return False


def covers(owner: Sequence[Rule], requested: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The atomic rules of `requested` no rule of `owner` allows (empty: covered)."""
    missing: List[Dict[str, Any]] = []
    for rule in requested:
        for atom in _atoms(rule):
            if not _atom_covered(owner, atom):
                verb, group, resource, name, url = atom
                if url:
                    missing.append({"nonResourceURLs": [url], "verbs": [verb]})
                else:
                    m: Dict[str, Any] = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                    if name:
                        m["resourceNames"] = [name]
                    missing.append(m)
    return missing


def _go_quoted(values: List[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


def describe_rule(rule: Dict[str, Any]) -> str:
    """rbacv1helpers.CompactString: `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"), ("nonResourceURLs", "NonResourceURLs"),
                       ("resourceNames", "ResourceNames"), ("verbs", "Verbs")):
        values = _strings(rule.get(key))
        if values:
            parts.append(label + ":" + _go_quoted(values))
    return "{" + ", ".join(parts) + "}"


def compact(rules: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """CompactRules: rules differing only in their verb become one rule with the verbs, in order seen."""
    merged: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
    for r in rules:
        key = (tuple(r.get("apiGroups", ())), tuple(r.get("resources", ())), tuple(r.get("resourceNames", ())),
               tuple(r.get("nonResourceURLs", ())))
        if key in merged:
            merged[key]["verbs"] = merged[key]["verbs"] + [v for v in r["verbs"] if v not in merged[key]["verbs"]]
        else:
            merged[key] = dict(r, verbs=list(r["verbs"]))
    return list(merged.values())


def rule_json(rule: Rule) -> Dict[str, Any]:
    """The rule as authorization/v1 ResourceRule / NonResourceRule fields (SelfSubjectRulesReview)."""
    return dict(rule.source)


def resource_rule(rule: Rule) -> Optional[Dict[str, Any]]:
    src = rule.source
    if not _strings(src.get("resources")):
        return None
    out: Dict[str, Any] = {"verbs": _strings(src.get("verbs")), "apiGroups": _strings(src.get("apiGroups")),
                           "resources": _strings(src.get("resources"))}
    if _strings(src.get("resourceNames")):
        out["resourceNames"] = _strings(src.get("resourceNames"))
    return out


def non_resource_rule(rule: Rule) -> Optional[Dict[str, Any]]:
    src = rule.source
    if not _strings(src.get("nonResourceURLs")):
        return None
    return {"verbs": _strings(src.get("verbs")), "nonResourceURLs": _strings(src.get("nonResourceURLs"))}
