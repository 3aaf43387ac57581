"""PatchError: what a patch that cannot be decoded or applied raises, with the Status it maps to.

Every patch algorithm of this package reports failure through `PatchError`, built by one of
the constructors below so each kind of failure carries the code, reason and message
kube-apiserver answers it with (handlers/patch.go).
"""

from __future__ import annotations

from typing import Optional

__all__ = ["PatchError", "REJECTED", "bad_request", "rejected", "invalid"]


class PatchError(ValueError):
    """A patch that cannot be applied. `message` is the text for the Kubernetes Status (HTTP 422 for
    a patch that does not apply, 400 for a malformed patch); `reason` is "Invalid" or "BadRequest".

    `code` is the HTTP status (422, 400, or 413 with reason "RequestEntityTooLarge" for an
    over-long JSON patch). `detail` is the underlying library error when upstream's Status does not
    show it: kube-apiserver answers every JSON patch that fails to apply with one generic message
    and drops the cause, which is still worth having in logs.
    """

    def __init__(self, message: str, reason: str = "Invalid", code: Optional[int] = None, detail: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.code = code if code is not None else (400 if reason == "BadRequest" else 422)
        self.detail = detail

    def __repr__(self) -> str:
        return f"PatchError({self.code}, {self.reason!r}, {self.message!r}, detail={self.detail!r})"


# What NewGenericServerResponse(422, ...) says: upstream uses it for a JSON patch that fails to apply
# and for two strategic merge errors, and it puts no trace of the cause in the Status.
REJECTED = "the server rejected our request due to an error in our request"


def bad_request(message: str) -> PatchError:
    return PatchError(message, "BadRequest", 400)


def rejected(detail: str) -> PatchError:
    return PatchError(REJECTED, "Invalid", 422, detail)


def invalid(message: str) -> PatchError:
    # Strategic merge errors upstream does not classify (interpretStrategicMergePatchError's default
    # case) reach the client as a bare error: message = the error text, HTTP 500, no reason. They
    # are all "this patch does not fit this object", so they are reported as 422 Invalid here.
    return PatchError(message, "Invalid", 422)
