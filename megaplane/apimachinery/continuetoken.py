"""Continue tokens of paginated lists, as k8s.io/apiserver/pkg/storage encodes them (encodeContinue).

A token is base64url JSON {"v": "meta.k8s.io/v1", "rv": <list revision>,
"start": <next key relative to the collection prefix>}, so any server of
the same storage can continue a list another one started.
"""

from __future__ import annotations

import base64
import posixpath

import orjson

from megaplane.apimachinery import errors

__all__ = ["encode_continue", "decode_continue", "continue_expired"]


_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - "
    "objects that were created, modified, or deleted between the time the first chunk was returned and now "
    "may show up in the list."
)


def encode_continue(next_key: bytes, prefix: bytes, revision: int) -> str:
    start = next_key[len(prefix) :].decode("utf-8", "surrogateescape")
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def decode_continue(token: str, prefix: bytes) -> tuple[bytes, int]:
    """(start key, revision) of a continue token; 400 with storage's wording when it is not one of ours."""

    def invalid(why: str) -> errors.StatusError:
        return errors.bad_request(f"invalid continue token: continue key is not valid: {why}")

    bad = next((i for i, c in enumerate(token) if c not in _B64URL), None)
    if bad is None and len(token) % 4 == 1:
        bad = len(token) - 1
    if bad is not None:
        raise invalid(f"illegal base64 data at input byte {bad}")
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise invalid(str(exc)) from None
    if not isinstance(data, dict) or data.get("v") != "meta.k8s.io/v1":
        version = data.get("v", "") if isinstance(data, dict) else ""
        raise invalid(f'server does not recognize this encoded version "{version}"')
    rev, start = data.get("rv"), data.get("start")
    if not isinstance(rev, int) or rev <= 0:
        raise invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if not isinstance(start, str) or not start:
        raise invalid("encoded start key empty (version meta.k8s.io/v1)")
    key = start if start.startswith("/") else "/" + start
    if posixpath.normpath(key) != key or key.startswith("//"):
        raise invalid(start)  # no climbing out of the collection's prefix
    return prefix + key[1:].encode("utf-8", "surrogateescape"), rev


def continue_expired() -> errors.StatusError:
    return errors.expired(_EXPIRED)
