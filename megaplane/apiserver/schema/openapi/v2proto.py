"""The protobuf form of GET /openapi/v2: Swagger 2.0 JSON -> gnostic's `openapi_v2.Document` bytes.

kube-apiserver answers ``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf``
(client-go's discovery ``OpenAPISchema``, hence kubectl's client-side validation and Helm's
install validation) with kube-openapi's ``ToProtoBinary(json)``: gnostic's compiler reads the JSON
document and fills a `Document` (pb/OpenAPIv2.proto, vendored), which is marshalled. `to_protobuf`
does the same from the served JSON bytes, so both forms describe one document, in its key order.

What gnostic's compiler does, and so what this does (openapiv2/OpenAPIv2.go, generated per message):

* a JSON key maps to the field of the same name in snake case (``basePath`` -> ``base_path``,
  ``$ref`` -> ``_ref``); any other key makes the object invalid, except ``x-*`` keys where the
  message has ``vendor_extension``: those become `NamedAny`s, in document order;
* `Any` (``default``, ``example``, ``enum`` items, vendor extensions) keeps the value as YAML text
  (``Any.yaml``; ``Any.value`` stays empty, no extension handlers are registered);
* ``type`` -> `TypeItem` (a string or a list of strings), ``items`` -> `ItemsItem` (one schema;
  gnostic refuses a list), ``additionalProperties`` -> `AdditionalPropertiesItem` (a schema or a
  boolean);
* maps of user-chosen keys (``definitions``, ``properties``, ``securityDefinitions`` ...) are
  messages of one repeated ``additional_properties`` of Named* pairs, in document order; ``paths``
  takes ``/...`` keys and ``responses`` takes ``NNN`` / ``default`` keys (plus ``x-*``);
* a ``oneof`` message (`Parameter`: body or not, `NonBodyParameter`: header/formData/query/path,
  `ParametersItem` / `ResponseValue`: the object or a `JsonReference`, `SchemaItem`: a `Schema` or a
  `FileSchema` ...) tries each variant in field order, and the *last* one that parses wins;
* a variant parses when it has its required keys, only its allowed keys, the right scalar types and
  the enumerated values gnostic checks (``in: query``, ``type: file`` ...), tabled below from the
  generated compiler;
* scalars: a string field also takes an integer (its text) and null (""), a double takes integers,
  an int64 only integers, a bool only booleans; a repeated string skips non-string items.

A document gnostic would refuse raises `InvalidDocument` (kube-openapi then answers 503); YAML
text is PyYAML's block style, not byte-identical to go-yaml's but the same value for the clients,
which unmarshal it (kube-openapi's proto models, sigs.k8s.io/yaml).
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional, Tuple

import yaml
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from megaplane.apiserver.schema.openapi.pb import OpenAPIv2_pb2 as pb

__all__ = ["InvalidDocument", "to_protobuf", "to_document"]


class InvalidDocument(ValueError):
    """The JSON is not a Swagger 2.0 document gnostic's compiler accepts."""


# requiredKeys of gnostic's generated New<Message> functions.
_REQUIRED: Dict[str, Tuple[str, ...]] = {
    "ApiKeySecurity": ("in", "name", "type"),
    "BasicAuthenticationSecurity": ("type",),
    "BodyParameter": ("in", "name", "schema"),
    "Document": ("info", "paths", "swagger"),
    "ExternalDocs": ("url",),
    "FileSchema": ("type",),
    "Header": ("type",),
    "Info": ("title", "version"),
    "JsonReference": ("$ref",),
    "License": ("name",),
    "Oauth2AccessCodeSecurity": ("authorizationUrl", "flow", "tokenUrl", "type"),
    "Oauth2ApplicationSecurity": ("flow", "tokenUrl", "type"),
    "Oauth2ImplicitSecurity": ("authorizationUrl", "flow", "type"),
    "Oauth2PasswordSecurity": ("flow", "tokenUrl", "type"),
    "Operation": ("responses",),
    "PathParameterSubSchema": ("required",),
    "Response": ("description",),
    "Tag": ("name",),
}
# NonBodyParameter checks these before trying its variants, but a variant that parses discards that error.

