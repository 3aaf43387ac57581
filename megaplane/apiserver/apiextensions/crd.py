"""The CustomResourceDefinition kind itself: defaults, validation, strategy and store (apiextensions-apiserver's
pkg/apis/apiextensions validation and pkg/registry/customresourcedefinition).

A CRD is validated as upstream does (names, group, scope, versions with exactly one
storage version, a structural schema for every version, subresources, printer
columns) with upstream's field paths and messages; where upstream prints a whole
Go struct as the bad value, megaplane prints its type only. Its status belongs to
the controller (`controller.py`); a create records the storage version in
status.storedVersions. DELETE marks the CRD and puts the
customresourcecleanup.apiextensions.k8s.io finalizer on it: the controller
deletes the custom resources, then takes the finalizer off.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apiserver.apiextensions.structural import structural_errors
from megaplane.apiserver.registry import deletion
from megaplane.apiserver.registry.store import ResourceStore, Result
from megaplane.apiserver.registry.strategy import Strategy
from megaplane.apiserver.watchcache import CachedObject

__all__ = ["CRDStrategy", "CRDStore", "FINALIZER", "validate_crd", "validate_crd_update", "storage_version",
           "served_versions", "version_priority"]

FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
Cause = Dict[str, Any]

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
_DNS1123_SUB_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(name: str) -> Tuple[int, int, int, str]:
    """Kube-aware version order (v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > anything else, alphabetically)."""
    m = _VERSION.match(name)
    if m is None:
        return (3, 0, 0, name)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, name)


def _d(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def storage_version(crd: Dict[str, Any]) -> Optional[str]:
    for v in _d(crd.get("spec")).get("versions") or ():
        if isinstance(v, dict) and v.get("storage"):
            return str(v.get("name"))
    return None


def served_versions(crd: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The served versions, highest priority first (discovery's order; the first is preferred)."""
    vs = [v for v in _d(crd.get("spec")).get("versions") or () if isinstance(v, dict) and v.get("served")]
    return sorted(vs, key=lambda v: version_priority(str(v.get("name"))))


