"""Storage errors, and their translation into API Status errors: one `interpret_<verb>_error` per verb.

The tree mirrors k8s.io/apiserver pkg/storage/errors.go: a `StorageError`
carries an upstream error code, the key and a resourceVersion, and prints
exactly as upstream's does ("StorageError: invalid object, Code: 4, Key:
..., ResourceVersion: 0, AdditionalErrorMsg: ..."), because that text ends
up inside Conflict messages that clients show verbatim::

    StorageError
    +-- KeyNotFoundError          the key does not exist (at the revision read)
    +-- KeyExistsError            create of a key that exists
    +-- ConflictError             compare-and-swap lost: the mod revision moved (.current)
    +-- InvalidObjError           the stored object fails a check of the caller's
    |   +-- PreconditionFailedError   uid / resourceVersion precondition
    +-- UnavailableError          the backend cannot be reached (prompt, never a hang)
    +-- RequestTimeoutError       the backend did not answer in time
    +-- CorruptObjError           a stored value is not a JSON object
    +-- InvalidKeyError           an empty or malformed key (a caller's bug)
    +-- ExpiredError              the revision asked for is compacted (.compact_revision)
    +-- TooLargeResourceVersionError  the revision asked for is in the future (.current)
    +-- RequestTooLargeError      key + value above the backend's request limit
    +-- InternalError             anything else the backend reports

Backends raise these and nothing else; the registry catches StorageError
around each call and raises `interpret_<verb>_error(err, resource, name)`
(pkg/storage/errors/storage.go), so a backend's own errors never reach a
client untranslated.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from ..apimachinery.errors import (
    StatusError,
    already_exists,
    conflict,
    conflict_modified,
    expired,
    internal,
    not_found,
    too_large_resource_version,
)
from .objects import StoredObject

__all__ = [
    "GroupResource",
    "StorageError",
    "KeyNotFoundError",
    "KeyExistsError",
    "ConflictError",
    "InvalidObjError",
    "PreconditionFailedError",
    "UnavailableError",
    "RequestTimeoutError",
    "CorruptObjError",
    "InvalidKeyError",
    "ExpiredError",
    "TooLargeResourceVersionError",
    "RequestTooLargeError",
    "InternalError",
    "interpret_get_error",
    "interpret_list_error",
    "interpret_create_error",
    "interpret_update_error",
    "interpret_delete_error",
    "interpret_watch_error",
    "WATCH_EXPIRED_MESSAGE",
    "LIST_EXPIRED_MESSAGE",
    "CONTINUE_EXPIRED_MESSAGE",
]

# pkg/storage/etcd3/errors.go
WATCH_EXPIRED_MESSAGE = "The resourceVersion for the provided watch is too old."
LIST_EXPIRED_MESSAGE = "The resourceVersion for the provided list is too old."
CONTINUE_EXPIRED_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter."
)
# pkg/storage/errors/storage.go: NewServerTimeout(resource, verb, 2)
_RETRY_SECONDS = 2


class GroupResource(NamedTuple):
    """schema.GroupResource: what the interpreted Status errors name (`pods`, `deployments.apps`)."""

    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


def _text(key: bytes | str) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else key


class StorageError(Exception):
    """Base of every error a `Storage` raises. Nothing was changed when one is raised.

    `code` is upstream's ErrCode (0 for the kinds upstream reports as etcd
    or apimachinery errors), `key` the key involved, `revision` the
    resourceVersion upstream puts in the message (mostly 0), `detail`
    upstream's AdditionalErrorMsg.
    """

    code = 0
    description = "storage error"

    def __init__(self, key: bytes | str = b"", revision: int = 0, detail: Optional[str] = None) -> None:
        self.key = key
        self.revision = revision
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        extra = self.detail if self.detail is not None else "<nil>"
        return (
            f"StorageError: {self.description}, Code: {self.code}, Key: {_text(self.key)}, "
            f"ResourceVersion: {self.revision}, AdditionalErrorMsg: {extra}"
        )


class KeyNotFoundError(StorageError):
    """The key does not exist: get/update/delete of a missing key, or a get at a revision before it existed."""

    code = 1
    description = "key not found"


class KeyExistsError(StorageError):
    """create() of a key that already exists."""

    code = 2
    description = "key exists"


class ConflictError(StorageError):
    """update()/delete() with an expected revision that is no longer the key's mod revision.

    `current` is the object as it is now, so the caller can retry without a read.
    """

    code = 3
    description = "resource version conflicts"

    def __init__(self, key: bytes | str, revision: int, current: "StoredObject") -> None:
        self.current = current
        super().__init__(key, revision)


class InvalidObjError(StorageError):
    """The stored object fails a check the caller asked for (upstream's ErrCodeInvalidObj)."""

    code = 4
    description = "invalid object"


class PreconditionFailedError(InvalidObjError):
    """A uid or resourceVersion precondition does not match the stored object (Preconditions.Check).

    `detail` reads "Precondition failed: UID in precondition: a, UID in object meta: b" as upstream.
    """


class UnavailableError(StorageError):
    """The backend cannot be reached or lost its disk. Raised promptly; a backend never hangs instead."""

    code = 5
    description = "server unreachable"


class RequestTimeoutError(StorageError):
    """The backend did not answer within the request's deadline; the write may still have happened."""

    code = 6
    description = "request timeout"


class CorruptObjError(StorageError):
    """A stored value cannot be served: it is not a JSON object (upstream: transform or decode failed)."""

    code = 7
    description = "corrupt object"


class InvalidKeyError(StorageError, ValueError):
    """An empty key or prefix: a caller's bug, never a client's."""

    description = "invalid key"


class ExpiredError(StorageError):
    """A read or watch asked for a revision the backend has compacted away.

    `compact_revision` is the compaction floor (at least; reads at or above
    it may still fail if the backend trimmed more history), `requested` the
    revision asked for. A watch ends with this error; its consumer relists.
    """

    def __init__(self, key: bytes | str, requested: int, compact_revision: int) -> None:
        self.requested = requested
        self.compact_revision = compact_revision
        super().__init__(key, requested)

    def __str__(self) -> str:
        return (
            f"required revision {self.requested} has been compacted "
            f"(compacted revision {self.compact_revision}, key {_text(self.key)})"
        )


class TooLargeResourceVersionError(StorageError):
    """A read asked for a revision above the backend's current one (`current`)."""

    def __init__(self, key: bytes | str, requested: int, current: int) -> None:
        self.requested = requested
        self.current = current
        super().__init__(key, requested)

    def __str__(self) -> str:
        return f"Too large resource version: {self.requested}, current: {self.current}"


class RequestTooLargeError(StorageError):
    """The key plus value exceed the backend's request limit (etcd --max-request-bytes).

    Upstream's handlers retry such a create/update once without managedFields.
    """

    def __str__(self) -> str:
        return "etcdserver: request is too large"


class InternalError(StorageError):
    """Anything else the backend reported; `detail` holds its message."""

    def __str__(self) -> str:
        return self.detail or "storage internal error"


# -- interpretation: storage error -> Status error, one function per verb ------------------------


def _server_timeout(resource: GroupResource, operation: str) -> StatusError:
    """apierrors.NewServerTimeout: 500 ServerTimeout naming the operation, retry after 2 s."""
    details: dict[str, object] = {"name": operation}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.resource
    details["retryAfterSeconds"] = _RETRY_SECONDS
    return StatusError(
        500,
        "ServerTimeout",
        f"The {operation} operation against {resource} could not be completed at this time, please try again.",
        details,
        {"Retry-After": str(_RETRY_SECONDS)},
    )


def _timeout(err: StorageError) -> StatusError:
    """apierrors.NewTimeoutError: 504 Timeout, retry after 2 s: the backend did not answer within its deadline
    (upstream's request deadline ends such a call the same way, through its timeout filter)."""
    return StatusError(
        504, "Timeout", f"Timeout: {err}", {"retryAfterSeconds": _RETRY_SECONDS}, {"Retry-After": str(_RETRY_SECONDS)})


def _unknown(err: StorageError) -> StatusError:
    """What upstream's handlers make of an error no interpreter knows: 500 with its text."""
    if isinstance(err, TooLargeResourceVersionError):
        return too_large_resource_version(err.requested, err.current)
    if isinstance(err, RequestTimeoutError):
        return _timeout(err)
    if isinstance(err, RequestTooLargeError):
        return StatusError(500, "", str(err))
    return internal(str(err))


def interpret_get_error(err: StorageError, resource: GroupResource, name: str) -> StatusError:
    """InterpretGetError: NotFound 404, Unreachable -> ServerTimeout, Expired 410, the rest 500."""
    if isinstance(err, KeyNotFoundError):
        return not_found(resource.group, resource.resource, name)
    if isinstance(err, UnavailableError):
        return _server_timeout(resource, "get")
    if isinstance(err, ExpiredError):
        return expired(f"too old resource version: {err.requested} ({err.compact_revision})")
    return _unknown(err)


def interpret_list_error(err: StorageError, resource: GroupResource, *, paging: bool = False) -> StatusError:
    """InterpretListError plus etcd3's list compaction messages (`paging`: the list had a continue token)."""
    if isinstance(err, KeyNotFoundError):
        return not_found(resource.group, resource.resource, "")
    if isinstance(err, (UnavailableError, RequestTimeoutError)):
        return _server_timeout(resource, "list")
    if isinstance(err, ExpiredError):
        return expired(CONTINUE_EXPIRED_MESSAGE if paging else LIST_EXPIRED_MESSAGE)
    return _unknown(err)


def interpret_create_error(err: StorageError, resource: GroupResource, name: str) -> StatusError:
    """InterpretCreateError: KeyExists -> AlreadyExists 409, Unreachable -> ServerTimeout."""
    if isinstance(err, KeyExistsError):
        return already_exists(resource.group, resource.resource, name)
    if isinstance(err, UnavailableError):
        return _server_timeout(resource, "create")
    return _unknown(err)


def interpret_update_error(err: StorageError, resource: GroupResource, name: str) -> StatusError:
    """InterpretUpdateError: Conflict/Exists/InvalidObj -> Conflict 409, NotFound 404.

    A lost compare-and-swap (ConflictError) reads as upstream's registry
    words its optimistic-lock failure ("the object has been modified; ..."):
    here the storage's CAS *is* that lock. Preconditions and the rest carry
    the StorageError text, as upstream's NewConflict(..., err) does.
    """
    if isinstance(err, ConflictError):
        return conflict_modified(resource.group, resource.resource, name)
    if isinstance(err, (KeyExistsError, InvalidObjError)):
        return conflict(resource.group, resource.resource, name, str(err))
    if isinstance(err, UnavailableError):
        return _server_timeout(resource, "update")
    if isinstance(err, KeyNotFoundError):
        return not_found(resource.group, resource.resource, name)
    return _unknown(err)


def interpret_delete_error(err: StorageError, resource: GroupResource, name: str) -> StatusError:
    """InterpretDeleteError: NotFound 404, Conflict/Exists/InvalidObj -> Conflict 409."""
    if isinstance(err, KeyNotFoundError):
        return not_found(resource.group, resource.resource, name)
    if isinstance(err, UnavailableError):
        return _server_timeout(resource, "delete")
    if isinstance(err, ConflictError):
        return conflict_modified(resource.group, resource.resource, name)
    if isinstance(err, (KeyExistsError, InvalidObjError)):
        return conflict(resource.group, resource.resource, name, str(err))
    return _unknown(err)


def interpret_watch_error(err: StorageError, resource: GroupResource, name: str = "") -> StatusError:
    """InterpretWatchError plus etcd3's interpretWatchError: a compacted start is 410 Expired."""
    if isinstance(err, ExpiredError):
        return expired(WATCH_EXPIRED_MESSAGE)
    if isinstance(err, UnavailableError):
        return _server_timeout(resource, "watch")
    return _unknown(err)