_PRIMITIVE_TYPES = ("string", "number", "integer", "boolean", "array")
_NON_BODY_TYPES = ("string", "number", "boolean", "integer", "array")
_COLLECTION = ("csv", "ssv", "tsv", "pipes")
_COLLECTION_MULTI = _COLLECTION + ("multi",)
# The values gnostic's compiler enumerates (StringArrayContainsValue), by message and JSON key.
_ENUMS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "ApiKeySecurity": {"type": ("apiKey",), "in": ("header", "query")},
    "BasicAuthenticationSecurity": {"type": ("basic",)},
    "BodyParameter": {"in": ("body",)},
    "Document": {"swagger": ("2.0",)},
    "FileSchema": {"type": ("file",)},
    "FormDataParameterSubSchema": {"in": ("formData",), "type": _NON_BODY_TYPES + ("file",),
                                   "collectionFormat": _COLLECTION_MULTI},
    "Header": {"type": _PRIMITIVE_TYPES, "collectionFormat": _COLLECTION},
    "HeaderParameterSubSchema": {"in": ("header",), "type": _NON_BODY_TYPES, "collectionFormat": _COLLECTION},
    "Oauth2AccessCodeSecurity": {"type": ("oauth2",), "flow": ("accessCode",)},
    "Oauth2ApplicationSecurity": {"type": ("oauth2",), "flow": ("application",)},
    "Oauth2ImplicitSecurity": {"type": ("oauth2",), "flow": ("implicit",)},
    "Oauth2PasswordSecurity": {"type": ("oauth2",), "flow": ("password",)},
    "PathParameterSubSchema": {"in": ("path",), "type": _NON_BODY_TYPES, "collectionFormat": _COLLECTION},
    "PrimitivesItems": {"type": _PRIMITIVE_TYPES, "collectionFormat": _COLLECTION},
    "QueryParameterSubSchema": {"in": ("query",), "type": _NON_BODY_TYPES, "collectionFormat": _COLLECTION_MULTI},
}

# Messages whose keys are patterns: (field taking the pattern's keys, pattern); x-* go to vendor_extension.
_PATTERNED: Dict[str, Tuple[str, "re.Pattern[str]"]] = {
    "Paths": ("path", re.compile(r"^/")),
    "Responses": ("response_code", re.compile(r"^([0-9]{3})$|^(default)$")),
}

_VENDOR = "vendor_extension"


def to_protobuf(body: bytes) -> bytes:
    """The marshalled `Document` of a Swagger 2.0 JSON document (kube-openapi's ToProtoBinary)."""
    return to_document(body).SerializeToString()  # type: ignore[no-any-return]


def to_document(body: bytes) -> Any:
    """The `openapi_v2.Document` message of a Swagger 2.0 JSON document."""
    try:
        root = json.loads(body)
    except ValueError as exc:
        raise InvalidDocument(f"$root: {exc}") from None
    return _Compiler().message(pb.Document.DESCRIPTOR, root, "$root")


def _json_key(field: FieldDescriptor) -> str:
    if field.name == "_ref":
        return "$ref"
    head, *rest = str(field.name).split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


class _Layout:
    """How one message reads from JSON, worked out once from its descriptor."""

    __slots__ = ("kind", "fields", "vendor", "check_keys", "named")

    def __init__(self, d: Descriptor) -> None:
        self.fields: Dict[str, FieldDescriptor] = {}
        self.vendor = _VENDOR in d.fields_by_name
        # JsonReference is the one message gnostic does not check the keys of.
        self.check_keys = d.name != "JsonReference"
        self.named: Optional[FieldDescriptor] = None
        names = [f.name for f in d.fields]
        if d.name in ("Any", "TypeItem", "ItemsItem", "StringArray"):
            self.kind = d.name
        elif d.oneofs and d.oneofs[0].name == "oneof":
            self.kind = "oneof"
        elif names == ["additional_properties"]:
            self.kind = "map"
            self.named = d.fields[0]
        elif d.name in _PATTERNED:
            self.kind = "patterned"
        else:
            self.kind = "object"
            for f in d.fields:
                if f.name != _VENDOR:
                    self.fields[_json_key(f)] = f


