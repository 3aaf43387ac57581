"""YAML request bodies to JSON-compatible values, as sigs.k8s.io/yaml (YAMLToJSON over goyaml.v2) makes them.

kube-apiserver turns a YAML body into JSON before decoding it, and the
YAML decoder it uses carries two guards this module reproduces before a
single Python object is built:

- alias expansion: goyaml counts every node it decodes, and every node
  decoded through an alias; once aliases make up more than the allowed
  share of the document (99 % up to 400,000 nodes, falling to 10 % at
  4,000,000) it stops with "document contains excessive aliasing". A
  "billion laughs" body of a few hundred bytes is refused after reading
  those bytes, not after building its billions of nodes.
- nesting: goyaml refuses documents deeper than 10,000 ("exceeded max depth
  of 10000"); megaplane's ceiling is `MAX_DEPTH` (see decode.py, shared with
  JSON bodies).

Both are checked on the parser's event stream (libyaml's parser is a state
machine, so a deep document costs no recursion), counting each anchored
node's expanded size once, so the check is linear in the body.

What goyaml makes of YAML that has no JSON form is reproduced too, so such
a body is either converted as upstream converts it or refused with a 400,
never a 500: timestamps stay the strings they were written as, `!!binary`
is its decoded bytes as a string, `!!set` a mapping to nulls, `!!omap` and
`!!pairs` sequences of one-entry mappings, integers past 64 bits floats; non-string keys become strings
(ints, bools and floats as Go formats them) or fail as upstream
("unsupported map key"); NaN and infinities fail as Go's json.Marshal does.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any, Dict, List

import yaml

__all__ = ["YAMLBodyError", "yaml_to_json_value"]

# goyaml.v2 decode.go: the alias budget.
_ALIAS_RATIO_RANGE_LOW = 400_000
_ALIAS_RATIO_RANGE_HIGH = 4_000_000


class YAMLBodyError(ValueError):
    """A YAML body upstream refuses: the message is the error text YAMLToJSON returns."""


def _allowed_alias_ratio(decoded: int) -> float:
    if decoded <= _ALIAS_RATIO_RANGE_LOW:
        return 0.99
    if decoded >= _ALIAS_RATIO_RANGE_HIGH:
        return 0.10
    span = _ALIAS_RATIO_RANGE_HIGH - _ALIAS_RATIO_RANGE_LOW
    return 0.99 - 0.89 * ((decoded - _ALIAS_RATIO_RANGE_LOW) / span)


_LOADER_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_events(body: bytes, max_depth: int) -> bool:
    """Refuse excessive aliasing and nesting from the event stream; True if the document uses aliases.

    goyaml counts a node when it starts decoding it (pre-order) and, inside
    an alias, counts every node of the anchored subtree again, as alias
    nodes. Within one alias expansion the alias share only grows while the
    allowed share only shrinks, so checking at the end of each expansion
    finds every document goyaml refuses.
    """
    sizes: Dict[str, int] = {}  # anchor -> nodes in its subtree, aliases expanded
    stack: List[List[Any]] = []  # open collections: [anchor, nodes so far]
    decoded = aliased = 0
    uses_aliases = False
    for event in yaml.parse(body, Loader=_LOADER_BASE):
        if isinstance(event, yaml.AliasEvent):
            uses_aliases = True
            size = 1 + sizes.get(event.anchor or "", 0)
            decoded += size
            aliased += size - 1
            if stack:
                stack[-1][1] += size
            if aliased > 100 and decoded > 1000 and aliased / decoded > _allowed_alias_ratio(decoded):
                raise YAMLBodyError("yaml: document contains excessive aliasing")
        elif isinstance(event, yaml.ScalarEvent):
            decoded += 1
            if event.anchor:
                sizes[event.anchor] = 1
            if stack:
                stack[-1][1] += 1
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            decoded += 1
            stack.append([event.anchor, 1])
            if len(stack) > max_depth:
                raise YAMLBodyError(f"yaml: exceeded max depth of {max_depth}")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, size = stack.pop()
            if anchor:
                sizes[anchor] = size
            if stack:
                stack[-1][1] += size
    return uses_aliases


def _go_float_key(value: float) -> str:
    """strconv.FormatFloat(v, 'g', -1, 32), as sigs.k8s.io/yaml turns a float map key into a string."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    import numpy

    single = numpy.float32(value)
    scientific = numpy.format_float_scientific(single, unique=True, trim="-", exp_digits=2)
    mantissa, _, exponent = scientific.partition("e")
    exp = int(exponent)
    if exp < -4 or exp >= 6:  # 'g' with the shortest precision switches to %e outside [1e-4, 1e6)
        return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return numpy.format_float_positional(single, unique=True, trim="-")


