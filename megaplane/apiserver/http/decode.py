"""Request bodies and options: decoding them as kube-apiserver's handlers do, with their errors.

A create or update body (JSON, YAML or Kubernetes protobuf) must be an
object of the URL's kind; what is not gets the decoder's 400 with a
summary of the body. DeleteOptions and dryRun are checked here too, so a
malformed option is refused before anything is touched.
"""

from __future__ import annotations

from typing import Any, Dict

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.listoptions import go_parse_int
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.scheme import REGISTERED_KINDS, check_kind
from megaplane.apiserver.http.transport import Request
from megaplane.apiserver.patch import go_syntax_error
from megaplane.apiserver.schema import protobuf

__all__ = ["decode_body", "check_kind", "content_type", "dry_run", "delete_options", "REGISTERED_KINDS"]


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


def decode_body(req: Request, resource: Resource) -> Dict[str, Any]:
    """The request body as an object; 400 with upstream's wording (and a summary of the body) otherwise."""
    ctype = content_type(req)
    body = req.body
    if ctype in ("application/json", "", "*/*") or ctype.endswith("+json"):
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _unrecognized(resource, _json_error(body), body) from None
    elif ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
        import yaml

        try:
            obj = yaml.safe_load(body)
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


def dry_run(values: Any, options_kind: str) -> bool:
    """ValidateDryRun: dryRun may only be "All"; 422 on the verb's options otherwise."""
    if not values:
        return False
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or any(v != "All" for v in values):
        shown = "[]string{" + ", ".join(f'"{v}"' for v in values) + "}" if isinstance(values, list) else repr(values)
        raise errors.invalid("meta.k8s.io", options_kind, "", [
            field_error("", "dryRun", None, 'supported values: "All"', "FieldValueNotSupported", shown=shown)])
    return True


def delete_options(req: Request, q: Dict[str, str]) -> Dict[str, Any]:
    """DeleteOptions from the body and the query, checked for type."""
    opts: Dict[str, Any] = {}
    if req.body:
        try:
            opts = orjson.loads(req.body)
        except orjson.JSONDecodeError:
            raise errors.bad_request(
                "the object provided is unrecognized (must be of type DeleteOptions): "
                f"couldn't get version/kind; json parse error: {go_syntax_error(req.body) or 'unexpected end of JSON input'}"
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