class _Compiler:
    def __init__(self) -> None:
        self._layouts: Dict[str, _Layout] = {}
        self._yaml: Dict[Tuple[str, Any], str] = {}

    def layout(self, d: Descriptor) -> _Layout:
        lay = self._layouts.get(d.full_name)
        if lay is None:
            lay = self._layouts[d.full_name] = _Layout(d)
        return lay

    # ---- messages

    def message(self, d: Descriptor, node: Any, where: str) -> Any:
        lay = self.layout(d)
        msg = getattr(pb, d.name)()
        if lay.kind == "Any":
            msg.yaml = self.yaml_text(node)
        elif lay.kind == "TypeItem":
            self._type_item(msg, node, where)
        elif lay.kind == "ItemsItem":
            if not isinstance(node, dict):
                raise InvalidDocument(f"{where}: has unexpected value for item array: {node!r}")
            msg.schema.append(self.message(pb.Schema.DESCRIPTOR, node, where + "/<array>"))
        elif lay.kind == "StringArray":
            if isinstance(node, list):
                msg.value.extend(_string(v) or "" for v in node)
        elif lay.kind == "oneof":
            self._oneof(msg, d, node, where)
        else:
            if not isinstance(node, dict):
                raise InvalidDocument(f"{where}: has unexpected value: {node!r}")
            if lay.kind == "map":
                self._map(msg, lay, node, where)
            elif lay.kind == "patterned":
                self._patterned(msg, d, node, where)
            else:
                self._object(msg, d, lay, node, where)
        return msg

    def _object(self, msg: Message, d: Descriptor, lay: _Layout, node: Dict[str, Any], where: str) -> None:
        missing = [k for k in _REQUIRED.get(d.name, ()) if k not in node]
        if missing:
            raise InvalidDocument(f"{where}: is missing required properties: {', '.join(missing)}")
        enums = _ENUMS.get(d.name, {})
        invalid = []
        for key, value in node.items():
            field = lay.fields.get(key)
            if field is None:
                if lay.vendor and key.startswith("x-"):
                    getattr(msg, _VENDOR).append(pb.NamedAny(name=key, value=pb.Any(yaml=self.yaml_text(value))))
                elif lay.check_keys:
                    invalid.append(key)
                continue
            self._field(msg, field, value, f"{where}/{key}")
            allowed = enums.get(key)
            if allowed is not None and getattr(msg, field.name) not in allowed:
                raise InvalidDocument(f"{where}: has unexpected value for {key}: {value!r}")
        if invalid:
            raise InvalidDocument(f"{where}: has invalid properties: {', '.join(invalid)}")

    def _field(self, msg: Message, field: FieldDescriptor, value: Any, where: str) -> None:
        repeated = field.is_repeated
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = field.message_type
            if not repeated:
                getattr(msg, field.name).CopyFrom(self.message(sub, value, where))
                return
            if not isinstance(value, list):
                raise InvalidDocument(f"{where}: has unexpected value: {value!r}")
            out = getattr(msg, field.name)
            for i, item in enumerate(value):
                out.append(self.message(sub, item, f"{where}/{i}"))
            return
        if repeated:  # only repeated strings in this schema
            if not isinstance(value, list):
                raise InvalidDocument(f"{where}: has unexpected value: {value!r}")
            getattr(msg, field.name).extend(s for s in map(_string, value) if s is not None)
            return
        setattr(msg, field.name, _scalar(field, value, where))

    def _oneof(self, msg: Message, d: Descriptor, node: Any, where: str) -> None:
        if d.name == "NonBodyParameter" and not isinstance(node, dict):
            raise InvalidDocument(f"{where}: has unexpected value: {node!r}")
        matched = None
        for field in d.oneofs[0].fields:
            if field.type == FieldDescriptor.TYPE_BOOL:
                if isinstance(node, bool):
                    matched = (field, node)
                continue
            if not isinstance(node, dict):
                continue
            try:
                matched = (field, self.message(field.message_type, node, where))
            except InvalidDocument:
                continue
        if matched is None:
            raise InvalidDocument(f"{where}: contains an invalid {d.name}")
        field, value = matched
        if field.type == FieldDescriptor.TYPE_BOOL:
            setattr(msg, field.name, value)
        else:
            getattr(msg, field.name).CopyFrom(value)

    def _map(self, msg: Message, lay: _Layout, node: Dict[str, Any], where: str) -> None:
        assert lay.named is not None
        named = lay.named.message_type
        value_field = named.fields_by_name["value"]
        out = getattr(msg, lay.named.name)
        for key, value in node.items():
            pair = out.add()
            pair.name = key
            if value_field.type == FieldDescriptor.TYPE_STRING:
                pair.value = _string(value) or ""
            else:
                pair.value.CopyFrom(self.message(value_field.message_type, value, f"{where}/{key}"))

    def _patterned(self, msg: Message, d: Descriptor, node: Dict[str, Any], where: str) -> None:
        field_name, pattern = _PATTERNED[d.name]
        named = d.fields_by_name[field_name].message_type
        invalid = []
        for key, value in node.items():
            if key.startswith("x-"):
                getattr(msg, _VENDOR).append(pb.NamedAny(name=key, value=pb.Any(yaml=self.yaml_text(value))))
            elif pattern.search(key):
                sub = self.message(named.fields_by_name["value"].message_type, value, f"{where}/{key}")
                getattr(msg, field_name).add(name=key).value.CopyFrom(sub)
            else:
                invalid.append(key)
        if invalid:
            raise InvalidDocument(f"{where}: has invalid properties: {', '.join(invalid)}")

    def _type_item(self, msg: Any, node: Any, where: str) -> None:
        values = msg.value
        if isinstance(node, list):
            for item in node:
                if isinstance(item, (dict, list)):
                    raise InvalidDocument(f"{where}: has unexpected value for string array element: {item!r}")
                values.append(_scalar_text(item))
        elif isinstance(node, dict):
            raise InvalidDocument(f"{where}: has unexpected value for string array: {node!r}")
        else:
            values.append(_scalar_text(node))

    # ---- YAML text of Any

    def yaml_text(self, value: Any) -> str:
        # Vendor extensions repeat (x-kubernetes-action: get on every read ...): dump each scalar once.
        key = (type(value).__name__, value) if not isinstance(value, (dict, list)) else None
        if key is not None:
            cached = self._yaml.get(key)
            if cached is not None:
                return cached
        text: str = yaml.dump(value, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True,
                         width=1 << 30)
        if text.endswith("\n...\n"):  # PyYAML ends a document of one plain scalar with "..."
            text = text[:-4]
        if key is not None:
            self._yaml[key] = text
        return text


_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _string(value: Any) -> Optional[str]:
    """StringForScalarNode: strings, integers (their text) and null (""); None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None:
        return ""
    return None


def _scalar_text(value: Any) -> str:
    # A YAML scalar node's text, as JSON wrote it.
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value) if isinstance(value, str) else json.dumps(value)


def _scalar(field: FieldDescriptor, value: Any, where: str) -> Any:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        s = _string(value)
        if s is not None:
            return s
    elif t == FieldDescriptor.TYPE_BOOL:
        if isinstance(value, bool):
            return value
    elif t == FieldDescriptor.TYPE_DOUBLE:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif t == FieldDescriptor.TYPE_INT64:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    raise InvalidDocument(f"{where}: has unexpected value: {value!r}")

