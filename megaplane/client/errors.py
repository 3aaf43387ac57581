"""The client's errors: a Kubernetes `Status` answer as a typed exception, plus transport failures.

Hierarchy (every class is a `megaplane.apimachinery.errors.StatusError`, so
`.code`, `.reason`, `.message`, `.details`, `.headers` are always there)::

    StatusError
      BadRequestError            400 BadRequest
      UnauthorizedError          401 Unauthorized
      ForbiddenError             403 Forbidden
      NotFoundError              404 NotFound
      MethodNotAllowedError      405 MethodNotAllowed
      NotAcceptableError         406 NotAcceptable
      AlreadyExistsError         409 AlreadyExists
      ConflictError              409 Conflict (stale resourceVersion, uid precondition, ...)
      GoneError                  410 Gone: relist
        ExpiredError             410 Expired (too old resourceVersion, expired continue token): relist
      RequestEntityTooLargeError 413
      UnsupportedMediaTypeError  415
      InvalidError               422 Invalid (details.causes name the fields)
      TooManyRequestsError       429 (.retry_after seconds, or None)
      InternalError              500 InternalError
      ServiceUnavailableError    503 ServiceUnavailable
        ConnectionFailedError    the server could not be reached (client side, never a response)
      ServerTimeoutError         504 Timeout, or 500 ServerTimeout: the server gave up; retry
        RequestTimeoutError      no answer within the client's per-request timeout (client side)

`error_from_response` picks the class by `reason` first (as apimachinery's
`ReasonForError` predicates do) and by HTTP code when the reason is absent
or unknown, e.g. a plain-text body from a proxy.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type

import orjson

from megaplane.apimachinery.errors import StatusError

__all__ = [
    "StatusError",
    "BadRequestError",
    "UnauthorizedError",
    "ForbiddenError",
    "NotFoundError",
    "MethodNotAllowedError",
    "NotAcceptableError",
    "AlreadyExistsError",
    "ConflictError",
    "GoneError",
    "ExpiredError",
    "RequestEntityTooLargeError",
    "UnsupportedMediaTypeError",
    "InvalidError",
    "TooManyRequestsError",
    "InternalError",
    "ServiceUnavailableError",
    "ConnectionFailedError",
    "ServerTimeoutError",
    "RequestTimeoutError",
    "error_from_response",
    "is_retryable",
]


class BadRequestError(StatusError):
    """400: the request was malformed (bad selector, bad body, bad ListOptions)."""


class UnauthorizedError(StatusError):
    """401: no or bad credentials."""


class ForbiddenError(StatusError):
    """403: authenticated but not allowed (RBAC, or admission such as a terminating namespace)."""


class NotFoundError(StatusError):
    """404: the object (or its namespace, or the resource) does not exist."""


class MethodNotAllowedError(StatusError):
    """405: the resource does not support the verb (e.g. update of a subresource that only allows get)."""


class NotAcceptableError(StatusError):
    """406: the server cannot answer in the media type asked for."""


class AlreadyExistsError(StatusError):
    """409 AlreadyExists: create of a name that is taken."""


class ConflictError(StatusError):
    """409 Conflict: a precondition failed, usually a stale resourceVersion; re-read and retry."""


class GoneError(StatusError):
    """410 Gone: what was asked for is no longer kept; a watcher or pager must relist."""


class ExpiredError(GoneError):
    """410 Expired: too old resourceVersion for a watch, or an expired continue token; relist."""


class RequestEntityTooLargeError(StatusError):
    """413: the body is larger than the server accepts."""


class UnsupportedMediaTypeError(StatusError):
    """415: the body's Content-Type is not accepted (e.g. apply patches on megaplane today)."""


class InvalidError(StatusError):
    """422 Invalid: validation failed; `details["causes"]` lists each field's error."""


class TooManyRequestsError(StatusError):
    """429: the server sheds load. Raised once the client's retries (each after Retry-After) ran out."""

    @property
    def retry_after(self) -> Optional[float]:
        """Seconds to wait, from the Retry-After header or `details.retryAfterSeconds` (None: not given)."""
        return retry_after_seconds(self.headers, self.details)


class InternalError(StatusError):
    """500 InternalError: the server failed; the request may or may not have taken effect."""


