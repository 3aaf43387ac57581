"""The storage seam's value types: what goes in (`Value`, `Preconditions`) and what comes out.

Apart from the `Storage` protocol (interface.py) so that errors can carry
objects (a ConflictError holds the current one) without an import cycle.
"""

from __future__ import annotations

from typing import Callable, Final, Literal, Optional, Union

import msgspec

__all__ = ["Value", "StoredObject", "ListResult", "EventType", "ADDED", "MODIFIED", "DELETED", "WatchEvent",
           "Preconditions"]

Value = Union[bytes, Callable[[int], bytes]]
"""An object to write: its served bytes, or a function of the revision it will be stored at."""


class StoredObject(msgspec.Struct, frozen=True, gc=False):
    """One key's value as served, with its revisions. Untracked by the GC: caches hold millions.

    For the result of `delete`, `revision` is the delete's revision and
    `data` the last state with that resourceVersion (upstream's Delete
    decodes the last state at the txn's revision).
    """

    key: bytes
    #: The served JSON bytes; metadata.resourceVersion == str(revision).
    data: bytes
    #: The mod revision (etcd's ModRevision): the object's resourceVersion.
    revision: int
    #: The revision that created this incarnation of the key.
    create_revision: int
    #: The storage lease the key is attached to (0: none), as etcd's KeyValue.Lease.
    lease: int = 0


class ListResult(msgspec.Struct, frozen=True, gc=False):
    """One page of a list, consistent at `revision`."""

    #: The objects in key order.
    items: list[StoredObject]
    #: The revision the page was read at; pass it to read the next page at the same revision.
    revision: int
    #: True when keys remain after this page (the limit cut it).
    more: bool
    #: How many keys remain after this page (upstream's remainingItemCount); 0 when not `more`.
    remaining: int
    #: Where the next page starts (last key + b"\0"), b"" when not `more`.
    next_key: bytes


EventType = Literal["ADDED", "MODIFIED", "DELETED"]
ADDED: Final = "ADDED"
MODIFIED: Final = "MODIFIED"
DELETED: Final = "DELETED"


class WatchEvent(msgspec.Struct, frozen=True, gc=False):
    """One change, typed as upstream's etcd3 watcher types it (event.go).

    ADDED when the put created the key (create_revision == revision),
    MODIFIED for any other put, DELETED for a delete. `value` is the object
    after the change; for DELETED it is the last state with resourceVersion
    set to the delete's revision, as upstream's watcher serves it.
    `prev_value` is the state before (None for ADDED).
    """

    type: EventType
    key: bytes
    value: bytes
    prev_value: Optional[bytes]
    revision: int
    create_revision: int


class Preconditions(msgspec.Struct, frozen=True):
    """storage.Preconditions: the write applies only to this uid / resourceVersion (None: any)."""

    uid: Optional[str] = None
    resource_version: Optional[str] = None
