"""The store's error vocabulary: etcd's own errors, with etcd's gRPC codes and messages.

Every error the store raises is a `StoreError` carrying the gRPC status code
name and the exact message etcd sends (api/v3rpc/rpctypes/error.go), so the
gRPC layer can pass it on unchanged and etcd clients branch on it as they
would against a real etcd. In-process callers catch the subclasses.
"""

from __future__ import annotations

__all__ = [
    "StoreError",
    "EmptyKeyError",
    "KeyNotFoundError",
    "ValueProvidedError",
    "LeaseProvidedError",
    "TooManyOpsError",
    "DuplicateKeyError",
    "CompactedError",
    "FutureRevisionError",
    "LeaseNotFoundError",
    "LeaseExistsError",
    "LeaseTTLTooLargeError",
    "RequestTooLargeError",
    "InvalidArgumentError",
    "UnsupportedError",
]


class StoreError(Exception):
    """Base of every error the store raises on bad input or state.

    `code` is the gRPC status code name (``"OUT_OF_RANGE"``...), `message`
    the text etcd sends. A StoreError always means nothing was changed.
    """

    code = "UNKNOWN"
    message = "etcdserver: unknown error"

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


class EmptyKeyError(StoreError):
    """A Range, Put, DeleteRange or Compare was given an empty key."""

    code = "INVALID_ARGUMENT"
    message = "etcdserver: key is not provided"


class KeyNotFoundError(StoreError):
    """Put with ignore_value / ignore_lease on a missing key, or an empty txn op."""

    code = "INVALID_ARGUMENT"
    message = "etcdserver: key not found"


class ValueProvidedError(StoreError):
    """Put with ignore_value set also carried a value."""

    code = "INVALID_ARGUMENT"
    message = "etcdserver: value is provided"


class LeaseProvidedError(StoreError):
    """Put with ignore_lease set also carried a lease."""

    code = "INVALID_ARGUMENT"
    message = "etcdserver: lease is provided"


class TooManyOpsError(StoreError):
    """A txn has more compares or ops per branch than --max-txn-ops."""

    code = "INVALID_ARGUMENT"
    message = "etcdserver: too many operations in txn request"


class DuplicateKeyError(StoreError):
    """A txn branch writes the same key twice (put/put or put/delete overlap)."""

    code = "INVALID_ARGUMENT"
    message = "etcdserver: duplicate key given in txn request"


class CompactedError(StoreError):
    """A read or watch asked for a revision below the compaction floor."""

    code = "OUT_OF_RANGE"
    message = "etcdserver: mvcc: required revision has been compacted"


class FutureRevisionError(StoreError):
    """A read or compaction named a revision above the current one."""

    code = "OUT_OF_RANGE"
    message = "etcdserver: mvcc: required revision is a future revision"


class LeaseNotFoundError(StoreError):
    """A put, revoke or keep-alive named a lease that does not exist."""

    code = "NOT_FOUND"
    message = "etcdserver: requested lease not found"


class LeaseExistsError(StoreError):
    """A grant asked for a lease id that is already in use."""

    code = "FAILED_PRECONDITION"
    message = "etcdserver: lease already exists"


class LeaseTTLTooLargeError(StoreError):
    """A grant asked for a TTL above etcd's MaxLeaseTTL (9,000,000,000 s)."""

    code = "OUT_OF_RANGE"
    message = "etcdserver: too large lease TTL"


class RequestTooLargeError(StoreError):
    """A request is larger than --max-request-bytes."""

    code = "INVALID_ARGUMENT"
    message = "etcdserver: request is too large"


class InvalidArgumentError(StoreError):
    """Any other malformed request; the message says what is wrong."""

    code = "INVALID_ARGUMENT"


class UnsupportedError(StoreError):
    """A request field or shape the store does not implement; named in the message."""

    code = "UNIMPLEMENTED"
