"""The RBAC authorizer: decisions from the Roles, ClusterRoles and their bindings in the watch caches.

As plugin/pkg/auth/authorizer/rbac: a request is allowed when a
ClusterRoleBinding, or a RoleBinding in the request's namespace, binds the
user (by name, one of its groups, or as a ServiceAccount) to a role with a
rule that allows it; RBAC never denies, it has no opinion.

The bindings are indexed by subject (user name, group, and per namespace),
resolved to their roles' compiled rules, whenever any of the four caches
changes (the index is rebuilt lazily on the next check after a change,
decoding and compiling only the objects whose revision moved).
The rules one user has are memoised per (name, groups) and per namespace,
so a check is a dict lookup or two plus rule matching and allocates
nothing.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

import orjson

from megaplane.apimachinery.resources import Resource, lookup
from megaplane.apimachinery.user import SERVICE_ACCOUNT_USER_PREFIX, UserInfo
from megaplane.apiserver.authz.decision import ALLOW, NO_OPINION, Decision
from megaplane.apiserver.authz.rules import Rule, compile_rules

__all__ = ["RBACAuthorizer", "RBAC_RESOURCES"]

_GROUP = "rbac.authorization.k8s.io"
RBAC_RESOURCES = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
_NONE: Tuple[Rule, ...] = ()
# Memoised rule sets past this many (users x namespaces) are dropped and rebuilt as asked for.
_MEMO_MAX = 50_000


def rbac_resource(plural: str) -> Resource:
    r = lookup(_GROUP, plural)
    assert r is not None
    return r


def _subject_key(subject: Any, binding_ns: str) -> Optional[Tuple[str, str]]:
    """("user", name) or ("group", name) for an rbac/v1 Subject; ServiceAccounts are their user names."""
    if not isinstance(subject, dict):
        return None
    kind, name = subject.get("kind"), subject.get("name")
    if not isinstance(name, str) or not name:
        return None
    if kind == "User":
        return "user", name
    if kind == "Group":
        return "group", name
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return "user", f"{SERVICE_ACCOUNT_USER_PREFIX}{ns}:{name}"
    return None


class RBACAuthorizer:
    """Node,RBAC's RBAC half; `caches` gives the watch cache of each RBAC resource (registry.cache_for)."""

    def __init__(self, cache_for: Any) -> None:
        self._caches = [cache_for(rbac_resource(p)) for p in RBAC_RESOURCES]
        for cache in self._caches:
            cache.listeners.append(self._changed)
            cache.on_reset.append(self._reset)
        self._dirty = True
        self.rebuilds = 0
        #: per cache: key -> (revision, decoded object) as of the last rebuild
        self._decoded: List[Dict[bytes, Tuple[int, Dict[str, Any]]]] = [{} for _ in self._caches]
        # subject -> rules, cluster-wide and per namespace
        self._cluster: Dict[Tuple[str, str], List[Tuple[Rule, ...]]] = {}
        self._namespaced: Dict[Tuple[str, str, str], List[Tuple[Rule, ...]]] = {}
        self._memo_cluster: Dict[Tuple[str, Tuple[str, ...]], Tuple[Rule, ...]] = {}
        self._memo_ns: Dict[Tuple[str, str, Tuple[str, ...]], Tuple[Rule, ...]] = {}
        self.cluster_roles: Dict[str, Tuple[Rule, ...]] = {}
        self.roles: Dict[Tuple[str, str], Tuple[Rule, ...]] = {}

    def _changed(self, events: Any) -> None:
        self._dirty = True

    def _reset(self) -> None:
        self._dirty = True

    # -- the index ---------------------------------------------------------------------------------------

    def _objects(self, i: int) -> Iterable[Dict[str, Any]]:
        """The cache's objects decoded; an object whose revision is unchanged since the last rebuild is not
        decoded again (a rebuild after one change decodes one object)."""
        memo = self._decoded[i]
        fresh: Dict[bytes, Tuple[int, Dict[str, Any]]] = {}
        for obj in list(self._caches[i].objects.values()):
            seen = memo.get(obj.key)
            if seen is not None and seen[0] == obj.rv:
                fresh[obj.key] = seen
                yield seen[1]
                continue
            try:
                decoded = orjson.loads(obj.data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(decoded, dict):
                fresh[obj.key] = (obj.rv, decoded)
                yield decoded
        self._decoded[i] = fresh

    def _compiled(self, obj: Dict[str, Any]) -> Tuple[Rule, ...]:
        """A role's compiled rules, kept on its decoded object (reused while the object is)."""
        rules = obj.get("\0compiled")
        if rules is None:
            rules = obj["\0compiled"] = compile_rules(obj.get("rules"))
        return rules  # type: ignore[no-any-return]

    def _rebuild(self) -> None:
        self._dirty = False
        self.rebuilds += 1
        roles: Dict[Tuple[str, str], Tuple[Rule, ...]] = {}
        for obj in self._objects(0):
            meta = obj.get("metadata") or {}
            roles[(meta.get("namespace", ""), meta.get("name", ""))] = self._compiled(obj)
        cluster_roles: Dict[str, Tuple[Rule, ...]] = {}
        for obj in self._objects(1):
            cluster_roles[(obj.get("metadata") or {}).get("name", "")] = self._compiled(obj)
        namespaced: Dict[Tuple[str, str, str], List[Tuple[Rule, ...]]] = {}
        for obj in self._objects(2):
            meta = obj.get("metadata") or {}
            ns = meta.get("namespace", "")
            ref = obj.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole":
                rules = cluster_roles.get(ref.get("name", ""), _NONE)
            else:
                rules = roles.get((ns, ref.get("name", "")), _NONE)
            if not rules:
                continue
            for subject in obj.get("subjects") or ():
                key = _subject_key(subject, ns)
                if key is not None:
                    namespaced.setdefault((ns, *key), []).append(rules)
        cluster: Dict[Tuple[str, str], List[Tuple[Rule, ...]]] = {}
        for obj in self._objects(3):
            ref = obj.get("roleRef") or {}
            rules = cluster_roles.get(ref.get("name", ""), _NONE) if ref.get("kind") == "ClusterRole" else _NONE
            if not rules:
                continue
            for subject in obj.get("subjects") or ():
                key = _subject_key(subject, "")
                if key is not None:
                    cluster.setdefault(key, []).append(rules)
        self.roles, self.cluster_roles = roles, cluster_roles
        self._cluster, self._namespaced = cluster, namespaced
        self._memo_cluster, self._memo_ns = {}, {}

    def _collect(self, index: Dict[Any, List[Tuple[Rule, ...]]], prefix: Tuple[str, ...], user: UserInfo
                 ) -> Tuple[Rule, ...]:
        out: List[Rule] = []
        for sets in (index.get((*prefix, "user", user.name)),
                     *(index.get((*prefix, "group", g)) for g in user.groups)):
            if sets:
                for rules in sets:
                    out.extend(rules)
        return tuple(out)

    def cluster_rules(self, user: UserInfo) -> Tuple[Rule, ...]:
        if self._dirty:
            self._rebuild()
        key = (user.name, user.groups)
        rules = self._memo_cluster.get(key)
        if rules is None:
            if len(self._memo_cluster) > _MEMO_MAX:
                self._memo_cluster.clear()
            rules = self._memo_cluster[key] = self._collect(self._cluster, (), user)
        return rules

    def namespace_rules(self, user: UserInfo, namespace: str) -> Tuple[Rule, ...]:
        if self._dirty:
            self._rebuild()
        key = (namespace, user.name, user.groups)
        rules = self._memo_ns.get(key)
        if rules is None:
            if len(self._memo_ns) > _MEMO_MAX:
                self._memo_ns.clear()
            rules = self._memo_ns[key] = self._collect(self._namespaced, (namespace,), user)
        return rules

    def rules_for(self, user: UserInfo, namespace: str) -> Tuple[Rule, ...]:
        """Every rule the user has in `namespace` ("": cluster-wide only), as escalation checks and
        SelfSubjectRulesReview see them."""
        rules = self.cluster_rules(user)
        return rules + self.namespace_rules(user, namespace) if namespace else rules

    # -- decisions ----------------------------------------------------------------------------------------

    def authorize(self, user: UserInfo, verb: str, group: str, resource: str, subresource: str, namespace: str,
                  name: str) -> Decision:
        for rule in self.cluster_rules(user):
            if rule.allows(verb, group, resource, subresource, name):
                return ALLOW
        if namespace:
            for rule in self.namespace_rules(user, namespace):
                if rule.allows(verb, group, resource, subresource, name):
                    return ALLOW
        return NO_OPINION

    def authorize_path(self, user: UserInfo, verb: str, path: str) -> Decision:
        for rule in self.cluster_rules(user):
            if rule.allows_path(verb, path):
                return ALLOW
        return NO_OPINION
