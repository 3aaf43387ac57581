"""API errors as Kubernetes `Status` objects, with upstream's codes, reasons and wording.

kubectl prints `message` verbatim and clients branch on `reason` and
`code`, so every constructor here mirrors a function of
k8s.io/apimachinery/pkg/api/errors (NewNotFound, NewAlreadyExists,
NewConflict, NewInvalid, ...) including its message format. Handlers raise
`StatusError`; the transport turns it into a JSON body and HTTP status.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import orjson

__all__ = [
    "StatusError",
    "not_found",
    "already_exists",
    "conflict",
    "conflict_modified",
    "invalid",
    "bad_request",
    "forbidden",
    "method_not_allowed",
    "unsupported_media_type",
    "not_acceptable",
    "too_large",
    "expired",
    "gone",
    "too_many_requests",
    "too_large_resource_version",
    "internal",
    "status_body",
    "field_error",
    "details",
]


class StatusError(Exception):
    """A request that ends in a Kubernetes Status (non-2xx). Nothing was changed."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Optional[Dict[str, Any]] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> bytes:
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(code: int, reason: str, message: str, details: Optional[Dict[str, Any]] = None) -> bytes:
    status: Dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        status["details"] = details
    status["code"] = code
    return orjson.dumps(status)


def details(name: str, group: str, kind: str) -> Dict[str, Any]:
    d: Dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = kind
    return d


def _qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> StatusError:
    return StatusError(404, "NotFound", f'{_qualified(group, plural)} "{name}" not found', details(name, group, plural))


def already_exists(group: str, plural: str, name: str) -> StatusError:
    return StatusError(
        409, "AlreadyExists", f'{_qualified(group, plural)} "{name}" already exists', details(name, group, plural)
    )


def conflict(group: str, plural: str, name: str, why: str) -> StatusError:
    return StatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(group, plural)} "{name}": {why}',
        details(name, group, plural),
    )


def conflict_modified(group: str, plural: str, name: str) -> StatusError:
    return conflict(
        group,
        plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )


def field_error(
    kind: str, path: str, value: Any, detail: str, reason: str = "FieldValueInvalid", shown: Optional[str] = None
) -> Dict[str, Any]:
    """One cause of an Invalid status, rendered like field.Error (`shown`: the value as Go prints it)."""
    words = {
        "FieldValueInvalid": "Invalid value",
        "FieldValueRequired": "Required value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueNotSupported": "Unsupported value",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueTooLong": "Too long",
    }
    word = words.get(reason, reason)
    if reason in ("FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong"):
        message = f"{word}: {detail}" if detail else word
    else:
        if shown is None:
            shown = orjson.dumps(value).decode() if not isinstance(value, str) else f'"{value}"'
        message = f"{word}: {shown}: {detail}" if detail else f"{word}: {shown}"
    return {"reason": reason, "message": message, "field": path}


def invalid(group: str, kind: str, name: str, causes: List[Dict[str, Any]]) -> StatusError:
    """NewInvalid: `Kind "name" is invalid: field: message[, ...]`."""
    if len(causes) == 1:
        summary = f'{causes[0]["field"]}: {causes[0]["message"]}'
    else:
        summary = "[" + ", ".join(f'{c["field"]}: {c["message"]}' for c in causes) + "]"
    d = details(name, group, kind)
    d["causes"] = causes
    return StatusError(422, "Invalid", f'{kind}{"." + group if group else ""} "{name}" is invalid: {summary}', d)


def too_large_resource_version(wanted: int, current: int, retry_after: int = 1) -> StatusError:
    """storage.NewTooLargeResourceVersionError: a read asked for a revision the store has not reached."""
    return StatusError(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {wanted}, current: {current}",
        {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
         "retryAfterSeconds": retry_after},
        {"Retry-After": str(retry_after)},
    )


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def forbidden(group: str, plural: str, name: str, why: str) -> StatusError:
    return StatusError(
        403, "Forbidden", f'{_qualified(group, plural)} "{name}" is forbidden: {why}', details(name, group, plural)
    )


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf')  # noqa: E501


def not_acceptable(message: str) -> StatusError:
    return StatusError(406, "NotAcceptable", message)


def too_large(limit: int) -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def expired(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def gone(message: str) -> StatusError:
    return StatusError(410, "Gone", message)


def too_many_requests(retry_after: int = 1) -> StatusError:
    return StatusError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})