def _json_key(key: Any, value: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return _go_float_key(key)
    go_type = {type(None): "%!s(<nil>)"}.get(type(key), type(key).__name__)
    raise YAMLBodyError(f"unsupported map key of type: {go_type}, key: {key!r}, value: {value!r}")


class _BodyLoader(_LOADER_BASE):  # type: ignore[misc, valid-type]
    """SafeLoader whose values are what goyaml gives an interface{}: JSON-compatible throughout."""

    def construct_yaml_timestamp(self, node: Any) -> Any:
        return self.construct_scalar(node)

    def construct_yaml_binary(self, node: Any) -> Any:
        text = self.construct_scalar(node).replace("\n", "").replace("\r", "")  # as Go's base64 skips them
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise YAMLBodyError("yaml: !!binary value contains invalid base64 data") from None
        return raw.decode("utf-8", "replace")  # Go's json.Marshal writes invalid UTF-8 as U+FFFD

    def construct_yaml_float(self, node: Any) -> Any:
        value = super().construct_yaml_float(node)
        if math.isnan(value) or math.isinf(value):
            shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
            raise YAMLBodyError(f"json: unsupported value: {shown}")
        return value

    def construct_yaml_set(self, node: Any) -> Any:
        data: Dict[str, Any] = {}
        yield data
        for key in self.construct_mapping(node):
            data[_json_key(key, None)] = None

    def construct_yaml_omap(self, node: Any) -> Any:
        data: List[Any] = []
        yield data
        for pair in self.construct_sequence(node, deep=True):
            if isinstance(pair, dict):
                data.append(pair)
            else:
                data.append({_json_key(pair[0], pair[1]): pair[1]})

    def construct_yaml_map(self, node: Any) -> Any:
        data: Dict[str, Any] = {}
        yield data
        for key, value in self.construct_mapping(node).items():
            data[_json_key(key, value)] = value

    def construct_yaml_int(self, node: Any) -> Any:
        value = super().construct_yaml_int(node)
        if not -(1 << 63) <= value < (1 << 64):
            return float(value)  # goyaml resolves an integer past int64/uint64 as a float64
        return value


_BodyLoader.add_constructor("tag:yaml.org,2002:timestamp", _BodyLoader.construct_yaml_timestamp)
_BodyLoader.add_constructor("tag:yaml.org,2002:binary", _BodyLoader.construct_yaml_binary)
_BodyLoader.add_constructor("tag:yaml.org,2002:float", _BodyLoader.construct_yaml_float)
_BodyLoader.add_constructor("tag:yaml.org,2002:int", _BodyLoader.construct_yaml_int)
_BodyLoader.add_constructor("tag:yaml.org,2002:set", _BodyLoader.construct_yaml_set)
_BodyLoader.add_constructor("tag:yaml.org,2002:omap", _BodyLoader.construct_yaml_omap)
_BodyLoader.add_constructor("tag:yaml.org,2002:pairs", _BodyLoader.construct_yaml_omap)
_BodyLoader.add_constructor("tag:yaml.org,2002:map", _BodyLoader.construct_yaml_map)


def yaml_to_json_value(body: bytes, max_depth: int) -> Any:
    """The body's single document as JSON-compatible values.

    Raises YAMLBodyError (upstream's message) for what upstream refuses, and
    yaml.YAMLError for what the YAML parser refuses.
    """
    try:
        uses_aliases = _check_events(body, max_depth)
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" in (exc.problem or ""):  # libyaml's own ceiling (1000) can be met first, while scanning ahead
            raise YAMLBodyError(f"yaml: exceeded max depth of {max_depth}") from None
        raise
    value = yaml.load(body, Loader=_BodyLoader)  # noqa: S506 - a SafeLoader subclass
    if uses_aliases:
        # An alias shares one Python object between places: give each place its own copy, as a
        # decoded JSON body would have (the alias budget above bounds the expanded size).
        import orjson

        value = orjson.loads(orjson.dumps(value))
    return value
