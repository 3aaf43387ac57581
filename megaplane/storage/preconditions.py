"""Checking `Preconditions` against stored bytes, shared by every backend (Preconditions.Check).

Decodes only metadata.uid (msgspec skips everything else); the
resourceVersion of a stored object is its revision, so it needs no decode.
"""

from __future__ import annotations

from typing import Optional

import msgspec

from .errors import CorruptObjError, PreconditionFailedError
from .interface import Preconditions, StoredObject

__all__ = ["check_preconditions"]


class _Meta(msgspec.Struct):
    uid: str = ""


class _Object(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


_decode = msgspec.json.Decoder(_Object).decode


def check_preconditions(preconditions: Optional[Preconditions], obj: StoredObject) -> None:
    """Raise PreconditionFailedError (upstream's wording) if `obj` does not match."""
    if preconditions is None:
        return
    if preconditions.uid is not None:
        try:
            uid = _decode(obj.data).metadata.uid
        except msgspec.DecodeError as e:
            raise CorruptObjError(obj.key, 0, str(e)) from None
        if preconditions.uid != uid:
            raise PreconditionFailedError(
                obj.key, 0, f"Precondition failed: UID in precondition: {preconditions.uid}, UID in object meta: {uid}"
            )
    if preconditions.resource_version is not None:
        rv = str(obj.revision)
        if preconditions.resource_version != rv:
            raise PreconditionFailedError(
                obj.key,
                0,
                "Precondition failed: ResourceVersion in precondition: "
                f"{preconditions.resource_version}, ResourceVersion in object meta: {rv}",
            )
