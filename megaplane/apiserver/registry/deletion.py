"""DELETE and deletecollection as the generic registry store does them (rest.BeforeDelete, then delete or mark).

An object with finalizers, or a pod still on its node (graceful deletion),
is only marked: deletionTimestamp (now + grace period) and
deletionGracePeriodSeconds are set and the marked object is the answer. A
later delete may only shorten the grace period. Otherwise the object goes,
and the answer is the deleted object for kinds whose store returns it
(pods, namespaces, services, serviceaccounts) or a Success Status naming it.
Namespaces start termination on their first DELETE (see namespaces.py).

`DeleteVerbs` is a part of `ResourceHandlers`: it uses the cache, backend
and response helpers defined there.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Dict, Optional

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.listoptions import ListOptions, list_options
from megaplane.apimachinery.meta import format_rfc3339, now_rfc3339, parse_rfc3339
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.selectors import matches_fields, matches_labels
from megaplane.apiserver.http.decode import delete_options
from megaplane.apiserver.http.routing import RequestInfo
from megaplane.apiserver.http.transport import Request, Response
from megaplane.apiserver.watchcache import CachedObject

if TYPE_CHECKING:
    from megaplane.apiserver.registry.handlers import ResourceHandlers

__all__ = ["DeleteVerbs"]


class DeleteVerbs:
    def delete(self: "ResourceHandlers", info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        opts = delete_options(req, q)
        cur = self._current(info)
        return self._delete_one(req, r, cur, opts)

    def delete_object(self: "ResourceHandlers", req: Request, r: Resource, cur: CachedObject, opts: Dict[str, Any]) -> Any:
        """DELETE of `cur` on behalf of a built-in controller."""
        return self._delete_one(req, r, cur, opts)

    def deletecollection(self: "ResourceHandlers", info: RequestInfo, req: Request, q: Dict[str, str]) -> Any:
        r = info.resource
        assert r is not None
        lopts = list_options(q, r, watch=False)
        opts = delete_options(req, q)
        cache = self.cache(r)
        victims = [
            o
            for o in cache.iter_prefix(r.namespace_prefix(self._ns(info)))
            if matches(lopts, o)
        ]
        items = []
        last = 0
        for cur in victims:
            try:
                resp = self._delete_one(req, r, cur, opts)
            except errors.StatusError as exc:
                if exc.reason != "NotFound":
                    raise
                continue
            if not isinstance(resp, Response):
                resp.close()  # an awaitable for durability: the one wait below covers every write
            last = max(last, self._last_write)
            items.append(cur.data)  # upstream answers with the list as it was before the deletes
        rev = self.backend.revision()
        return self._after(last, self._list_response(req, r, items, rev, "", None))

    # -- one object ----------------------------------------------------------------------------

    def _delete_one(self: "ResourceHandlers", req: Request, r: Resource, cur: CachedObject, opts: Dict[str, Any]) -> Any:
        name = cur.facts.name
        self._check_delete_preconditions(r, cur, opts)
        dry = bool(opts.get("dryRun"))
        obj = orjson.loads(cur.data)
        meta = obj["metadata"]
        self._last_write = 0
        if r.group == "" and r.plural == "namespaces":
            self.server.namespaces.admit_delete(name)
            if not meta.get("deletionTimestamp"):
                # The first delete starts termination; the namespace lifecycle removes the content.
                meta["deletionTimestamp"] = now_rfc3339()
                obj.setdefault("status", {})["phase"] = "Terminating"
                return self._write_deletion_mark(req, r, cur, obj, opts, dry)
            if (obj.get("spec") or {}).get("finalizers"):
                return self._deleted_answer(req, r, cur.data, opts)
        marked = self._mark_for_deletion(r, obj, opts)
        if marked is None:  # graceful deletion already pending with a period no shorter than this one
            return self._finished_delete(req, r, cur)
        if marked:
            return self._write_deletion_mark(req, r, cur, obj, opts, dry)
        if dry:
            return self._finished_delete(req, r, cur)
        ok, prev, rev = self.backend.delete(cur.key, cur.rv)  # _last_write: for deletecollection's one wait
        if not ok:
            if prev is None:
                raise errors.not_found(r.group, r.plural, name)
            raise errors.conflict_modified(r.group, r.plural, name)
        self.server.release(r, obj)
        self._last_write = rev
        return self._after(rev, self._finished_delete(req, r, cur))

    def _check_delete_preconditions(self, r: Resource, cur: CachedObject, opts: Dict[str, Any]) -> None:
        pre = opts.get("preconditions") or {}
        kind = f"{r.kind}.{r.group}" if r.group else r.kind  # BeforeDelete names the kind, not the resource
        if pre.get("uid") and pre["uid"] != cur.facts.uid:
            raise errors.StatusError(
                409, "Conflict",
                f'Operation cannot be fulfilled on {kind} "{cur.facts.name}": the UID in the precondition '
                f"({pre['uid']}) does not match the UID in record ({cur.facts.uid}). "
                "The object might have been deleted and then recreated",
                errors.details(cur.facts.name, r.group, r.kind),
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != str(cur.rv):
            raise errors.StatusError(
                409, "Conflict",
                f'Operation cannot be fulfilled on {kind} "{cur.facts.name}": the ResourceVersion in the precondition '
                f"({pre['resourceVersion']}) does not match the ResourceVersion in record ({cur.rv}). "
                "The object might have been modified",
                errors.details(cur.facts.name, r.group, r.kind),
            )

    def _mark_for_deletion(self: "ResourceHandlers", r: Resource, obj: Dict[str, Any], opts: Dict[str, Any]) -> Optional[bool]:
        """Set the deletion marks on `obj`; True if it must be kept (marked), False to delete it now,
        None when a graceful deletion is already pending and this request changes nothing."""
        meta = obj["metadata"]
        finalizers = bool(meta.get("finalizers"))
        period = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp"):
            if not period:  # held by finalizers (or a grace period already at 0)
                return True if finalizers else False
            want = opts.get("gracePeriodSeconds")
            if want is None or want >= period:
                return None  # only a shorter grace period may be asked for
            start = parse_rfc3339(meta["deletionTimestamp"])
            if start is not None:
                meta["deletionTimestamp"] = format_rfc3339(start - datetime.timedelta(seconds=period - want))
            meta["deletionGracePeriodSeconds"] = want
            return True if want > 0 or finalizers else False
        grace = self.server.grace_period(r, obj, opts)
        if grace > 0:
            meta["deletionTimestamp"] = now_rfc3339(grace)
            meta["deletionGracePeriodSeconds"] = grace
            return True
        if finalizers:
            meta["deletionTimestamp"] = now_rfc3339()
            meta["deletionGracePeriodSeconds"] = 0
            return True
        return False

    def _write_deletion_mark(
        self: "ResourceHandlers", req: Request, r: Resource, cur: CachedObject, obj: Dict[str, Any],
        opts: Dict[str, Any], dry: bool,
    ) -> Any:
        if dry:
            return self._deleted_answer(req, r, orjson.dumps(obj), opts)
        kv = self.cas_update(r, cur, obj)
        self._last_write = kv[2]
        self.server.after_mark_deleted(r, obj)
        return self._after(kv[2], self._deleted_answer(req, r, kv[4], opts))

    def _deleted_answer(self: "ResourceHandlers", req: Request, r: Resource, data: bytes, opts: Dict[str, Any]) -> Response:
        """A kept (marked) object: 200, or 202 when the client asked for orphanDependents=false (delete.go)."""
        status = 202 if opts.get("orphanDependents") is False else 200
        return self._respond(req, r, data, status)

    def _finished_delete(self: "ResourceHandlers", req: Request, r: Resource, cur: CachedObject) -> Response:
        """finalizeDelete: the object itself for stores that return it, else a Success Status naming it."""
        if r.returns_deleted_object:
            return self._respond(req, r, cur.data)
        facts = cur.facts
        details: Dict[str, Any] = {"name": facts.name}
        if r.group:
            details["group"] = r.group
        details["kind"] = r.plural  # upstream puts the resource in Kind here
        details["uid"] = facts.uid
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        return Response(200, orjson.dumps(body))


def matches(opts: ListOptions, obj: CachedObject) -> bool:
    if not opts.labels and not opts.fields:
        return True
    f = obj.facts
    return matches_labels(opts.labels, f.labels) and matches_fields(opts.fields, f.fields)
