"""Storage errors print as upstream's and translate to upstream's Status codes, reasons and messages."""

from __future__ import annotations

import pytest

from megaplane.storage import (
    ConflictError,
    ExpiredError,
    GroupResource,
    InternalError,
    KeyExistsError,
    KeyNotFoundError,
    PreconditionFailedError,
    RequestTooLargeError,
    StoredObject,
    TooLargeResourceVersionError,
    UnavailableError,
    interpret_create_error,
    interpret_delete_error,
    interpret_get_error,
    interpret_list_error,
    interpret_update_error,
    interpret_watch_error,
)

PODS = GroupResource("", "pods")
DEPLOYMENTS = GroupResource("apps", "deployments")
KEY = b"/registry/pods/default/x"


def test_storage_error_text_is_upstreams() -> None:
    err = PreconditionFailedError(KEY, 0, "Precondition failed: UID in precondition: a, UID in object meta: b")
    assert str(err) == (
        "StorageError: invalid object, Code: 4, Key: /registry/pods/default/x, ResourceVersion: 0, "
        "AdditionalErrorMsg: Precondition failed: UID in precondition: a, UID in object meta: b"
    )
    assert str(KeyNotFoundError(KEY)).endswith("AdditionalErrorMsg: <nil>")


def test_not_found_per_verb() -> None:
    for interpret in (interpret_get_error, interpret_update_error, interpret_delete_error):
        e = interpret(KeyNotFoundError(KEY), PODS, "x")
        assert (e.code, e.reason, e.message) == (404, "NotFound", 'pods "x" not found')
    e = interpret_list_error(KeyNotFoundError(KEY), DEPLOYMENTS)
    assert (e.code, e.message) == (404, 'deployments.apps "" not found')


def test_create_exists() -> None:
    e = interpret_create_error(KeyExistsError(KEY), DEPLOYMENTS, "d")
    assert (e.code, e.reason, e.message) == (409, "AlreadyExists", 'deployments.apps "d" already exists')


def test_update_conflicts() -> None:
    current = StoredObject(KEY, b"{}", 5, 1)
    e = interpret_update_error(ConflictError(KEY, 4, current), PODS, "x")
    assert (e.code, e.reason) == (409, "Conflict")
    assert e.message == (
        'Operation cannot be fulfilled on pods "x": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    pre = PreconditionFailedError(KEY, 0, "Precondition failed: UID in precondition: a, UID in object meta: b")
    for interpret in (interpret_update_error, interpret_delete_error):
        e = interpret(pre, PODS, "x")
        assert e.code == 409 and e.message == f'Operation cannot be fulfilled on pods "x": {pre}'


@pytest.mark.parametrize(
    "interpret, verb",
    [(interpret_get_error, "get"), (interpret_create_error, "create"), (interpret_update_error, "update"),
     (interpret_delete_error, "delete")],
)
def test_unavailable_is_server_timeout(interpret, verb) -> None:  # type: ignore[no-untyped-def]
    e = interpret(UnavailableError(KEY), DEPLOYMENTS, "d")
    assert (e.code, e.reason) == (500, "ServerTimeout")
    assert e.message == f"The {verb} operation against deployments.apps could not be completed at this time, please try again."
    assert e.details == {"name": verb, "group": "apps", "kind": "deployments", "retryAfterSeconds": 2}
    assert e.headers == {"Retry-After": "2"}


def test_expired_per_verb() -> None:
    err = ExpiredError(KEY, 3, 10)
    assert interpret_list_error(err, PODS).message == "The resourceVersion for the provided list is too old."
    assert interpret_list_error(err, PODS, paging=True).message.startswith("The provided continue parameter is too old")
    e = interpret_watch_error(err, PODS)
    assert (e.code, e.reason, e.message) == (410, "Expired", "The resourceVersion for the provided watch is too old.")
    assert interpret_get_error(err, PODS, "x").code == 410


def test_too_large_resource_version() -> None:
    e = interpret_list_error(TooLargeResourceVersionError(KEY, 100, 7), PODS)
    assert (e.code, e.reason, e.message) == (504, "Timeout", "Timeout: Too large resource version: 100, current: 7")
    assert e.details is not None and e.details["causes"][0]["reason"] == "ResourceVersionTooLarge"


def test_the_rest_is_internal() -> None:
    e = interpret_get_error(InternalError(KEY, 0, "boom"), PODS, "x")
    assert (e.code, e.reason, e.message) == (500, "InternalError", "Internal error occurred: boom")
    e = interpret_create_error(RequestTooLargeError(KEY), PODS, "x")
    assert (e.code, e.message) == (500, "etcdserver: request is too large")
