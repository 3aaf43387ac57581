"""Custom resources: the strategy and store of one served version of a CRD (apiextensions-apiserver's
pkg/registry/customresource).

A write is decoded as upstream's CR codec does it: fields the schema does not
specify are pruned (reported per fieldValidation: warned, refused under
Strict, silent under Ignore), defaults applied, then ObjectMeta and the schema
validated (422 with kube-openapi's messages, validator.py). Objects are stored
in the storage version (conversion None: only apiVersion changes) and shown in
the version asked for, with defaults applied again on read. With the status
subresource, status is reset on create, kept by main writes and the only thing
a /status write changes; metadata.generation moves on any change outside
metadata (and status, when it is a subresource). The scale subresource reads
and writes the replicas at the CRD's JSON paths. Strategic merge patch is
refused as upstream (415).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.selectors import selector_from_dict
from megaplane.apiserver.apiextensions.cel import has_rules, validate_rules
from megaplane.apiserver.apiextensions.defaulting import apply_defaults, has_defaults
from megaplane.apiserver.apiextensions.printers import jsonpath, parse_jsonpath
from megaplane.apiserver.apiextensions.pruning import prune
from megaplane.apiserver.apiextensions.validator import validate
from megaplane.apiserver.fieldmanager import FieldManager, type_for_schema
from megaplane.apiserver.patch import PatchError, apply_json_patch, apply_merge_patch
from megaplane.apiserver.registry import scale
from megaplane.apiserver.registry.options import WriteOptions
from megaplane.apiserver.registry.store import ResourceStore, Result, patch_status
from megaplane.apiserver.registry.strategy import Strategy
from megaplane.apiserver.schema.fieldvalidation import (
    DIRECTIVES,
    IGNORE,
    STRICT,
    FieldValidationError,
    InvalidDirectiveError,
    decode_error_message,
    patch_invalid,
)
from megaplane.apiserver.schema.validation import name_rule, validate_metadata
from megaplane.apiserver.watchcache import CachedObject

__all__ = ["CRDState", "CustomResourceVersion", "CustomResourceStrategy", "CustomResourceStore"]

_OPTIONS_KIND = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}


@dataclass
class CRDState:
    """What every served version of one CRD shares: whether it is being deleted (creates are refused)."""

    name: str
    terminating: bool = False


@dataclass
class CustomResourceVersion:
    """One served version of a CRD, as its store needs it."""

    group: str
    version: str
    kind: str
    plural: str
    storage_version: str
    schema: Dict[str, Any]
    crd: CRDState
    status: bool = False
    scale: Optional[Dict[str, Any]] = None
    #: spec.conversion.strategy Webhook: megaplane calls no webhooks, so only the storage version is served whole.
    webhook: bool = False
    defaults: bool = field(init=False)
    rules: bool = field(init=False)

    def __post_init__(self) -> None:
        self.defaults = has_defaults(self.schema)
        self.rules = has_rules(self.schema)

    @property
    def storage_group_version(self) -> str:
        return f"{self.group}/{self.storage_version}"

    def check_conversion(self) -> None:
        """A version that needs a conversion webhook answers as upstream's does when its webhook fails."""
        if self.webhook and self.version != self.storage_version:
            raise errors.internal(f"conversion webhook for {self.group}/{self.storage_version}, Kind={self.kind} "
                                  "failed: megaplane does not call conversion webhooks")

    def view(self, obj: Dict[str, Any]) -> None:
        """A stored object as this version shows it: defaults applied, apiVersion rewritten (conversion None)."""
        self.check_conversion()
        if self.defaults:
            apply_defaults(obj, self.schema)
        obj["apiVersion"] = f"{self.group}/{self.version}"


