"""ControllerRevisions: the template history DaemonSets and StatefulSets keep (upstream's pkg/controller/history).

A revision is an apps/v1 ControllerRevision owned by its set: `data` is
the patch that restores the set's pod template (`template_patch`: upstream's
getPatch, `{"spec": {"template": {..., "$patch": "replace"}}}` in Go's
json.Marshal bytes: keys sorted, compact, HTML characters escaped),
`revision` its number. What is shared here:

- `hash_revision`: HashControllerRevision, FNV-1 (32 bit) of those bytes,
  plus the collision count in decimal when there is one, encoded by
  SafeEncodeString; `revision_name` is `<parent>-<hash>`;
- `new_revision` (NewControllerRevision: the template's labels plus
  `controller-revision-hash`, a controller reference to the parent);
- `create_revision`: create, and on a name taken by a different revision
  bump the collision count and try the next name (an identical one is
  returned as is);
- `sort_revisions` (by revision, creation, name), `next_revision`,
  `equal_revision` / `find_equal_revisions` (by data), `update_revision`
  (renumber, re-reading on a conflict);
- `list_controlled`: the revisions a parent owns, adopting orphans its
  selector matches and releasing the ones that stopped matching.

The DaemonSet controller names its revisions by the template hash
(`compute_hash`, as its pods' label) rather than `hash_revision`, as
upstream's does; both keep them through this module.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from megaplane.apimachinery.selectors import selector_from_dict
from megaplane.client import AlreadyExistsError, ConflictError, ResourceClient

from .deploymentutil import safe_encode_string
from .refmanager import claim

__all__ = [
    "CONTROLLER_REVISION_HASH_LABEL",
    "create_revision",
    "equal_revision",
    "find_equal_revisions",
    "go_json",
    "hash_revision",
    "list_controlled",
    "new_revision",
    "next_revision",
    "revision_name",
    "sort_revisions",
    "template_patch",
    "update_revision",
]

Obj = Dict[str, Any]

CONTROLLER_REVISION_HASH_LABEL = "controller-revision-hash"


def go_json(value: Any) -> bytes:
    """`value` as Go's json.Marshal of a map writes it: sorted keys, no spaces, <, >, & and U+2028/9 escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)  # only strings can hold these characters
    return text.encode()


def template_patch(parent: Mapping[str, Any]) -> Obj:
    """The patch that puts back the parent's pod template (getPatch), as a JSON object."""
    template = copy.deepcopy(((parent.get("spec") or {}).get("template")) or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def _fnv1_32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= b
    return h


def hash_revision(data: Any, collision_count: Optional[int]) -> str:
    """HashControllerRevision of a revision's `data` (a JSON value) and collision count."""
    raw = go_json(data)
    if collision_count is not None:
        raw += str(int(collision_count)).encode()
    return safe_encode_string(str(_fnv1_32(raw)))


def revision_name(prefix: str, hash_: str) -> str:
    return f"{prefix[:223]}-{hash_}"


def new_revision(parent: Mapping[str, Any], ref: Obj, template_labels: Mapping[str, str], data: Any,
                 revision: int, collision_count: Optional[int]) -> Obj:
    """NewControllerRevision: named `<parent>-<hash>` and labelled with the hash."""
    hash_ = hash_revision(data, collision_count)
    labels = dict(template_labels)
    labels[CONTROLLER_REVISION_HASH_LABEL] = hash_
    meta = parent["metadata"]
    return {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": revision_name(meta["name"], hash_), "namespace": meta.get("namespace"),
                     "labels": labels, "ownerReferences": [ref]},
        "data": data, "revision": revision,
    }


def _revision(r: Mapping[str, Any]) -> int:
    return int(r.get("revision") or 0)


def sort_revisions(revisions: Sequence[Obj]) -> List[Obj]:
    """Oldest first: by revision number, then creation, then name (SortControllerRevisions)."""
    return sorted(revisions, key=lambda r: (_revision(r), (r.get("metadata") or {}).get("creationTimestamp") or "",
                                            (r.get("metadata") or {}).get("name") or ""))


def next_revision(revisions: Sequence[Mapping[str, Any]]) -> int:
    return max((_revision(r) for r in revisions), default=0) + 1


def equal_revision(a: Optional[Mapping[str, Any]], b: Optional[Mapping[str, Any]]) -> bool:
    """Same data (EqualRevision; the hash labels are encoded strings, so upstream compares the data)."""
    if a is None or b is None:
        return a is b
    return a.get("data") == b.get("data")


def find_equal_revisions(revisions: Sequence[Obj], needle: Mapping[str, Any]) -> List[Obj]:
    return [r for r in revisions if equal_revision(r, needle)]


async def create_revision(client: ResourceClient, parent: Mapping[str, Any], revision: Obj,
                          collision_count: int) -> Tuple[Obj, int]:
    """Create `revision` under `<parent>-<hash>`; returns (the stored revision, the collision count used).

    A name already taken by identical data is that revision; by other data,
    the count goes up and the next name is tried (CreateControllerRevision).
    """
    namespace = parent["metadata"].get("namespace")
    while True:
        body = copy.deepcopy(revision)
        hash_ = hash_revision(revision.get("data"), collision_count)
        body["metadata"]["name"] = revision_name(parent["metadata"]["name"], hash_)
        body["metadata"].setdefault("labels", {})[CONTROLLER_REVISION_HASH_LABEL] = hash_
        try:
            return await client.create(body, namespace), collision_count
        except AlreadyExistsError:
            existing = await client.get(body["metadata"]["name"], namespace)
            if existing.get("data") == body.get("data"):
                return existing, collision_count
            collision_count += 1


async def update_revision(client: ResourceClient, revision: Obj, number: int) -> Obj:
    """Give `revision` the number `number` (UpdateControllerRevision), re-reading it on a conflict."""
    current = revision
    for _ in range(5):
        if _revision(current) == number:
            return current
        body = dict(current)
        body["revision"] = number
        try:
            return await client.update(body)
        except ConflictError:
            current = await client.get(current["metadata"]["name"], current["metadata"].get("namespace"))
    raise RevisionConflictError(f"revision {revision['metadata'].get('name')} kept changing while renumbering it")


class RevisionConflictError(Exception):
    """A revision was changed by someone else on every try."""


async def list_controlled(client: ResourceClient, candidates: Sequence[Obj], parent: Mapping[str, Any],
                          ref: Obj, can_adopt: Callable[[], Awaitable[None]]) -> List[Obj]:
    """The revisions `parent` owns among `candidates` (its namespace's), adopting and releasing by selector."""
    selector = selector_from_dict(((parent.get("spec") or {}).get("selector")) or {})
    return await claim(client, candidates, parent, selector, ref, can_adopt)