class ServiceUnavailableError(StatusError):
    """503: the server (or what it depends on) cannot serve now; retry later."""


class ConnectionFailedError(ServiceUnavailableError):
    """The server could not be reached: refused, unresolvable, TLS failure, connect timeout, or the
    connection dropped before an answer. Raised by the client itself, promptly, never as a hang.
    `code` is 503 so code-based retry logic treats it like an unavailable server."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "ServiceUnavailable", message)


class ServerTimeoutError(StatusError):
    """504 Timeout (e.g. a resourceVersion the server has not reached) or 500 ServerTimeout; retry."""


class RequestTimeoutError(ServerTimeoutError):
    """No complete answer within the client's per-request timeout (client side; the request may have
    taken effect). The connection it used is closed."""

    def __init__(self, message: str) -> None:
        super().__init__(504, "Timeout", message)


_BY_REASON: Dict[str, Type[StatusError]] = {
    "BadRequest": BadRequestError,
    "Unauthorized": UnauthorizedError,
    "Forbidden": ForbiddenError,
    "NotFound": NotFoundError,
    "MethodNotAllowed": MethodNotAllowedError,
    "NotAcceptable": NotAcceptableError,
    "AlreadyExists": AlreadyExistsError,
    "Conflict": ConflictError,
    "Gone": GoneError,
    "Expired": ExpiredError,
    "RequestEntityTooLarge": RequestEntityTooLargeError,
    "UnsupportedMediaType": UnsupportedMediaTypeError,
    "Invalid": InvalidError,
    "TooManyRequests": TooManyRequestsError,
    "InternalError": InternalError,
    "ServiceUnavailable": ServiceUnavailableError,
    "Timeout": ServerTimeoutError,
    "ServerTimeout": ServerTimeoutError,
}

# When the reason says nothing: apimachinery's reasonForCode plus the codes it maps by hand.
_BY_CODE: Dict[int, Type[StatusError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    406: NotAcceptableError,
    409: ConflictError,
    410: GoneError,
    413: RequestEntityTooLargeError,
    415: UnsupportedMediaTypeError,
    422: InvalidError,
    429: TooManyRequestsError,
    500: InternalError,
    503: ServiceUnavailableError,
    504: ServerTimeoutError,
}

_REASON_FOR_CODE: Dict[int, str] = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Gone", 413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}


def retry_after_seconds(headers: Mapping[str, str], details: Optional[Mapping[str, Any]]) -> Optional[float]:
    """Retry-After (integer seconds, as Kubernetes sends it) or details.retryAfterSeconds."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value.strip())
            except ValueError:
                break
            if seconds >= 0:
                return seconds
            break
    if details:
        seconds_field = details.get("retryAfterSeconds")
        if isinstance(seconds_field, (int, float)) and seconds_field >= 0:
            return float(seconds_field)
    return None


def error_from_response(code: int, headers: Mapping[str, str], body: bytes) -> StatusError:
    """The typed error for a non-2xx answer: a `Status` body when there is one, else the code alone."""
    status: Any = None
    if body[:1] == b"{":
        try:
            status = orjson.loads(body)
        except orjson.JSONDecodeError:
            status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        reason = status.get("reason") or ""
        message = status.get("message") or ""
        details = status.get("details")
        if not isinstance(details, dict):
            details = None
        status_code = status.get("code")
        if isinstance(status_code, int) and status_code:
            code = status_code
    else:
        reason = ""
        text = body.decode("utf-8", "replace").strip()
        # newUnstructuredResponseError: the body as the message when it is short enough to be one.
        message = text if text and len(text) < 1024 else f"the server responded with the status code {code}"
        details = None
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code)
    if cls is None:
        cls = InternalError if code >= 500 else BadRequestError if code >= 400 else StatusError
    if not reason:
        reason = _REASON_FOR_CODE.get(code, "Unknown")
    if not message:
        message = f"the server responded with the status code {code} ({reason})"
    return cls(code, reason, message, details, dict(headers))


def is_retryable(exc: BaseException) -> bool:
    """Whether retrying the same request later may succeed: unreachable, shed, timed out, unavailable."""
    return isinstance(exc, (ServiceUnavailableError, TooManyRequestsError, ServerTimeoutError))
