"""metadata.managedFields: who owns which field, kept on every write and used by apply.

`FieldManager` is one resource's field manager, upstream's
NewDefaultFieldManager chain reduced to what it decides:

- `updated(old, new, manager, subresource)` for create, update and the
  json / merge / strategic patches: the fields the write changed move to
  the writer's `Update` entry (taken from whoever owned them), fields it
  removed leave every set; a write that changes nothing owned keeps the
  entries as they were (the same list, so the registry's no-op check still
  sees an unchanged object). The entries come from the request when it
  carries valid ones (kubectl's client-side -> server-side migration
  rewrites them so), else from the stored object; `[]` resets them. An
  existing object with no entries stays untracked until it is applied.
- `apply(live, config, manager, force, subresource)`: the server-side
  apply merge (merge.py), the pruning of what the applier let go of, and
  conflicts with the other managers' fields (409, conflicts.py) unless
  `force`; an object applied for the first time that has no entries gets
  a `before-first-apply` entry for what it already had; `kubectl` applying
  over a client-side applied object may take the fields its
  last-applied-configuration annotation still describes (lastAppliedManager)
  and keeps that annotation in step (lastAppliedUpdater).

Entries are {manager, operation, apiVersion, time, fieldsType, fieldsV1,
subresource} in that order, sorted as upstream sorts them (Apply first,
then by time, manager, apiVersion, subresource). Manager identity is the
name, operation, subresource and, for Update, the apiVersion.
"""

from __future__ import annotations

import time as _time
from typing import Any, Dict, List, Optional, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apiserver.fieldmanager import fieldpath
from megaplane.apiserver.fieldmanager.compare import MISSING, ZERO, changes, compare, created_set, field_set
from megaplane.apiserver.fieldmanager.conflicts import conflict_error
from megaplane.apiserver.fieldmanager.fieldpath import FieldSet
from megaplane.apiserver.fieldmanager.merge import merge, prune
from megaplane.apiserver.fieldmanager.typemodel import Type, kind_type

__all__ = [
    "FieldManager",
    "default_manager",
    "BEFORE_FIRST_APPLY",
    "LAST_APPLIED",
    "FIELD_MANAGER_MAX_LENGTH",
]

BEFORE_FIRST_APPLY = "before-first-apply"
#: DefaultMaxUpdateManagers, and the bucket the oldest go into past it.
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: validation.FieldManagerMaxLength
FIELD_MANAGER_MAX_LENGTH = 128
_KUBECTL = "kubectl"

Entry = Dict[str, Any]

_clock: Tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """metav1.Time of now (seconds), formatted once per second: the hot writes of a second share it (these
    entries' times; the registry's creationTimestamp and PodScheduled transition time too)."""
    global _clock
    t = int(_time.time())
    clock = _clock
    if t != clock[0]:
        clock = _clock = (t, _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(t)))
    return clock[1]


_MANAGERS: Dict[str, str] = {}


def default_manager(user_agent: str) -> str:
    """prefixFromUserAgent: the User-Agent up to its first "/", printable characters, at most 128 bytes."""
    name = _MANAGERS.get(user_agent)
    if name is None:
        if len(_MANAGERS) > 4096:  # clients repeat their User-Agent: a small table serves them
            _MANAGERS.clear()
        name = _MANAGERS[user_agent] = _prefix(user_agent)
    return name


def _prefix(user_agent: str) -> str:
    out: List[str] = []
    size = 0
    for ch in user_agent.split("/", 1)[0]:
        if not ch.isprintable():  # Go's unicode.IsPrint: ASCII space is the one space kept
            continue
        n = len(ch.encode("utf-8"))
        if size + n > FIELD_MANAGER_MAX_LENGTH:
            break
        out.append(ch)
        size += n
    return "".join(out)


def _identity(e: Entry) -> Tuple[str, str, str, str]:
    op = e.get("operation", "")
    return (e.get("manager", ""), op, e.get("apiVersion", "") if op == "Update" else "", e.get("subresource", ""))


def _entry(manager: str, operation: str, api_version: str, time: Optional[str], fields: FieldSet,
           subresource: str) -> Entry:
    e: Entry = {"manager": manager, "operation": operation, "apiVersion": api_version}
    if time:
        e["time"] = time
    e["fieldsType"] = "FieldsV1"
    e["fieldsV1"] = fields
    if subresource:
        e["subresource"] = subresource
    return e


def _cap_updaters(entries: List[Entry]) -> List[Entry]:
    """capManagersManager: past 10 Update entries the oldest are merged, per apiVersion, into "ancient-changes"."""
    updaters = [e for e in entries if e.get("operation") == "Update"]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return entries
    updaters.sort(key=lambda e: (e.get("time") or "", _identity(e)))
    out = [e for e in entries if e.get("operation") != "Update"]
    first: Dict[str, Entry] = {}
    buckets: Dict[str, Entry] = {}
    keep: List[Entry] = []
    length = len(updaters)
    for e in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            keep.append(e)
            continue
        version = e.get("apiVersion", "")
        if version not in first:
            first[version] = e
            keep.append(e)
            continue
        bucket = buckets.get(version)
        base = bucket if bucket is not None else first[version]
        if bucket is None:
            keep.remove(base)
        merged = _entry(ANCIENT_CHANGES, "Update", version, e.get("time"), fieldpath.union(_set(base), _set(e)), "")
        buckets[version] = merged
        length -= 1
    return out + keep + list(buckets.values())