def set_defaults(crd: Dict[str, Any]) -> None:
    """SetDefaults_CustomResourceDefinition (v1)."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and isinstance(names.get("kind"), str):
        if not names.get("singular"):
            names["singular"] = names["kind"].lower()
        if not names.get("listKind"):
            names["listKind"] = names["kind"] + "List"
    conv = spec.setdefault("conversion", {"strategy": "None"})
    if isinstance(conv, dict) and not conv.get("strategy"):
        conv["strategy"] = "None"


def _label(path: str, value: Any, required: bool = True) -> List[Cause]:
    if value in (None, ""):
        return [field_error("", path, None, "", "FieldValueRequired")] if required else []
    if not isinstance(value, str) or not _DNS1035.match(value) or len(value) > 63:
        return [field_error("", path, value, _DNS1035_MSG)]
    return []


def validate_crd(crd: Dict[str, Any]) -> List[Cause]:
    """ValidateCustomResourceDefinition: every cause, [] for a valid CRD."""
    out: List[Cause] = []
    meta = _d(crd.get("metadata"))
    spec = _d(crd.get("spec"))
    names = _d(spec.get("names"))
    group = spec.get("group")
    plural = names.get("plural")
    if group and plural and meta.get("name") != f"{plural}.{group}":
        out.append(field_error("", "metadata.name", meta.get("name", ""), 'must be spec.names.plural+"."+spec.group'))
    if not group:
        out.append(field_error("", "spec.group", None, "", "FieldValueRequired"))
    elif not isinstance(group, str) or not _DNS1123_SUB.match(group):
        out.append(field_error("", "spec.group", group, _DNS1123_SUB_MSG))
    elif "." not in group:
        out.append(field_error("", "spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope")
    if not scope:
        out.append(field_error("", "spec.scope", None, "", "FieldValueRequired"))
    elif scope not in ("Cluster", "Namespaced"):
        out.append(field_error("", "spec.scope", scope, 'supported values: "Cluster", "Namespaced"',
                               "FieldValueNotSupported"))
    out += _label("spec.names.plural", plural)
    out += _label("spec.names.singular", names.get("singular"))
    kind = names.get("kind")
    if not kind:
        out.append(field_error("", "spec.names.kind", None, "", "FieldValueRequired"))
    elif not isinstance(kind, str) or not _DNS1035.match(kind.lower()):
        out.append(field_error("", "spec.names.kind", kind, "may have mixed case, but should otherwise match: "
                               "[a-z]([-a-z0-9]*[a-z0-9])?"))
    list_kind = names.get("listKind")
    if isinstance(list_kind, str) and kind and list_kind == kind:
        out.append(field_error("", "spec.names.listKind", list_kind, "kind and listKind may not be the same"))
    for i, short in enumerate(names.get("shortNames") or ()):
        out += _label(f"spec.names.shortNames[{i}]", short)
    for i, cat in enumerate(names.get("categories") or ()):
        out += _label(f"spec.names.categories[{i}]", cat)
    out += _versions(spec)
    conv = _d(spec.get("conversion"))
    strategy = conv.get("strategy")
    if strategy not in (None, "None", "Webhook"):
        out.append(field_error("", "spec.conversion.strategy", strategy, 'supported values: "None", "Webhook"',
                               "FieldValueNotSupported"))
    elif strategy == "Webhook":
        hook = _d(conv.get("webhook"))
        if not conv.get("webhook"):
            out.append(field_error("", "spec.conversion.webhook", None, "required when strategy is set to Webhook",
                                   "FieldValueRequired"))
        elif not hook.get("conversionReviewVersions"):
            out.append(field_error("", "spec.conversion.webhook.conversionReviewVersions", None,
                                   "must include at least one of v1, v1beta1", "FieldValueRequired"))
    elif "webhook" in conv:
        out.append(field_error("", "spec.conversion.webhook", None, "should not be set when strategy is not set "
                               "to Webhook", "FieldValueForbidden"))
    return out


def _versions(spec: Dict[str, Any]) -> List[Cause]:
    out: List[Cause] = []
    versions = spec.get("versions")
    shown = "[]apiextensions.CustomResourceDefinitionVersion{...}"
    if not isinstance(versions, list) or not versions:
        return [field_error("", "spec.versions", None, "must have exactly one version marked as storage version",
                            shown="[]apiextensions.CustomResourceDefinitionVersion(nil)")]
    seen = set()
    storage = 0
    served = 0
    for i, v in enumerate(versions):
        path = f"spec.versions[{i}]"
        v = _d(v)
        name = v.get("name")
        out += _label(f"{path}.name", name)
        if name in seen:
            out.append(field_error("", f"{path}.name", name, "", "FieldValueDuplicate"))
        seen.add(name)
        storage += bool(v.get("storage"))
        served += bool(v.get("served"))
        schema = _d(v.get("schema")).get("openAPIV3Schema")
        if schema is None:
            out.append(field_error("", f"{path}.schema.openAPIV3Schema", None, "schemas are required",
                                   "FieldValueRequired"))
        else:
            out += structural_errors(schema, f"{path}.schema.openAPIV3Schema")
        scale = _d(_d(v.get("subresources")).get("scale")) if "scale" in _d(v.get("subresources")) else None
        if scale is not None:
            spec_path = scale.get("specReplicasPath")
            if not spec_path:
                out.append(field_error("", f"{path}.subresources.scale.specReplicasPath", None, "",
                                       "FieldValueRequired"))
            elif not str(spec_path).startswith(".spec."):
                out.append(field_error("", f"{path}.subresources.scale.specReplicasPath", spec_path,
                                       "should be a json path under .spec"))
            status_path = scale.get("statusReplicasPath")
            if not status_path:
                out.append(field_error("", f"{path}.subresources.scale.statusReplicasPath", None, "",
                                       "FieldValueRequired"))
            elif not str(status_path).startswith(".status."):
                out.append(field_error("", f"{path}.subresources.scale.statusReplicasPath", status_path,
                                       "should be a json path under .status"))
            sel = scale.get("labelSelectorPath")
            if sel and not str(sel).startswith((".spec.", ".status.")):
                out.append(field_error("", f"{path}.subresources.scale.labelSelectorPath", sel,
                                       "should be a json path under either .spec or .status"))
        for j, col in enumerate(v.get("additionalPrinterColumns") or ()):
            cpath = f"{path}.additionalPrinterColumns[{j}]"
            col = _d(col)
            if not col.get("name"):
                out.append(field_error("", f"{cpath}.name", None, "", "FieldValueRequired"))
            if col.get("type") not in _COLUMN_TYPES:
                out.append(field_error("", f"{cpath}.type", col.get("type"), "supported values: " + ", ".join(
                    f'"{t}"' for t in _COLUMN_TYPES), "FieldValueNotSupported"))
            if not col.get("jsonPath"):
                out.append(field_error("", f"{cpath}.jsonPath", None, "", "FieldValueRequired"))
    if storage != 1:
        out.append(field_error("", "spec.versions", None, "must have exactly one version marked as storage version",
                               shown=shown))
    if not served:
        out.append(field_error("", "spec.versions", None, "must have at least one served version", shown=shown))
    return out


def validate_crd_update(crd: Dict[str, Any], old: Dict[str, Any]) -> List[Cause]:
    """ValidateCustomResourceDefinitionUpdate beyond the create rules: the scope is immutable, and every
    version in status.storedVersions stays in spec.versions (objects may still be stored in it)."""
    out: List[Cause] = []
    spec, old_spec = _d(crd.get("spec")), _d(old.get("spec"))
    if spec.get("scope") != old_spec.get("scope"):
        out.append(field_error("", "spec.scope", spec.get("scope"), "field is immutable"))
    names = {v.get("name") for v in spec.get("versions") or () if isinstance(v, dict)}
    for i, stored in enumerate(_d(crd.get("status")).get("storedVersions") or ()):
        if stored not in names:
            out.append(field_error("", f"status.storedVersions[{i}]", stored, "must appear in spec.versions"))
    return out


class CRDStrategy(Strategy):
    """customResourceDefinitionStrategy: status is the controller's, storedVersions grows with the storage version."""

    def initial_status(self, obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        stored = storage_version(obj)
        return {"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": [stored] if stored else []}

    def defaults(self, obj: Dict[str, Any]) -> None:
        set_defaults(obj)

    def prepare_for_update(self, obj: Dict[str, Any], old: Dict[str, Any], subresource: str) -> None:
        super().prepare_for_update(obj, old, subresource)
        causes = validate_crd_update(obj, old)
        if causes:
            raise errors.invalid(self.resource.group, self.resource.kind, _d(obj.get("metadata")).get("name", ""),
                                 causes)
        if subresource != "status":
            stored = storage_version(obj)
            status = obj.setdefault("status", {})
            versions = list(status.get("storedVersions") or [])
            if stored and stored not in versions:
                status["storedVersions"] = versions + [stored]


class CRDStore(ResourceStore):
    """The CRD store: a first DELETE marks the CRD for the cleanup finalizer (the controller finishes it)."""

    def _validate(self, obj: Dict[str, Any], field_validation: str, verb: str = "create") -> List[str]:
        warnings = super()._validate(obj, field_validation, verb)
        set_defaults(obj)
        causes = validate_crd(obj)
        if causes:
            raise errors.invalid(self.resource.group, self.resource.kind, _d(obj.get("metadata")).get("name", ""),
                                 causes)
        return warnings

    async def _delete_one(self, cur: CachedObject, opts: Dict[str, Any]) -> Result:
        obj = orjson.loads(cur.data)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") or FINALIZER in (meta.get("finalizers") or ()):
            return await super()._delete_one(cur, opts)
        deletion.check_preconditions(self.resource, cur, opts)
        meta["finalizers"] = [*(meta.get("finalizers") or ()), FINALIZER]
        deletion.mark_for_deletion(self.strategy, obj, opts)
        return await self._write_deletion_mark(cur, obj, opts, bool(opts.get("dryRun")))
