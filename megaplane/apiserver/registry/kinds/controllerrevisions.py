"""ControllerRevisions: `data` never changes once stored, and `revision` is not negative (ValidateControllerRevision
and ValidateControllerRevisionUpdate); the revision number may change (controllers renumber on a rollback)."""

from __future__ import annotations

from typing import Any, Dict

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["ControllerRevisionStrategy"]


class ControllerRevisionStrategy(Strategy):
    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        self._check_revision(obj)

    def prepare_for_update(self, obj: Dict[str, Any], old: Dict[str, Any], subresource: str) -> None:
        super().prepare_for_update(obj, old, subresource)
        if obj.get("data") != old.get("data"):
            raise errors.invalid("apps", "ControllerRevision", obj["metadata"].get("name", ""), [
                field_error("", "data", obj.get("data"), "field is immutable")])
        self._check_revision(obj)

    @staticmethod
    def _check_revision(obj: Dict[str, Any]) -> None:
        revision = obj.get("revision", 0)
        if isinstance(revision, int) and not isinstance(revision, bool) and revision < 0:
            raise errors.invalid("apps", "ControllerRevision", obj["metadata"].get("name", ""), [
                field_error("", "revision", revision, "must be greater than or equal to 0")])
