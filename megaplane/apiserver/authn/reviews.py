"""authentication.k8s.io/v1 SelfSubjectReview and TokenReview: create-only, never stored.

SelfSubjectReview answers who the caller is (`kubectl auth whoami`);
TokenReview asks whether a bearer token is valid and for whom (webhook
token authenticators and kubelets ask it), with the same token
authenticators requests are checked with. Both are `registry.virtual`
handlers.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import Resource, lookup
from megaplane.apimachinery.user import UserInfo
from megaplane.apiserver.registry.options import WriteOptions
from megaplane.apiserver.registry.store import Result
from megaplane.apiserver.registry.virtual import check_review_kind, created

__all__ = ["SelfSubjectReviews", "TokenReviews", "user_info_json", "TokenCheck"]

Obj = Dict[str, Any]
#: token -> (user, audiences it is valid for) or None when no token authenticator accepts it; raises on a bad one.
TokenCheck = Callable[[str, Sequence[str]], Optional[Tuple[UserInfo, Tuple[str, ...]]]]


def user_info_json(user: UserInfo) -> Obj:
    """authentication.k8s.io/v1 UserInfo (uid and extra omitted when empty, as their omitempty tags)."""
    out: Obj = {"username": user.name}
    if user.uid:
        out["uid"] = user.uid
    out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


def _resource(plural: str) -> Resource:
    r = lookup("authentication.k8s.io", plural)
    assert r is not None
    return r


def _metadata(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if meta is None:
        return {"creationTimestamp": None}
    if not isinstance(meta, dict):
        raise errors.bad_request("json: cannot unmarshal value into Go struct field .metadata of type v1.ObjectMeta")
    return dict(meta, creationTimestamp=meta.get("creationTimestamp"))


class SelfSubjectReviews:
    """POST selfsubjectreviews: the caller's own user info (pkg/registry/authentication/selfsubjectreview)."""

    def __init__(self) -> None:
        self.body = _resource("selfsubjectreviews")

    async def create(self, user: Any, namespace: str, name: str, obj: Obj, opts: WriteOptions) -> Result:
        check_review_kind(obj, self.body)
        if user is None:
            raise errors.StatusError(500, "InternalError", "Internal error occurred: no user info present in request")
        return created({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                        "metadata": _metadata(obj), "status": {"userInfo": user_info_json(user)}})


class TokenReviews:
    """POST tokenreviews: is spec.token valid, for whom (pkg/registry/authentication/tokenreview)."""

    def __init__(self, check: TokenCheck, api_audiences: Sequence[str]) -> None:
        self.body = _resource("tokenreviews")
        self.check = check
        self.api_audiences = tuple(api_audiences)

    async def create(self, user: Any, namespace: str, name: str, obj: Obj, opts: WriteOptions) -> Result:
        check_review_kind(obj, self.body)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = {}
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise errors.bad_request("spec.token is required")
        audiences = spec.get("audiences")
        wanted: List[str] = [a for a in audiences if isinstance(a, str)] if isinstance(audiences, list) else []
        status: Obj = {"user": {}}
        try:
            found = self.check(token, wanted or self.api_audiences)
        except errors.StatusError:
            found = None
        if found is None:
            status["authenticated"] = False
            status["error"] = "[invalid bearer token, token lookup failed]"
        else:
            who, valid_for = found
            status["authenticated"] = True
            status["user"] = user_info_json(who)
            status["audiences"] = [a for a in wanted if a in valid_for] if wanted else list(valid_for)
        return created({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": _metadata(obj),
                        "spec": spec, "status": status})
