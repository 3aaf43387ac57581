"""The Strategy seam: what one kind does on create, update and delete, as upstream's REST strategies.

Upstream's registry strategies (pkg/registry/*/strategy.go) decide, per
kind: which fields a create may not set (status starts empty, or as the
kind's initial status), what an update of the main resource keeps from the
old object (status, for kinds with a status subresource), what a status
update keeps (everything but status), when metadata.generation moves
(spec changes of workloads), and the hooks around storage (allocations a
Service takes and gives back, the TTL an Event is stored with, the grace
period of a pod's deletion). `Strategy` is the default every kind gets;
kinds with rules of their own subclass it in `registry/kinds/`, one module
per kind, and `kinds.strategies()` finds them through the resource table.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.fieldmanager.managedfields import now_rfc3339  # formatted once a second
from megaplane.apiserver.schema import defaults
from megaplane.apiserver.schema.validation import Cause

__all__ = ["Strategy", "IMMUTABLE_META"]

# Metadata the server owns: an update cannot change these (kept from the old object).
IMMUTABLE_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")
_NOT_SPEC = ("apiVersion", "kind", "metadata", "status")


class Strategy:
    """The default strategy of a kind; subclasses override the hooks their kind needs."""

    #: Metadata a status update keeps from the stored object (deployments: labels; pods: ownerReferences).
    status_keeps_metadata: Tuple[str, ...] = ()
    #: `restore` must see every stored object at start (allocators); off by default: it decodes each one.
    restores: bool = False

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    def refuse(self, obj: Dict[str, Any], causes: List[Cause]) -> None:
        """Raise the kind's 422 Invalid for `causes`, if any, named as upstream names a refused object."""
        if causes:
            meta = obj.get("metadata") or {}
            name = meta.get("name") or meta.get("generateName") or ""
            raise errors.invalid(self.resource.group, self.resource.kind, name, causes)

    # -- create ---------------------------------------------------------------------------------

    def initial_status(self, obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The status a new object starts with (None: the kind has no status)."""
        return {} if self.resource.has_status else None

    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        """Reset what a create may not set; fill the kind's initial state."""
        meta = obj["metadata"]
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
            meta.pop(k, None)
        meta["creationTimestamp"] = now_rfc3339()
        if self.resource.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        status = self.initial_status(obj)
        if status is not None:
            obj["status"] = status

    def defaults(self, obj: Dict[str, Any]) -> None:
        """The kind's defaulters (SetObjectDefaults_*)."""
        defaults.run_defaulters(self.resource.group, self.resource.plural, obj)

    def fill_zero_values(self, obj: Dict[str, Any]) -> None:
        """Zero values Go always serialises and strict clients require (after status resets)."""
        defaults.fill_zero_values(self.resource.group, self.resource.plural, obj)

    # -- update ---------------------------------------------------------------------------------

    def prepare_for_update(self, obj: Dict[str, Any], old: Dict[str, Any], subresource: str) -> None:
        """Keep what this kind of update may not change; move generation as the kind's strategy does."""
        r = self.resource
        meta = obj.setdefault("metadata", {})
        old_meta = old.get("metadata") or {}
        for k in IMMUTABLE_META:  # rest.BeforeUpdate: the server's own metadata comes from the stored object
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        if "generation" in old_meta:
            meta["generation"] = old_meta["generation"]
        else:
            meta.pop("generation", None)
        if old_meta.get("deletionTimestamp"):
            added = sorted(set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ()))
            if added:
                listed = ", ".join(f'"{f}"' for f in added)
                raise errors.invalid(r.group, r.kind, meta.get("name", ""), [field_error(
                    "", "metadata.finalizers", None,
                    f"no new finalizers can be added if the object is being deleted, found new finalizers "
                    f"[]string{{{listed}}}",
                    "FieldValueForbidden")])
        if subresource == "status":
            self.prepare_for_status_update(obj, old)
            return
        if r.has_status and "status" in old:
            obj["status"] = old["status"]
        elif r.has_status:
            obj.pop("status", None)
        self.keep_on_update(obj, old)
        if r.generation and self.spec_changed(obj, old):
            meta["generation"] = old_meta.get("generation", 1) + 1

    def prepare_for_status_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        """The status strategy: everything but status (and metadata) comes from the stored object."""
        for k in list(obj):
            if k not in _NOT_SPEC:
                del obj[k]
        for k, v in old.items():
            if k not in _NOT_SPEC:
                obj[k] = v
        meta = obj["metadata"]
        old_meta = old.get("metadata") or {}
        for k in self.status_keeps_metadata:
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)

    def keep_on_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        """Fields of the main resource only another route may change (namespaces: spec via /finalize)."""

    def spec_changed(self, obj: Dict[str, Any], old: Dict[str, Any]) -> bool:
        """Whether this update moves metadata.generation (kinds with `generation` only)."""
        return obj.get("spec") != old.get("spec")

    def should_delete_during_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> bool:
        """The last finalizer left an object being deleted (not one in its grace period): delete it now."""
        old_meta = old.get("metadata") or {}
        return bool(old_meta.get("deletionTimestamp") and not obj["metadata"].get("finalizers")
                    and not old_meta.get("deletionGracePeriodSeconds"))

    # -- storage hooks ------------------------------------------------------------------------------

    def admit_create(self, obj: Dict[str, Any]) -> None:
        """Allocations a create takes before it is stored; given back by `release` if nothing is stored."""

    def admit_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> List[int]:
        """Allocations an update takes; given back by `release_update` if nothing is stored."""
        return []

    def release_update(self, taken: List[int]) -> None:
        """Give back what `admit_update` took for an update that was not stored."""

    def after_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        """An update was stored: give back what the old object held and the new one does not."""

    def release(self, obj: Dict[str, Any]) -> None:
        """Give back what `obj` holds: it was deleted, or never stored."""

    def storage_ttl(self) -> int:
        """Seconds the kind's objects live in storage (0: forever); Events use --event-ttl."""
        return 0

    def restore(self, obj: Dict[str, Any]) -> None:
        """An object found in storage at start (allocators re-learn what is taken)."""

    # -- delete ---------------------------------------------------------------------------------------

    def before_delete(self, name: str) -> None:
        """Refuse a DELETE of an object this kind never lets go (system PriorityClasses); raise a StatusError."""

    def grace_period(self, obj: Dict[str, Any], opts: Dict[str, Any]) -> int:
        """Seconds of graceful deletion (0: delete at once, unless finalizers hold the object)."""
        return 0