class CustomResourceStrategy(Strategy):
    """customResourceStrategy (its status and scale rules; see the module docstring)."""

    def __init__(self, resource: Any, version: CustomResourceVersion) -> None:
        super().__init__(resource)
        self.version = version

    def initial_status(self, obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        return None

    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        if self.version.status:
            obj.pop("status", None)

    def defaults(self, obj: Dict[str, Any]) -> None:
        """Defaulting happened on decode (`CustomResourceStore._validate`)."""

    def fill_zero_values(self, obj: Dict[str, Any]) -> None:
        """Custom resources are stored as sent."""

    def spec_changed(self, obj: Dict[str, Any], old: Dict[str, Any]) -> bool:
        skip = ("metadata", "status") if self.version.status else ("metadata",)
        return {k: v for k, v in obj.items() if k not in skip} != {k: v for k, v in old.items() if k not in skip}


class CustomResourceStore(ResourceStore):
    """The verbs of one custom resource version (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        v = self.version
        # Field ownership follows the version's schema (list types, maps), not a deduced one.
        self.fields = FieldManager(v.group, v.version, v.kind, v.status, type_for_schema(v.schema))
        # Stored bytes -> this version's view of them: each revision is decoded and encoded once, not per read
        # (bytes cache their hash; cleared when it outgrows the cache).
        self._memo: Dict[bytes, bytes] = {}

    @property
    def version(self) -> CustomResourceVersion:
        return self.strategy.version  # type: ignore[attr-defined, no-any-return]

    # -- decode and validate ---------------------------------------------------------------------

    def _validate(self, obj: Dict[str, Any], field_validation: str, verb: str = "create") -> List[str]:
        v = self.version
        r = self.resource
        if field_validation not in DIRECTIVES:
            exc = InvalidDirectiveError(field_validation, _OPTIONS_KIND[verb])
            st = exc.status()
            raise errors.StatusError(exc.code, exc.reason, st["message"], st["details"])
        meta = obj.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        probe = orjson.loads(orjson.dumps(obj)) if field_validation == STRICT else obj
        dropped = prune(probe, v.schema)
        unknown = [f'unknown field "{p}"' for p in dropped]
        if field_validation == STRICT and unknown:
            exc2 = FieldValidationError(unknown)
            if verb == "patch":
                raise patch_invalid(obj, exc2.message)
            raise errors.bad_request(decode_error_message(r.kind, r.version, exc2.message))
        if probe is not obj:
            prune(obj, v.schema)
        if v.defaults:
            apply_defaults(obj, v.schema)
            prune(obj, v.schema)
        meta = obj.setdefault("metadata", {})
        causes = validate_metadata(meta, name_rule(r.plural, r.group), r.namespaced)
        causes += validate(obj, v.schema)
        if not causes and v.rules:
            causes = validate_rules(obj, self._stored(meta) if verb != "create" else None, v.schema)
        if causes:
            raise errors.invalid(r.group, r.kind, meta.get("name") or meta.get("generateName") or "", causes)
        v.check_conversion()
        obj["apiVersion"] = v.storage_group_version  # conversion None
        return [] if field_validation == IGNORE else unknown

    def _stored(self, meta: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The stored object an update replaces (transition rules compare with it)."""
        cur = self.cache.get(self.resource.key(self._ns(str(meta.get("namespace") or "")), str(meta.get("name") or "")))
        return orjson.loads(cur.data) if cur is not None else None

    # -- views in the asked version -----------------------------------------------------------

    def view(self, data: bytes) -> bytes:
        v = self.version
        if v.version == v.storage_version and not v.defaults:
            return data
        got = self._memo.get(data)
        if got is None:
            obj = orjson.loads(data)
            v.view(obj)
            got = orjson.dumps(obj)
            if len(self._memo) >= max(1024, 2 * len(self.cache.objects)):
                self._memo.clear()
            self._memo[data] = got
        return got

    def _views(self, items: List[bytes]) -> List[bytes]:
        v = self.version
        if v.version == v.storage_version and not v.defaults:
            return items
        return [self.view(b) for b in items]

    # -- writes ---------------------------------------------------------------------------------

    async def create(self, namespace: str, obj: Dict[str, Any], opts: WriteOptions) -> Result:
        if self.version.crd.terminating:
            raise errors.StatusError(405, "MethodNotAllowed",
                                     "create not allowed while custom resource definition is terminating", {})
        return await super().create(namespace, obj, opts)

    async def patch(
        self, namespace: str, name: str, patch_type: str, patch: Any, opts: WriteOptions, subresource: str = ""
    ) -> Result:
        if patch_type == "strategic":
            raise errors.StatusError(
                415, "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml", {})
        return await super().patch(namespace, name, patch_type, patch, opts, subresource)

    # -- scale ----------------------------------------------------------------------------------

    def _scale_body(self, obj: Dict[str, Any]) -> bytes:
        sc = self.version.scale or {}
        meta = obj.get("metadata") or {}
        spec = _at(obj, sc.get("specReplicasPath"))
        status = _at(obj, sc.get("statusReplicasPath"))
        body: Dict[str, Any] = {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if meta.get(k) is not None},
            "spec": {"replicas": spec if isinstance(spec, int) else 0},
            "status": {"replicas": status if isinstance(status, int) else 0},
        }
        selector = _at(obj, sc.get("labelSelectorPath"))
        if isinstance(selector, str) and selector:
            body["status"]["selector"] = selector
        elif isinstance(selector, dict):
            reqs = selector_from_dict(selector) or ()
            body["status"]["selector"] = ",".join(
                f"{k}={next(iter(v))}" if op == "=" else f"{k} {op} ({','.join(sorted(v))})" for k, op, v in reqs)
        return orjson.dumps(body)

    async def get(self, namespace: str, name: str, resource_version: str = "", subresource: str = "") -> Result:
        if subresource != "scale":
            return await super().get(namespace, name, resource_version, subresource)
        result = await super().get(namespace, name, resource_version)
        return Result(self._scale_body(orjson.loads(result.data)), printable=False)

    async def _patch_once(
        self, namespace: str, name: str, ptype: str, patch: Any, patch_rv: str, opts: WriteOptions, subresource: str
    ) -> Result:
        if subresource != "scale":
            return await super()._patch_once(namespace, name, ptype, patch, patch_rv, opts, subresource)
        cur = self.current(namespace, name)
        doc = orjson.loads(self._scale_body(orjson.loads(cur.data)))
        try:
            new = apply_json_patch(doc, patch) if ptype == "json" else apply_merge_patch(doc, patch)
        except PatchError as exc:
            raise patch_status(exc) from None
        if not isinstance(new, dict):
            raise errors.bad_request("the patch did not produce an object")
        return await self._apply_scale(namespace, name, new, cur, opts)

    async def _apply_scale(
        self, namespace: str, name: str, obj: Dict[str, Any], cur: CachedObject, opts: WriteOptions
    ) -> Result:
        r = self.resource
        replicas, want = scale.requested_replicas(obj, name)
        if want and want != str(cur.rv):
            raise errors.conflict_modified(r.group, r.plural, name)
        cr = orjson.loads(cur.data)
        _set(cr, (self.version.scale or {}).get("specReplicasPath"), replicas)
        causes = validate(cr, self.version.schema)
        if not causes and self.version.rules:
            causes = validate_rules(cr, orjson.loads(cur.data), self.version.schema)
        if causes:
            raise errors.invalid(r.group, r.kind, name, causes)
        written = await self._write_update(name, cr, str(cur.rv), [], opts, "", cur, record_subresource="scale")
        return Result(self._scale_body(orjson.loads(written.data)), printable=False)


def _at(obj: Dict[str, Any], path: Any) -> Any:
    steps = parse_jsonpath(path) if isinstance(path, str) and path else None
    found = jsonpath(obj, steps) if steps else []
    return found[0] if found else None


def _set(obj: Dict[str, Any], path: Any, value: Any) -> None:
    """Set a simple .a.b path (the form specReplicasPath takes), making the objects on the way."""
    steps = parse_jsonpath(path) if isinstance(path, str) and path else None
    if not steps or any(kind != "field" for kind, _ in steps):
        return
    node = obj
    for _, name in steps[:-1]:
        nxt = node.get(name)
        if not isinstance(nxt, dict):
            nxt = node[name] = {}
        node = nxt
    node[steps[-1][1]] = value
