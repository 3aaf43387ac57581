"""Request bodies and options: decoding them as kube-apiserver's handlers do, with their errors.

A create or update body (JSON, YAML or Kubernetes protobuf) must be an
object of the URL's kind; what is not gets the decoder's 400 with a
summary of the body. DeleteOptions and dryRun are checked here too, so a
malformed option is refused before anything is touched.

Nesting is bounded: kube-apiserver's JSON and YAML decoders refuse bodies
deeper than 10,000 levels; megaplane refuses them past `MAX_DEPTH`, because
orjson encodes at most 254 levels and the defaulting and validation walkers
recurse in Python. Everything decoded here is at most `MAX_DEPTH` deep, so
no later step can hit either limit (a 500) on a body that was accepted.
Checking costs nothing for a typical body: a body with fewer opening
brackets than the limit cannot be that deep, and only a body with more is
walked.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

import orjson
import yaml

from megaplane.apimachinery import errors
from megaplane.apimachinery.listoptions import go_parse_int
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.scheme import REGISTERED_KINDS, check_kind
from megaplane.apiserver.http.transport import Request
from megaplane.apiserver.http.yamljson import YAMLBodyError, yaml_to_json_value
from megaplane.apiserver.patch import go_syntax_error
from megaplane.apiserver.registry.options import dry_run
from megaplane.apiserver.schema import protobuf

__all__ = ["MAX_DEPTH", "decode_body", "check_depth", "nesting_error", "check_kind", "content_type", "dry_run", "delete_options", "REGISTERED_KINDS"]


def content_type(req: Request) -> str:
    return req.headers.get("content-type", "application/json").split(";")[0].strip().lower()


# What encoding/json names the type the version/kind sniffing decodes into, in its unmarshal errors.
_FIND_KIND = 'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
_GO_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "bool"}
_YAML_PROBLEMS = {"mapping values are not allowed here": "mapping values are not allowed in this context"}


def _summary(body: bytes) -> str:
    """handlers.summarizeData(body, 30): how upstream shows a body it could not decode."""
    if not body:
        return "<empty>"
    if body[:1] == b"{":
        return body[:30].decode("utf-8", "replace") + (" ..." if len(body) > 30 else "")
    return body[:30].hex() + (" ..." if len(body) > 30 else "")


def _unrecognized(resource: Resource, why: str, body: bytes) -> errors.StatusError:
    return errors.bad_request(
        f"the object provided is unrecognized (must be of type {resource.kind}): {why} ({_summary(body)})"
    )


def _json_error(body: bytes) -> str:
    return "couldn't get version/kind; json parse error: " + (go_syntax_error(body) or "unexpected end of JSON input")


def _not_an_object(obj: Any) -> str:
    go_type = _GO_JSON_TYPES.get(type(obj), "value")
    return f"couldn't get version/kind; json parse error: json: cannot unmarshal {go_type} into Go value of type {_FIND_KIND}"


#: Deepest nesting a body may have (upstream: 10,000, encoding/json's maxNestingDepth and goyaml's limit).
MAX_DEPTH = 200
# A JSON string (skipped whole) or a bracket: enough to follow nesting through a valid JSON prefix.
_JSON_NESTING_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _too_deep(obj: Any, limit: int) -> Optional[str]:
    """The bracket ('{' or '[') that opens level limit+1 of `obj`, or None if it is not that deep."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if type(value) is dict else value
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                if depth == limit:
                    return "{" if kind is dict else "["
                stack.append((child, depth + 1))
    return None


def _deep_bracket(body: bytes, limit: int) -> str:
    """The bracket opening level limit+1 of a JSON text (orjson stops at 1024 levels, before any walk)."""
    depth = 0
    for match in _JSON_NESTING_TOKEN.finditer(body):
        token = match.group()
        if token in (b"{", b"["):
            depth += 1
            if depth > limit:
                return token.decode()
        elif token in (b"}", b"]"):
            depth -= 1
    return "["


def nesting_error(bracket: str) -> str:
    """encoding/json's SyntaxError for a value nested past the limit (scanner.go pushParseState)."""
    return f"invalid character '{bracket}' exceeded max depth"


