"""Claiming dependents by selector and ownerReference (upstream's ControllerRefManager).

A controller owns what its selector matches and what names it as
controller. `claim` sorts a list of candidates into the ones it owns:

- controlled by someone else: left alone;
- controlled by us and still matching: kept;
- controlled by us and no longer matching: released (our ownerReference
  removed by a strategic-merge patch), unless it is being deleted;
- orphaned and matching: adopted (our controller reference added), unless
  it or we are being deleted, and only after `can_adopt` confirmed with a
  fresh read that we are still the object we think we are (a quorum read:
  an informer's copy of a deleted and re-created owner would adopt for a
  ghost).

Adopt and release patches carry the dependent's uid, so a patch never
lands on a re-created object of the same name.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence

from megaplane.apimachinery.selectors import LabelSelector, matches_labels, selector_from_dict
from megaplane.client import NotFoundError, ResourceClient
from megaplane.client.cache import Lister

from .podutil import controller_of

__all__ = ["claim", "CannotAdoptError", "resolve_controller_ref", "selecting_owners"]

Obj = Dict[str, Any]


class CannotAdoptError(Exception):
    """The owner changed (deleted, re-created with a new uid, being deleted) since the informer saw it."""


async def claim(
    dependents: ResourceClient, candidates: Sequence[Obj], owner: Mapping[str, Any], selector: Optional[LabelSelector],
    ref: Obj, can_adopt: Callable[[], Awaitable[None]],
) -> List[Obj]:
    """The candidates `owner` owns after adopting and releasing (see the module docstring)."""
    meta = owner["metadata"]
    uid = meta["uid"]
    owner_deleting = bool(meta.get("deletionTimestamp"))
    claimed: List[Obj] = []
    checked = False
    for obj in candidates:
        om = obj.get("metadata") or {}
        labels = om.get("labels") or {}
        matches = selector is not None and matches_labels(selector, labels)
        controller = controller_of(obj)
        if controller is not None:
            if controller.get("uid") != uid:
                continue
            if matches:
                claimed.append(obj)
            elif not om.get("deletionTimestamp"):
                await _release(dependents, obj, uid)
            continue
        if not matches or owner_deleting or om.get("deletionTimestamp"):
            continue
        if not checked:
            await can_adopt()
            checked = True
        adopted = await _adopt(dependents, obj, ref)
        if adopted is not None:
            claimed.append(adopted)
    return claimed


async def _adopt(dependents: ResourceClient, obj: Obj, ref: Obj) -> Optional[Obj]:
    om = obj["metadata"]
    patch = {"metadata": {"ownerReferences": [ref], "uid": om["uid"]}}
    try:
        return await dependents.patch(om["name"], patch, om.get("namespace"))
    except NotFoundError:
        return None  # gone meanwhile: nothing to own


async def _release(dependents: ResourceClient, obj: Obj, owner_uid: str) -> None:
    om = obj["metadata"]
    patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": om["uid"]}}
    try:
        await dependents.patch(om["name"], patch, om.get("namespace"))
    except NotFoundError:
        pass  # gone already: nothing to release


def resolve_controller_ref(lister: Lister, namespace: str, ref: Optional[Mapping[str, Any]], kind: str,
                           group: str) -> Optional[Dict[str, Any]]:
    """resolveControllerRef: the owner `ref` names, if it is a `kind` of API `group`, known to `lister` and
    the same object (uid): a re-created owner of the same name is not the one the reference meant."""
    if ref is None or ref.get("kind") != kind or str(ref.get("apiVersion", "")).split("/")[0] != group:
        return None
    owner = lister.get(namespace, str(ref.get("name") or ""))
    if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
        return None
    return owner


def selecting_owners(lister: Lister, obj: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The owners in `obj`'s namespace whose selector matches its labels (getPodReplicaSets and its kin:
    an empty selector matches nothing here)."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    out = []
    for owner in lister.list(meta.get("namespace") or ""):
        selector = selector_from_dict((owner.get("spec") or {}).get("selector") or {})
        if selector is not None and matches_labels(selector, labels):
            out.append(owner)
    return out
