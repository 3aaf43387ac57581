"""authorization.k8s.io/v1 SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview and
SelfSubjectRulesReview: create-only, never stored (`registry.virtual` handlers).

An access review asks the server's authorizer whether a user (the
requester's own self for SelfSubjectAccessReview; spec.user/groups
otherwise) may do spec.resourceAttributes or spec.nonResourceAttributes,
and answers status.allowed / denied / reason (`kubectl auth can-i`). A
rules review lists what the requester may do in a namespace (`kubectl auth
can-i --list`): RBAC's rules, the Node authorizer's for a node,
everything for system:masters.
"""

from __future__ import annotations

from typing import Any, Dict, List

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.resources import Resource, lookup
from megaplane.apimachinery.user import SYSTEM_MASTERS, UserInfo
from megaplane.apiserver.authz.decision import ALLOW_KIND, DENY_KIND
from megaplane.apiserver.authz.node import node_name
from megaplane.apiserver.authz.rules import non_resource_rule, resource_rule
from megaplane.apiserver.registry.options import WriteOptions
from megaplane.apiserver.registry.store import Result
from megaplane.apiserver.registry.virtual import check_review_kind, created

__all__ = ["AccessReviews", "RulesReviews", "register"]

Obj = Dict[str, Any]
GROUP = "authorization.k8s.io"


def _resource(plural: str) -> Resource:
    r = lookup(GROUP, plural)
    assert r is not None
    return r


def _metadata(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return {"creationTimestamp": None}
    return dict(meta, creationTimestamp=meta.get("creationTimestamp"))


def _strs(v: Any) -> List[str]:
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


class AccessReviews:
    """POST subjectaccessreviews, localsubjectaccessreviews or selfsubjectaccessreviews."""

    def __init__(self, plural: str, authorizer: Any) -> None:
        self.body = _resource(plural)
        self.plural = plural
        self.authorizer = authorizer

    def _invalid(self, obj: Obj, causes: List[Obj]) -> errors.StatusError:
        return errors.invalid(GROUP, self.body.kind, (obj.get("metadata") or {}).get("name", "") or "", causes)

    async def create(self, user: Any, namespace: str, name: str, obj: Obj, opts: WriteOptions) -> Result:
        check_review_kind(obj, self.body)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = {}
        res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        causes: List[Obj] = []
        if res is None and nonres is None:
            causes.append(field_error("", "spec.resourceAttributes", None,
                                      "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                                      shown="null"))
        elif res is not None and nonres is not None:
            causes.append(field_error("", "spec.nonResourceAttributes", None,
                                      "cannot be specified in combination with resourceAttributes", shown="null"))
        if self.plural == "subjectaccessreviews" or self.plural == "localsubjectaccessreviews":
            if not spec.get("user") and not _strs(spec.get("groups")):
                causes.append(field_error("", "spec.user", "", "at least one of user or group must be specified"))
        if self.plural == "localsubjectaccessreviews" and nonres is not None:
            causes.append(field_error("", "spec.nonResourceAttributes", None, "disallowed on this kind of request",
                                      shown="null"))
        if causes:
            raise self._invalid(obj, causes)
        if self.plural == "localsubjectaccessreviews":
            ns = (res or {}).get("namespace", "") if isinstance(res, dict) else ""
            if ns != namespace:
                raise errors.bad_request(f"spec.resourceAttributes.namespace must match namespace: {namespace}")
        if self.plural == "selfsubjectaccessreviews":
            who = user
        else:
            extra = spec.get("extra") if isinstance(spec.get("extra"), dict) else {}
            who = UserInfo(str(spec.get("user") or ""), str(spec.get("uid") or ""), tuple(_strs(spec.get("groups"))),
                           {k: tuple(_strs(v)) for k, v in extra.items()})
        if isinstance(res, dict):
            kind, reason = self.authorizer.decide(
                who, str(res.get("verb") or ""), str(res.get("group") or ""), str(res.get("resource") or ""),
                str(res.get("subresource") or ""), str(res.get("namespace") or ""), str(res.get("name") or ""))
        else:
            na = nonres if isinstance(nonres, dict) else {}
            kind, reason = self.authorizer.decide_path(who, str(na.get("verb") or ""), str(na.get("path") or ""))
        status: Obj = {"allowed": kind == ALLOW_KIND}
        if kind == DENY_KIND and reason:
            status["reason"] = reason
        return created({"kind": self.body.kind, "apiVersion": "authorization.k8s.io/v1", "metadata": _metadata(obj),
                        "spec": spec, "status": status})


class RulesReviews:
    """POST selfsubjectrulesreviews: the requester's rules in spec.namespace."""

    def __init__(self, authorizer: Any) -> None:
        self.body = _resource("selfsubjectrulesreviews")
        self.authorizer = authorizer

    async def create(self, user: Any, namespace: str, name: str, obj: Obj, opts: WriteOptions) -> Result:
        check_review_kind(obj, self.body)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = {}
        ns = spec.get("namespace") or ""
        if not ns:
            raise errors.invalid(GROUP, "SelfSubjectRulesReview", "", [
                field_error("", "spec.namespace", "", "", "FieldValueRequired")])
        resource_rules: List[Obj] = []
        non_resource_rules: List[Obj] = []
        incomplete = False
        if SYSTEM_MASTERS in user.groups:
            resource_rules.append({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
            non_resource_rules.append({"verbs": ["*"], "nonResourceURLs": ["*"]})
        rules: List[Any] = []
        node_authorizer = getattr(self.authorizer, "node", None)
        if node_authorizer is not None and node_name(user) is not None:
            rules.extend(node_authorizer.rules)
        rbac = getattr(self.authorizer, "rbac", None)
        if rbac is not None:
            rules.extend(rbac.rules_for(user, ns))
        else:
            incomplete = True
        for rule in rules:
            rr = resource_rule(rule)
            if rr is not None:
                resource_rules.append(rr)
            nr = non_resource_rule(rule)
            if nr is not None:
                non_resource_rules.append(nr)
        return created({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
                        "metadata": _metadata(obj), "spec": spec,
                        "status": {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                                   "incomplete": incomplete}})


def register(registry: Any, authorizer: Any) -> None:
    """Serve the four reviews on `registry`, answered by `authorizer` (a ModeAuthorizer)."""
    for plural in ("subjectaccessreviews", "localsubjectaccessreviews", "selfsubjectaccessreviews"):
        registry.serve_create(_resource(plural), "", AccessReviews(plural, authorizer))
    registry.serve_create(_resource("selfsubjectrulesreviews"), "", RulesReviews(authorizer))
