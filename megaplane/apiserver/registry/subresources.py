"""The subresources with their own shape: pods/binding, */scale and namespaces/finalize.

(`status` is the main object with a different strategy and lives with the
other writes in handlers.py.) `SubresourceVerbs` is a part of
`ResourceHandlers`: it uses the cache, backend and response helpers defined
there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.meta import now_rfc3339
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.selectors import selector_from_dict
from megaplane.apiserver.http.decode import check_kind, decode_body, dry_run
from megaplane.apiserver.http.routing import RequestInfo
from megaplane.apiserver.http.transport import Request, Response
from megaplane.apiserver.watchcache import CachedObject

if TYPE_CHECKING:
    from megaplane.apiserver.registry.handlers import ResourceHandlers

__all__ = ["SubresourceVerbs"]


def _object(value: Any, what: str) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.bad_request(f"json: cannot unmarshal {type(value).__name__} into Go struct field {what} of type object")
    return value


class SubresourceVerbs:
    def bind(self: "ResourceHandlers", info: RequestInfo, req: Request, q: Dict[str, str]) -> Any:
        """POST pods/{name}/binding: assign the pod to a node (the scheduler's write)."""
        r = info.resource
        assert r is not None
        dry = dry_run(q.get("dryRun"), "CreateOptions")
        body = decode_body(req, r)
        target = _object(body.get("target"), "Binding.target")
        node = target.get("name", "")
        if not node or not isinstance(node, str):
            raise errors.invalid(
                "", "Binding", info.name, [field_error("", "target.name", "", "name is required", "FieldValueRequired")]
            )
        cur = self._current(info)
        obj = orjson.loads(cur.data)
        spec = obj.setdefault("spec", {})
        if spec.get("nodeName"):
            raise errors.conflict(
                "", "pods/binding", info.name, f"pod {info.name} is already assigned to node \"{spec['nodeName']}\""
            )
        if obj["metadata"].get("deletionTimestamp"):
            raise errors.conflict(
                "", "pods/binding", info.name, f"pod {info.name} is being deleted, cannot be assigned to a host"
            )
        spec["nodeName"] = node
        status = obj.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
        )
        status["conditions"] = conditions
        if dry:
            return Response(201, _success(201))
        kv = self.cas_update(r, cur, obj)
        return self._after(kv[2], Response(201, _success(201)))

    def scale_body(self, r: Resource, obj: Dict[str, Any]) -> bytes:
        """The autoscaling/v1 Scale of a workload."""
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        selector = spec.get("selector") or {}
        reqs = selector_from_dict(selector) or ()
        sel = ",".join(
            f"{k}={next(iter(v))}" if op == "=" else f"{k} {op} ({','.join(sorted(v))})" for k, op, v in reqs
        )
        return orjson.dumps(
            {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    "name": meta.get("name"),
                    "namespace": meta.get("namespace"),
                    "uid": meta.get("uid"),
                    "resourceVersion": meta.get("resourceVersion"),
                    "creationTimestamp": meta.get("creationTimestamp"),
                },
                "spec": {"replicas": spec.get("replicas", 1)},
                "status": {"replicas": status.get("replicas", 0), "selector": sel},
            }
        )

    def update_scale(self: "ResourceHandlers", info: RequestInfo, req: Request, q: Dict[str, str]) -> Any:
        r = info.resource
        assert r is not None
        scale = decode_body(req, r)
        check_kind(scale, r, "Scale", "autoscaling/v1")
        return self.apply_scale(info, req, q, scale, self._current(info), dry_run(q.get("dryRun"), "UpdateOptions"))

    def apply_scale(
        self: "ResourceHandlers", info: RequestInfo, req: Request, q: Dict[str, str], scale: Dict[str, Any],
        cur: CachedObject, dry: bool,
    ) -> Any:
        r = info.resource
        assert r is not None
        replicas = _object(scale.get("spec"), "Scale.spec").get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(
                "autoscaling", "Scale", info.name,
                [field_error("", "spec.replicas", replicas, "must be greater than or equal to 0")],
            )
        want = _object(scale.get("metadata"), "Scale.metadata").get("resourceVersion", "")
        if want and want != str(cur.rv):
            raise errors.conflict_modified(r.group, r.plural, info.name)
        obj = orjson.loads(cur.data)
        obj.setdefault("spec", {})["replicas"] = replicas
        resp = self._write_update(info, req, q, obj, str(cur.rv), [], dry, subresource="")
        scale_of = lambda written: Response(200, self.scale_body(r, orjson.loads(written.body)))  # noqa: E731
        if isinstance(resp, Response):
            return scale_of(resp)

        async def later() -> Response:
            return scale_of(await resp)

        return later()

    def finalize_namespace(self: "ResourceHandlers", info: RequestInfo, req: Request, q: Dict[str, str],
                           obj: Dict[str, Any]) -> Any:
        """PUT namespaces/{name}/finalize: only spec.finalizers changes (the namespace controller's write)."""
        r = info.resource
        assert r is not None
        dry = dry_run(q.get("dryRun"), "UpdateOptions")
        cur = self._current(info)
        old = orjson.loads(cur.data)
        finalizers = _object(obj.get("spec"), "Namespace.spec").get("finalizers") or []
        if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
            raise errors.bad_request("json: cannot unmarshal value into Go struct field NamespaceSpec.spec.finalizers")
        old.setdefault("spec", {})["finalizers"] = finalizers
        if dry:
            return self._respond(req, r, orjson.dumps(old))
        if old["metadata"].get("deletionTimestamp") and not finalizers and not old["metadata"].get("finalizers"):
            ok, _, rev = self.backend.delete(cur.key, cur.rv)
            if not ok:
                raise errors.conflict_modified("", "namespaces", info.name)
            return self._after(rev, self._respond(req, r, cur.data))
        kv = self.cas_update(r, cur, old)
        return self._after(kv[2], self._respond(req, r, kv[4]))


def _success(code: int) -> bytes:
    return orjson.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
