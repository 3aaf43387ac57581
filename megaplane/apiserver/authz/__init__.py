"""Authorization: may this user do this verb on this resource (or non-resource path)?

The server asks its `RequestAuthorizer` after routing a request and
before flow control and the handler run; a refusal is a 403 StatusError
with upstream's message and nothing changes. Without configured modes
everything is allowed (kube-apiserver's --authorization-mode=AlwaysAllow).
"""

from __future__ import annotations

from typing import Any, Protocol

from megaplane.apiserver.http.messages import Request

__all__ = ["RequestAuthorizer", "AllowAll"]


class RequestAuthorizer(Protocol):
    def authorize_resource(self, req: Request, info: Any) -> None:
        """Raise a 403 StatusError unless req.user may do info.verb on info's resource (routing.RequestInfo)."""

    def authorize_path(self, req: Request, path: str, verb: str) -> None:
        """Raise a 403 StatusError unless req.user may `verb` (get, post, ...) the non-resource URL `path`."""


class AllowAll:
    """--authorization-mode=AlwaysAllow."""

    def authorize_resource(self, req: Request, info: Any) -> None:
        return None

    def authorize_path(self, req: Request, path: str, verb: str) -> None:
        return None
