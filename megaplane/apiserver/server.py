"""The API server: one object that owns the caches, routes requests and runs the built-in loops.

Routing is split in two: resource paths go to `ResourceHandlers` through
`routing.parse_path`; everything else (/version, /healthz, /livez,
/readyz, /metrics, discovery, /openapi) is answered here. Hooks that need
server-wide state live here too: service IP allocation, event storage
leases, grace periods. The namespace lifecycle (admission and the built-in
namespace and service-account controllers) is `namespaces.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from megaplane import __version__
from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import RESOURCES, SUBRESOURCE_VERBS, Resource, lookup
from megaplane.apiserver.discovery import Discovery
from megaplane.apiserver.http.routing import parse_path, parse_query
from megaplane.apiserver.http.transport import HTTPServer, Request, Response, StreamResponse
from megaplane.apiserver.metrics import APIMetrics
from megaplane.apiserver.registry.handlers import ResourceHandlers
from megaplane.apiserver.registry.namespaces import NamespaceLifecycle
from megaplane.apiserver.registry.services import ServiceAllocations
from megaplane.apiserver.schema import defaults
from megaplane.apiserver.schema.fieldvalidation import (
    FieldValidationError,
    InvalidDirectiveError,
    decode_error_message,
    validate,
)
from megaplane.apiserver.watchcache import CachedObject, WatchCache
from megaplane.store.backend import Backend

__all__ = ["APIServer", "APIServerConfig", "VERSION_INFO"]

log = logging.getLogger("megaplane.apiserver")

# kubectl here is a version dispatcher: minor "32" selects its built-in 1.32 client.
VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-megaplane",
    "gitCommit": "megaplane-" + __version__,
    "gitTreeState": "clean",
    "buildDate": "2026-11-22T00:00:00Z",
    "goVersion": "python",
    "compiler": "cpython",
    "platform": "linux/amd64",
}

BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class APIServerConfig:
    #: --event-ttl: how long Events live (kube-apiserver default 1h).
    event_ttl: int = 3600
    #: --service-cluster-ip-range
    service_cluster_ip_range: str = "10.96.0.0/12"
    #: --service-node-port-range
    service_node_port_range: str = "30000-32767"
    #: Address reported in /api's serverAddressByClientCIDRs.
    advertise_address: str = "127.0.0.1"
    #: Seconds between BOOKMARK events to watchers that allow them.
    bookmark_interval: float = 60.0
    #: Watch cache history window (seconds; upstream keeps 75 s).
    watch_cache_window: float = 75.0
    #: Events every watch cache keeps whatever their age (--default-watch-cache-size).
    watch_cache_min_events: int = 1000
    #: Most events a watch cache keeps.
    watch_cache_max_events: int = 100_000
    #: The port the `kubernetes` Service's endpoints name: where this server answers HTTPS.
    endpoint_port: int = 6443


class APIServer:
    def __init__(self, backend: Backend, config: Optional[APIServerConfig] = None) -> None:
        self.backend = backend
        self.config = config or APIServerConfig()
        self.caches: Dict[bytes, WatchCache] = {}
        for r in RESOURCES:
            if r.storage_of is None and r.prefix not in self.caches:
                self.caches[r.prefix] = WatchCache(
                    r,
                    backend,
                    window_seconds=self.config.watch_cache_window,
                    min_events=self.config.watch_cache_min_events,
                    max_events=max(self.config.watch_cache_max_events, self.config.watch_cache_min_events),
                )
        self.handlers = ResourceHandlers(self)
        self.discovery = Discovery(self.config.advertise_address)
        self.metrics = APIMetrics(self)
        self.registry = CollectorRegistry()
        self.registry.register(self.metrics)
        self.http = HTTPServer(self.handle)
        self.services = ServiceAllocations(self.config.service_cluster_ip_range, self.config.service_node_port_range)
        self._event_lease: Tuple[int, float, int] = (0, 0.0, 0)
        self._tasks: List[asyncio.Task] = []
        self._openapi: Any = None
        self.namespaces = NamespaceLifecycle(self)
        self.started = False
        self._verb_handlers = {
            "get": self.handlers.get,
            "list": self.handlers.list,
            "watch": self.handlers.watch,
            "create": self.handlers.create,
            "update": self.handlers.update,
            "patch": self.handlers.patch,
            "delete": self.handlers.delete,
            "deletecollection": self.handlers.deletecollection,
        }

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Fill the caches, create the bootstrap objects and start the built-in loops."""
        loop = asyncio.get_running_loop()
        for cache in self.caches.values():
            cache.start(loop)
        for obj in self.cache_for(lookup("", "services")).objects.values():  # type: ignore[arg-type]
            self.services.restore(orjson.loads(obj.data).get("spec") or {})
        await self._bootstrap()
        self._tasks.append(loop.create_task(self._bookmarks()))
        self._tasks.append(loop.create_task(self.namespaces.run()))
        self.started = True

    async def listen(self, host: str, port: int, ssl: Any = None) -> int:
        return await self.http.listen(host, port, ssl)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.http.close()
        for cache in self.caches.values():
            cache.stop()

    async def _bootstrap(self) -> None:
        ns = lookup("", "namespaces")
        assert ns is not None
        for name in BOOTSTRAP_NAMESPACES:
            if self.namespace(name) is None:
                await self.internal_create(ns, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        # The `kubernetes` Service and its endpoints, as kube-apiserver's kubernetes-service controller keeps them.
        port = self.config.endpoint_port
        labels = {"component": "apiserver", "provider": "kubernetes"}
        bootstrap = [
            ("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "labels": labels},
                          "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}}),
            ("endpoints", {"apiVersion": "v1", "kind": "Endpoints",
                           "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                           "subsets": [{"addresses": [{"ip": self.config.advertise_address}],
                                        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}),
            ("endpointslices", {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                                "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
                                "addressType": "IPv6" if ":" in self.config.advertise_address else "IPv4",
                                "endpoints": [{"addresses": [self.config.advertise_address], "conditions": {"ready": True}}],
                                "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}),
        ]
        for plural, obj in bootstrap:
            r = next(x for x in RESOURCES if x.plural == plural and x.storage_of is None)
            if self.cache_for(r).get(r.key("default", "kubernetes")) is None:
                await self.internal_create(r, "default", obj)

    async def internal_create(self, r: Resource, namespace: str, obj: Dict[str, Any]) -> None:
        """Create an object as a client would, from inside the server."""
        path = f"/api/{r.version}" if not r.group else f"/apis/{r.group}/{r.version}"
        if r.namespaced:
            path += f"/namespaces/{namespace}"
        req = Request("POST", f"{path}/{r.plural}", "", {"content-type": "application/json"}, orjson.dumps(obj), None)
        try:
            result = self.handle(req)
            if asyncio.iscoroutine(result):
                await result
        except errors.StatusError as exc:
            if exc.reason != "AlreadyExists":
                raise

    # -- caches and lookups -----------------------------------------------------------------

    def cache_for(self, r: Resource) -> WatchCache:
        if r.storage_of is not None:
            base = lookup("", r.storage_of)
            assert base is not None
            return self.caches[base.prefix]
        return self.caches[r.prefix]

    def caches_by_resource(self) -> Iterator[Tuple[Resource, WatchCache]]:
        for cache in self.caches.values():
            yield cache.resource, cache

    def namespace(self, name: str) -> Optional[CachedObject]:
        ns = lookup("", "namespaces")
        assert ns is not None
        return self.caches[ns.prefix].get(ns.key("", name))

    def schema_for(self, r: Resource) -> Optional[Dict[str, Any]]:
        from megaplane.apiserver.schema import definitions as schema

        name = schema.definition_for(r.group, r.version, r.kind)
        return schema.definitions()[name] if name else None

    @property
    def openapi(self) -> Any:
        if self._openapi is None:
            from megaplane.apiserver.schema.openapi import OpenAPI, ResourceInfo

            infos = [
                ResourceInfo(r.group, r.version, r.plural, r.kind, r.namespaced, r.subresources, r.verbs)
                for r in RESOURCES
            ]
            self._openapi = OpenAPI(infos)
        return self._openapi

    # -- hooks used by the handlers ----------------------------------------------------------

    def defaults(self, r: Resource, obj: Dict[str, Any]) -> None:
        defaults.run_defaulters(r.group, r.plural, obj)

    def fill_zero_values(self, r: Resource, obj: Dict[str, Any]) -> None:
        """Zero values Go always serialises and strict clients require (after status resets)."""
        defaults.fill_zero_values(r.group, r.plural, obj)

    def field_validation(self, r: Resource, obj: Dict[str, Any], directive: str, verb: str = "create") -> List[str]:
        """Unknown fields per ?fieldValidation= (Strict: 400; Warn, the default: warnings)."""

        options = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}.get(verb, "CreateOptions")
        try:
            return validate(r.group, r.version, r.kind, obj, directive, options_kind=options)
        except FieldValidationError as exc:
            raise errors.bad_request(decode_error_message(r.kind, r.group_version, exc.message)) from None
        except InvalidDirectiveError as exc:
            st = exc.status()
            raise errors.StatusError(exc.code, exc.reason, st["message"], st["details"]) from None

    def admit_create(self, r: Resource, obj: Dict[str, Any]) -> None:
        """Allocations a create needs before it is stored (service cluster IPs and node ports)."""
        if r.group == "" and r.plural == "services":
            self.services.admit_create(obj)

    def admit_update(self, r: Resource, obj: Dict[str, Any], old: Dict[str, Any]) -> List[int]:
        """Allocations an update needs; what it returns is given back by `release_update` if nothing is stored."""
        if r.group == "" and r.plural == "services":
            return self.services.admit_update(obj, old)
        return []

    def release_update(self, r: Resource, taken: List[int]) -> None:
        if taken:
            self.services.release_ports(taken)

    def after_update(self, r: Resource, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        if r.group == "" and r.plural == "services":
            self.services.after_update(obj, old)

    def release(self, r: Resource, obj: Dict[str, Any]) -> None:
        """Give back what `obj` holds (service IPs, node ports): deleted, or never stored."""
        if r.group == "" and r.plural == "services":
            self.services.release(obj)

    def grace_period(self, r: Resource, obj: Dict[str, Any], opts: Dict[str, Any]) -> int:
        """Seconds of graceful deletion: pods on a node get their terminationGracePeriodSeconds."""
        if not (r.group == "" and r.plural == "pods"):
            return 0
        if "gracePeriodSeconds" in opts and opts["gracePeriodSeconds"] is not None:
            grace = int(opts["gracePeriodSeconds"])
        else:
            grace = int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        # Not on a node, or finished: nothing to wait for (upstream deletes at once).
        if not (obj.get("spec") or {}).get("nodeName"):
            return 0
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        return max(grace, 0)

    def after_mark_deleted(self, r: Resource, obj: Dict[str, Any]) -> None:
        if r.group == "" and r.plural == "namespaces":
            self.namespaces.wakeup.set()

    def storage_lease(self, r: Resource) -> int:
        """The lease an Event is stored under, as upstream's lease manager picks it.

        One lease is shared by the events written within its reuse period
        (5% of --event-ttl, at most a minute, at most 1000 events); it is
        granted for the TTL plus that period, so each event lives at least
        --event-ttl.
        """
        if r.plural != "events":
            return 0
        ttl = self.config.event_ttl
        reuse = min(60.0, 0.05 * ttl)
        lease, granted, used = self._event_lease
        now = time.monotonic()
        if not lease or now - granted >= reuse or used >= 1000:
            lease = self.backend.lease_grant(ttl + max(int(reuse), 1))
            granted, used = now, 0
        self._event_lease = (lease, granted, used + 1)
        return lease

    # -- built-in loops ------------------------------------------------------------------------

    async def _bookmarks(self) -> None:
        while True:
            await asyncio.sleep(self.config.bookmark_interval)
            for cache in self.caches.values():
                # Events queued for broadcast go out before a bookmark that covers them.
                cache.flush_now()
                rev = cache.revision
                for w in list(cache.watchers) + list(cache.broadcast):
                    if w.bookmarks and not w.pending:
                        w.bookmark(rev)

    # -- request routing ---------------------------------------------------------------------

    def handle(self, req: Request) -> Any:
        path = req.path
        if path.startswith("/api/") or path.startswith("/apis/"):
            q = parse_query(req.query)
            info = parse_path(req.method, path, q)
            if info is not None:
                return self._resource(info, req, q)
        return self._other(req)

    def _resource(self, info: Any, req: Request, q: Dict[str, str]) -> Any:
        handler = self._verb_handlers[info.verb]
        r = info.resource
        allowed = SUBRESOURCE_VERBS[info.subresource] if info.subresource else r.verbs
        if info.verb not in allowed:
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        scope = request_scope(info)
        try:
            result = handler(info, req, q)
        except errors.StatusError as exc:
            self.metrics.observe(info.verb, r, info.subresource, scope, exc.code, time.perf_counter() - req.started,
                                 _dry_run_label(q))
            raise
        except Exception:
            self.metrics.observe(info.verb, r, info.subresource, scope, 500, time.perf_counter() - req.started,
                                 _dry_run_label(q))
            raise
        if asyncio.iscoroutine(result):
            return self._observed(result, info, req, scope, _dry_run_label(q))
        if not isinstance(result, StreamResponse):
            self.metrics.observe(info.verb, r, info.subresource, scope, result.status, time.perf_counter() - req.started,
                                 _dry_run_label(q))
        return result

    async def _observed(self, coro: Any, info: Any, req: Request, scope: str, dry_run: str) -> Any:
        kind = "readOnly" if info.verb in ("get", "list") else "mutating"
        self.metrics.inflight[kind] += 1
        code = 500
        try:
            result = await coro
            code = result.status
            return result
        except errors.StatusError as exc:
            code = exc.code
            raise
        finally:
            self.metrics.inflight[kind] -= 1
            self.metrics.observe(
                info.verb, info.resource, info.subresource, scope, code, time.perf_counter() - req.started, dry_run
            )

    def _other(self, req: Request) -> Response:
        path = req.path.rstrip("/") or "/"
        if req.method not in ("GET", "HEAD"):
            if path.startswith(("/api/", "/apis/")):
                return Response(404, b"404 page not found\n", b"text/plain; charset=utf-8")
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        accept = req.headers.get("accept", "")
        if path == "/version":
            return Response(200, orjson.dumps(VERSION_INFO))
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            ok = self.started
            verbose = "verbose" in req.query
            body = b"ok" if not verbose else b"[+]ping ok\n[+]etcd ok\n" + (b"healthz check passed\n" if ok else b"")
            return Response(200 if ok else 503, body, b"text/plain; charset=utf-8")
        if path == "/metrics":
            return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST.encode())
        if path == "/api":
            agg = Discovery.negotiate(accept)
            if agg is not None:
                return Response(200, self.discovery.aggregated(True, _agg_version(agg)), agg)
            return Response(200, self.discovery.api_versions())
        if path == "/apis":
            agg = Discovery.negotiate(accept)
            if agg is not None:
                return Response(200, self.discovery.aggregated(False, _agg_version(agg)), agg)
            return Response(200, self.discovery.api_group_list())
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2:
            body = self.discovery.resource_list("", parts[1])
            if body is not None:
                return Response(200, body)
        if parts[0] == "apis" and len(parts) == 2:
            body = self.discovery.api_group(parts[1])
            if body is not None:
                return Response(200, body)
        if parts[0] == "apis" and len(parts) == 3:
            body = self.discovery.resource_list(parts[1], parts[2])
            if body is not None:
                return Response(200, body)
        if path == "/openapi/v2":
            return Response(200, self.openapi.v2_document())
        if path == "/openapi/v3":
            return Response(200, self.openapi.v3_index())
        if path.startswith("/openapi/v3/"):
            doc = self.openapi.v3_document(path[len("/openapi/v3/") :])
            if doc is not None:
                return Response(200, doc)
        # Paths no API group or handler owns fall through to Go's http.NotFound upstream: plain text.
        return Response(404, b"404 page not found\n", b"text/plain; charset=utf-8")


def request_scope(info: Any) -> str:
    """The scope label: resource for named objects and creates, namespace, or cluster."""
    if info.name or info.verb == "create":
        return "resource"
    return "namespace" if info.namespace else "cluster"


def _dry_run_label(q: Dict[str, str]) -> str:
    return q.get("dryRun", "")


def _agg_version(media_type: bytes) -> str:
    return "apidiscovery.k8s.io/v2" if b"v=v2;" in media_type else "apidiscovery.k8s.io/v2beta1"
