"""Typed errors: chosen by reason then code, from real megaplane answers and from bare bodies."""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import orjson
import pytest

from megaplane.apimachinery import errors as status
from megaplane.client import (
    AlreadyExistsError,
    BadRequestError,
    Client,
    ConflictError,
    ExpiredError,
    GoneError,
    HTTPTransport,
    InternalError,
    InvalidError,
    NotFoundError,
    ServerTimeoutError,
    StatusError,
    TooManyRequestsError,
    error_from_response,
)
from tests.api.conftest import Cluster


@pytest.mark.parametrize(
    "err, cls",
    [
        (status.not_found("apps", "deployments", "x"), NotFoundError),
        (status.already_exists("", "pods", "x"), AlreadyExistsError),
        (status.conflict_modified("", "pods", "x"), ConflictError),
        (status.invalid("", "Pod", "x", [status.field_error("Pod", "spec", 1, "bad")]), InvalidError),
        (status.expired("too old resource version: 1 (5)"), ExpiredError),
        (status.gone("gone"), GoneError),
        (status.too_large_resource_version(10, 5), ServerTimeoutError),
        (status.internal("boom"), InternalError),
        (status.bad_request("bad"), BadRequestError),
    ],
)
def test_class_by_reason(err: StatusError, cls: type) -> None:
    got = error_from_response(err.code, err.headers, err.body())
    assert type(got) is cls
    assert (got.code, got.reason, got.message, got.details) == (err.code, err.reason, err.message, err.details)


def test_retry_after_from_header_or_details() -> None:
    err = status.too_many_requests(7)
    got = error_from_response(429, {"Retry-After": "3"}, err.body())
    assert isinstance(got, TooManyRequestsError) and got.retry_after == 3.0
    assert isinstance(got, TooManyRequestsError)
    no_header = error_from_response(429, {}, err.body())
    assert isinstance(no_header, TooManyRequestsError) and no_header.retry_after == 7.0


def test_class_by_code_without_a_status_body() -> None:
    got = error_from_response(404, {}, b"404 page not found\n")
    assert isinstance(got, NotFoundError) and got.reason == "NotFound" and got.message == "404 page not found"
    assert isinstance(error_from_response(502, {}, b""), InternalError)
    unknown_reason = orjson.dumps({"kind": "Status", "code": 409, "reason": "SomethingNew", "message": "m"})
    assert isinstance(error_from_response(409, {}, unknown_reason), ConflictError)


def test_errors_from_a_real_server(cluster: Cluster) -> None:
    async def main() -> Dict[str, Any]:
        seen: Dict[str, Any] = {}
        async with Client(HTTPTransport(cluster.url, qps=0)) as client:
            cms = client.resource("configmaps")
            try:
                await cms.get("missing", "default")
            except NotFoundError as exc:
                seen["404"] = exc
            created = await cms.create({"metadata": {"name": "errs"}, "data": {"a": "1"}}, "default")
            try:
                await cms.create({"metadata": {"name": "errs"}}, "default")
            except AlreadyExistsError as exc:
                seen["exists"] = exc
            await cms.update({**created, "data": {"a": "2"}})
            try:
                await cms.update({**created, "data": {"a": "3"}})  # the resourceVersion is stale now
            except ConflictError as exc:
                seen["conflict"] = exc
            try:
                await cms.create({"metadata": {"name": "Not_A_Name"}}, "default")
            except InvalidError as exc:
                seen["invalid"] = exc
            try:
                await cms.list("default", label_selector="a in (")
            except BadRequestError as exc:
                seen["bad"] = exc
            await cms.delete("errs", "default")
        return seen

    seen = asyncio.run(main())
    assert seen["404"].code == 404 and seen["404"].message == 'configmaps "missing" not found'
    assert seen["exists"].code == 409 and seen["exists"].reason == "AlreadyExists"
    assert seen["conflict"].code == 409 and seen["conflict"].reason == "Conflict"
    assert "the object has been modified" in seen["conflict"].message
    assert seen["invalid"].code == 422 and seen["invalid"].details["causes"][0]["field"] == "metadata.name"
    assert seen["bad"].code == 400