def _sort_key(e: Entry) -> Tuple[str, str, str, str, str]:
    return (e.get("operation", ""), e.get("time") or "", e.get("manager", ""), e.get("apiVersion", ""),
            e.get("subresource", ""))


def _sorted(entries: List[Entry]) -> List[Entry]:
    if len(entries) > 1:
        entries.sort(key=_sort_key)
    return entries


def _valid(entries: Any) -> bool:
    """DecodeManagedFields accepts the list: FieldsV1 entries with a known operation and an object of fields."""
    if not isinstance(entries, list):
        return False
    for e in entries:
        if not isinstance(e, dict) or e.get("fieldsType") != "FieldsV1" or not isinstance(e.get("fieldsV1", {}), dict):
            return False
        if e.get("operation") not in ("Apply", "Update"):
            return False
    return True


def _set(e: Entry) -> FieldSet:
    s = e.get("fieldsV1")
    return s if isinstance(s, dict) else {}


class FieldManager:
    """The field manager of one resource (its kind's type model, its version, which fields writes may not set)."""

    def __init__(self, group: str, version: str, kind: str, has_status: bool,
                 type_model: Optional[Type] = None) -> None:
        self.api_version = f"{group}/{version}" if group else version
        self._gvk = (group, version, kind)
        self._type = type_model
        #: What writes through the main resource may not set (the status subresource owns it).
        self.main_reset = "status" if has_status else ""

    @property
    def type(self) -> Type:
        if self._type is None:
            self._type = kind_type(*self._gvk)
        return self._type

    def _reset(self, subresource: str) -> str:
        return "spec" if subresource == "status" else self.main_reset if not subresource else ""

    # -- non-apply writes ----------------------------------------------------------------------------

    def updated(self, old: Optional[Dict[str, Any]], new: Dict[str, Any], manager: str, subresource: str = "",
                record_subresource: Optional[str] = None) -> None:
        """Set new's managedFields for a write of `new` over `old` (None: a create) by `manager`."""
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            return
        old_entries = None
        if old is not None:
            old_meta = old.get("metadata")
            old_entries = old_meta.get("managedFields") if isinstance(old_meta, dict) else None
        asked = meta.get("managedFields", MISSING)
        if subresource or asked is MISSING or asked is None:
            managed = old_entries or []
        elif asked is old_entries or asked == old_entries:
            managed = old_entries or []
        elif isinstance(asked, list) and (not asked or asked == [{}]):
            managed = []
        elif _valid(asked):
            managed = asked
        else:
            managed = old_entries or []
        if not managed and old is not None:
            # skipNonAppliedManager: an existing object without managed fields is tracked from its first apply.
            meta.pop("managedFields", None)
            return
        if old is None:
            # A create: everything it sets, built in one pass in upstream's order (compare against ZERO).
            changed = created_set(new, self.type, self._reset(subresource))
            removed: FieldSet = {}
        else:
            changed, removed = changes(old, new, self._type or self.type, self._reset(subresource))
        if not changed and not removed:
            if managed:
                meta["managedFields"] = managed
            else:
                meta.pop("managedFields", None)
            return
        sub = subresource if record_subresource is None else record_subresource
        api_version = self.api_version
        if not removed and len(managed) == 1:
            e = managed[0]
            if e.get("manager", "") == manager and e.get("operation", "") == "Update" and \
                    e.get("apiVersion", "") == api_version and e.get("subresource", "") == sub:
                owned = _set(e)
                if fieldpath.contains(owned, changed):
                    # The writer owns every tracked field and changed only those (a Lease renewed by its
                    # holder): what the loop below would do, short. Its entry only takes this second as its
                    # time (the same entries when they have it already).
                    now = now_rfc3339()
                    meta["managedFields"] = managed if e.get("time") == now else [
                        _entry(manager, "Update", api_version, now, owned, sub)]
                    return
        out: List[Entry] = []
        mine: FieldSet = {}
        mine_entry: Optional[Entry] = None
        moved = False
        for e in managed:
            # _identity(e) == (manager, "Update", api_version, sub), without building the tuple.
            if e.get("manager", "") == manager and e.get("operation", "") == "Update" and \
                    e.get("apiVersion", "") == api_version and e.get("subresource", "") == sub:
                mine_entry = e
                mine = _set(e)
                continue
            s = _set(e)
            s2 = fieldpath.difference(fieldpath.difference(s, changed), removed)
            if not s2:
                moved = True
                continue
            if s2 is not s:
                moved = True
                e = {**e, "fieldsV1": s2}
            out.append(e)
        before = mine
        mine = fieldpath.union(fieldpath.difference(mine, removed), changed)
        now = now_rfc3339()
        if mine is before and mine_entry is not None and not moved:
            if mine_entry.get("time") == now:
                # The hot path (a Lease renewed by its holder): nobody's set moved and the time is this
                # second's: the entries are the stored ones, as they were.
                meta["managedFields"] = managed
                return
        if mine:
            if mine is not before and not (old is None and mine is changed):
                mine = fieldpath.canonical(mine)
            out.append(_entry(manager, "Update", api_version, now, mine, sub))
        if len(out) > MAX_UPDATE_MANAGERS:
            out = _cap_updaters(out)
        if out:
            meta["managedFields"] = _sorted(out)
        else:
            meta.pop("managedFields", None)

    # -- apply -----------------------------------------------------------------------------------------

    def apply(self, live: Optional[Dict[str, Any]], config: Dict[str, Any], manager: str, force: bool,
              subresource: str = "") -> Dict[str, Any]:
        """The object `config` applied over `live` (None: apply creates), with its managedFields set.

        `live` is the caller's own copy (taken apart here). Raises the 409 of upstream on conflicts."""
        t = self.type
        reset = self._reset(subresource)
        now = now_rfc3339()
        meta = config.get("metadata")
        if isinstance(meta, dict) and meta.get("managedFields") is not None:
            raise errors.bad_request("metadata.managedFields must be nil")
        managed: List[Entry] = []
        if live is not None:
            live_meta = live.setdefault("metadata", {})
            managed = list(live_meta.pop("managedFields", None) or [])
            if not managed:
                first = compare(ZERO, live, t, reset).changed()
                if first:
                    managed = [_entry(BEFORE_FIRST_APPLY, "Update", self.api_version, now, fieldpath.canonical(first),
                                      subresource)]
        applied = fieldpath.canonical(field_set(config, t, reset))
        me = (manager, "Apply", "", subresource)
        mine: Optional[Entry] = None
        others: List[Entry] = []
        for e in managed:
            if _identity(e) == me:
                mine = e
            else:
                others.append(e)
        kept: List[Entry] = []
        if live is None:
            merged = config
            noop = False
        else:
            merged = merge(live, config, t)
            last = _set(mine) if mine is not None else {}
            if last:
                owned = applied
                for e in others:
                    owned = fieldpath.union(owned, _set(e))
                merged = prune(merged, t, last, owned)
            cmp = compare(live, merged, t, reset)
            changed = cmp.changed()
            conflicts = []
            for e in others:
                both = fieldpath.intersection(_set(e), changed)
                if both:
                    conflicts.append((e, both))
            if conflicts and not force:
                if manager == _KUBECTL:
                    allowed = self._allowed_by_last_applied(live)
                    if allowed is not None:
                        conflicts = [(e, r) for e, c in conflicts if (r := fieldpath.difference(c, allowed))]
                if conflicts:
                    raise conflict_error(conflicts)
            for e in others:
                s = _set(e)
                s2 = fieldpath.difference(fieldpath.difference(s, changed), cmp.removed)
                if s2:
                    kept.append(e if s2 is s else {**e, "fieldsV1": s2})
            noop = cmp.empty()
        time = mine.get("time") if (noop and mine is not None) else now
        if applied:
            kept.append(_entry(manager, "Apply", self.api_version, time, applied, subresource))
        merged_meta = merged.setdefault("metadata", {})
        if kept:
            merged_meta["managedFields"] = _sorted(kept)
        else:
            merged_meta.pop("managedFields", None)
        if manager == _KUBECTL:
            annotations = merged_meta.get("annotations")
            if isinstance(annotations, dict) and annotations.get(LAST_APPLIED):
                merged_meta["annotations"] = {**annotations, LAST_APPLIED: _last_applied(config)}
        return merged

    def _allowed_by_last_applied(self, live: Dict[str, Any]) -> Optional[FieldSet]:
        """The fields the client-side apply annotation describes and the live object still has as written."""
        annotations = (live.get("metadata") or {}).get("annotations") or {}
        raw = annotations.get(LAST_APPLIED) if isinstance(annotations, dict) else None
        if not raw or not isinstance(raw, str):
            return None
        try:
            last = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(last, dict) or last.get("apiVersion") != self.api_version:
            return None
        t = self.type
        s = field_set(last, t)
        cmp = compare(last, live, t)
        return fieldpath.difference(fieldpath.difference(fieldpath.difference(s, cmp.modified), cmp.added),
                                    cmp.removed)


def _last_applied(config: Dict[str, Any]) -> str:
    """buildLastApplied: the applied configuration without its own annotation, as kubectl writes it."""
    out = dict(config)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta = dict(meta)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            # An emptied map stays (SetAnnotations of an empty, non-nil map), as upstream writes it.
            meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
        out["metadata"] = meta
    # encoding/json as the unstructured encoder uses it: map keys sorted, a newline after the document.
    return orjson.dumps(out, option=orjson.OPT_SORT_KEYS).decode() + "\n"
