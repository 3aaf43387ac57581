"""Create-only endpoints the registry serves without storing anything: reviews and request subresources.

Upstream's TokenReview, SelfSubjectReview, SubjectAccessReview and the
ServiceAccount `token` subresource are REST storages with only a Create
method: the body is decoded, the handler computes an answer (usually the
same kind with its status filled in) and nothing is written. Here such an
endpoint is a `CreateHandler` registered with `Registry.serve_create` for
(resource, subresource): "" for a whole resource marked `stored=False` in
the resource table (it then has no store and no watch cache), or a
subresource name on a stored kind (serviceaccounts/token). The HTTP
endpoints and the loopback transport look the pair up before any store, so
a handler serves HTTP and in-process callers alike; it gets the caller's
user (`megaplane.apimachinery.user.UserInfo`), which reviews about "self"
answer from.
"""

from __future__ import annotations

from typing import Any, Dict, Protocol

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.registry.options import WriteOptions
from megaplane.apiserver.registry.store import Result

__all__ = ["CreateHandler", "check_review_kind", "created"]

Obj = Dict[str, Any]


class CreateHandler(Protocol):
    #: The kind the request body decodes as (its group, version and kind; prefix unused).
    body: Resource

    async def create(self, user: Any, namespace: str, name: str, obj: Obj, opts: WriteOptions) -> Result:
        """The answer to POSTing `obj` (decoded, kind not yet checked) as `user` at namespace/name."""


def check_review_kind(obj: Obj, body: Resource) -> None:
    """A body of another kind than the handler's is upstream's decoder 400 (an empty apiVersion/kind is the URL's)."""
    gv = obj.get("apiVersion") or body.group_version
    kind = obj.get("kind") or body.kind
    if gv != body.group_version or kind != body.kind:
        raise errors.bad_request(f'{kind} in version "{gv.rsplit("/", 1)[-1]}" cannot be handled as a {body.kind}: '
                                 f'no kind "{kind}" is registered for version "{gv}" in scheme '
                                 '"pkg/api/legacyscheme/scheme.go:30"')
    obj["apiVersion"], obj["kind"] = gv, kind


def created(obj: Obj) -> Result:
    """A review's answer: the object with its status, 201 as upstream's create handler answers."""
    return Result(orjson.dumps(obj), 201, printable=False)
