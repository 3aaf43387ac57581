"""set_resource_version: exact for every valid JSON object, whichever tier does the splice."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from megaplane.storage.versioner import _reencode, _scan, set_resource_version

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ["metadata", "resourceVersion", "{", "}", "[", "]", '"', ",", ":", "\\", '","metadata":{', '"resourceVersion":"']
)
_scalar = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | _text
_value = st.recursive(_scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(_text, c, max_size=4), max_leaves=12)
_meta = st.dictionaries(_text, _value, max_size=5).flatmap(
    lambda d: st.sampled_from([d, {**d, "resourceVersion": "7"}, {"resourceVersion": "7", **d}])
)


def _object(before: dict, meta: dict, after: dict) -> dict:
    out = {k: v for k, v in before.items() if k != "metadata"}
    out["metadata"] = meta
    out.update({k: v for k, v in after.items() if k != "metadata"})
    return out


_objects = st.builds(
    _object, st.dictionaries(_text, _value, max_size=4), _meta, st.dictionaries(_text, _value, max_size=4)
)


def _encode(obj: object, how: str) -> bytes:
    if how == "orjson":
        return orjson.dumps(obj)
    return json.dumps(obj, indent=1 if how == "pretty" else None, ensure_ascii=how == "ascii").encode()


def _expected(data: bytes, revision: int) -> object:
    obj = json.loads(data)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


@settings(max_examples=700, deadline=None)
@given(_objects, st.integers(1, 2**63), st.sampled_from(["orjson", "pretty", "ascii", "spaced"]))
def test_any_object_gets_the_revision(obj: dict, revision: int, how: str) -> None:
    data = _encode(obj, how)
    assert json.loads(set_resource_version(data, revision)) == _expected(data, revision)


@settings(max_examples=300, deadline=None)
@given(_objects, st.integers(1, 2**63))
def test_token_scan_alone_is_exact(obj: dict, revision: int) -> None:
    data = orjson.dumps(obj)
    out = _scan(data, b'"%d"' % revision)
    if out is not None:
        assert json.loads(out) == _expected(data, revision)


@pytest.mark.parametrize(
    "data, expected",
    [
        (b'{"metadata":{"name":"a","resourceVersion":"7"}}', b'{"metadata":{"name":"a","resourceVersion":"42"}}'),
        (b'{"metadata":{"name":"a"}}', b'{"metadata":{"resourceVersion":"42","name":"a"}}'),
        (b'{"metadata":{}}', b'{"metadata":{"resourceVersion":"42"}}'),
        (b'{"kind":"Pod","metadata":{"labels":{"a":"b"},"resourceVersion":"1"}}',
         b'{"kind":"Pod","metadata":{"labels":{"a":"b"},"resourceVersion":"42"}}'),
        # A nested metadata (a pod template's) before the top-level one is not taken for it.
        (b'{"spec":{"template":{"metadata":{"resourceVersion":"9"}}},"metadata":{"name":"d"}}',
         b'{"spec":{"template":{"metadata":{"resourceVersion":"9"}}},"metadata":{"resourceVersion":"42","name":"d"}}'),
        # Braces and keys inside strings are not structure.
        (b'{"note":"{\\"metadata\\":{","metadata":{"x":"\\"resourceVersion\\":\\"1\\""}}',
         b'{"note":"{\\"metadata\\":{","metadata":{"resourceVersion":"42","x":"\\"resourceVersion\\":\\"1\\""}}'),
        (b' { "metadata" : { } } ', b' { "metadata" : {"resourceVersion":"42" } } '),
    ],
)
def test_splice_keeps_every_other_byte(data: bytes, expected: bytes) -> None:
    assert set_resource_version(data, 42) == expected


def test_an_event_involved_object_keeps_its_own_resource_version() -> None:
    event = b'{"metadata":{"name":"e","resourceVersion":"5"},"involvedObject":{"resourceVersion":"3"}}'
    out = orjson.loads(set_resource_version(event, 42))
    assert out["metadata"]["resourceVersion"] == "42" and out["involvedObject"]["resourceVersion"] == "3"


def test_without_metadata_it_is_added() -> None:
    assert orjson.loads(set_resource_version(b'{"kind":"X"}', 3)) == {"kind": "X", "metadata": {"resourceVersion": "3"}}


def test_escaped_key_spelling_is_decoded() -> None:
    data = b'{"metadata":{"resource\\u0056ersion":"1"}}'
    assert orjson.loads(set_resource_version(data, 8)) == {"metadata": {"resourceVersion": "8"}}


def test_non_string_resource_version_is_replaced() -> None:
    assert orjson.loads(set_resource_version(b'{"metadata":{"resourceVersion":17}}', 8)) == {
        "metadata": {"resourceVersion": "8"}
    }


@pytest.mark.parametrize("data", [b"[1,2]", b'"s"', b"not json", b'{"metadata":[]}', b'{"metadata":null}', b'{"a":'])
def test_bad_input_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        set_resource_version(data, 1)


def test_revision_must_be_positive() -> None:
    with pytest.raises(ValueError):
        set_resource_version(b'{"metadata":{}}', 0)


def test_fallback_is_exact_too() -> None:
    data = b'{"a":{"b":[1,{"c":2}]},"metadata":{"name":"x"}}'
    assert orjson.loads(_reencode(data, 5)) == _expected(data, 5)