def check_depth(obj: Any, body: bytes) -> Optional[str]:
    """The bracket past MAX_DEPTH in a decoded JSON body, or None; O(1) unless the body has that many brackets."""
    if body.count(b"{") + body.count(b"[") <= MAX_DEPTH:
        return None
    if type(obj) is not dict and type(obj) is not list:
        return None
    return _too_deep(obj, MAX_DEPTH)


def decode_body(req: Request, resource: Resource) -> Dict[str, Any]:
    """The request body as an object; 400 with upstream's wording (and a summary of the body) otherwise."""
    ctype = content_type(req)
    body = req.body
    if ctype in ("application/json", "", "*/*") or ctype.endswith("+json"):
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if "depth limit exceeded" in str(exc):
                why = "couldn't get version/kind; json parse error: " + nesting_error(_deep_bracket(body, MAX_DEPTH))
                raise _unrecognized(resource, why, body) from None
            raise _unrecognized(resource, _json_error(body), body) from None
        bracket = check_depth(obj, body)
        if bracket is not None:
            raise _unrecognized(resource, "couldn't get version/kind; json parse error: " + nesting_error(bracket), body)
    elif ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
        try:
            obj = yaml_to_json_value(body, MAX_DEPTH)
        except YAMLBodyError as exc:
            raise _unrecognized(resource, str(exc), body) from None
        except yaml.MarkedYAMLError as exc:
            problem = _YAML_PROBLEMS.get(exc.problem or "", exc.problem or str(exc))
            line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 0
            raise _unrecognized(resource, f"yaml: line {line}: {problem}", body) from None
        except yaml.YAMLError as exc:
            raise _unrecognized(resource, f"yaml: {exc}", body) from None
    elif ctype == protobuf.CONTENT_TYPE:
        try:
            obj = protobuf.decode(body)
        except protobuf.UnknownKindError as exc:
            raise errors.StatusError(415, "UnsupportedMediaType", str(exc)) from None
        except protobuf.ProtobufError as exc:
            raise _unrecognized(resource, str(exc), body) from None
    else:
        raise errors.unsupported_media_type(ctype)
    if not isinstance(obj, dict):
        raise _unrecognized(resource, _not_an_object(obj), body)
    return obj


def delete_options(req: Request, q: Dict[str, str]) -> Dict[str, Any]:
    """DeleteOptions from the body and the query, checked for type."""
    return delete_options_from(req.body, q)


def delete_options_from(body: bytes, q: Dict[str, str]) -> Dict[str, Any]:
    """DeleteOptions from a body (JSON DeleteOptions, or empty) and query parameters."""
    opts: Dict[str, Any] = {}
    if body:
        try:
            opts = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise errors.bad_request(
                "the object provided is unrecognized (must be of type DeleteOptions): "
                f"couldn't get version/kind; json parse error: {go_syntax_error(body) or 'unexpected end of JSON input'}"
            ) from None
        if not isinstance(opts, dict):
            raise errors.bad_request("the object provided is unrecognized (must be of type DeleteOptions)")
    if "gracePeriodSeconds" in q:
        opts["gracePeriodSeconds"] = go_parse_int(q["gracePeriodSeconds"])
    if "propagationPolicy" in q:
        opts["propagationPolicy"] = q["propagationPolicy"]
    if "orphanDependents" in q:
        opts["orphanDependents"] = q["orphanDependents"] in ("true", "1", "True")
    if "dryRun" in q:
        opts["dryRun"] = [q["dryRun"]]
    grace = opts.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise errors.bad_request(
            "json: cannot unmarshal value into Go struct field DeleteOptions.gracePeriodSeconds of type int64")
    pre = opts.get("preconditions")
    if pre is not None and not isinstance(pre, dict):
        raise errors.bad_request("json: cannot unmarshal value into Go struct field DeleteOptions.preconditions")
    opts["dryRun"] = dry_run(opts.get("dryRun"), "DeleteOptions")
    return opts


