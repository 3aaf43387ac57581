"""The API server component: the HTTP listeners, routing, and the non-resource endpoints.

Resource paths (/api/..., /apis/...) are routed by `http.routing.parse_path`
to the resource endpoints (`http.endpoints`), a thin adapter over the
registry (`registry.Registry`: one store per resource). Everything else
(/version, /healthz, /livez, /readyz, /metrics, discovery, /openapi) is
answered here. It is a `megaplane.runtime.Component`; what kube-apiserver
keeps in place itself (system namespaces, the `kubernetes` Service) is the
`controllers.bootstrap` component, run beside it over the loopback client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, List, Optional

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from megaplane import __version__
from megaplane.apimachinery import errors
from megaplane.apimachinery import resources as resource_table
from megaplane.apimachinery.resources import RESOURCES, SUBRESOURCE_VERBS, Resource, lookup
from megaplane.apiserver.apiextensions import CustomResourceDefinitions
from megaplane.apiserver.audit.config import AuditConfig
from megaplane.apiserver.audit.config import build as build_auditor
from megaplane.apiserver.audit.filter import AuditMetrics
from megaplane.apiserver.authn import RequestAuthenticator
from megaplane.apiserver.authn.config import AuthenticationConfig
from megaplane.apiserver.authn.config import build as build_authenticator
from megaplane.apiserver.authz import RequestAuthorizer
from megaplane.apiserver.authz.config import AuthorizationConfig
from megaplane.apiserver.authz.config import build as build_authorizer
from megaplane.apiserver.authz.impersonation import impersonate, wants_impersonation
from megaplane.apiserver.authz.reconcile import ensure_policy
from megaplane.apiserver.discovery import Discovery
from megaplane.apiserver.flowcontrol import FlowControlConfig, FlowController, FlowControlMetrics
from megaplane.apiserver.flowcontrol.objects import ensure_objects
from megaplane.apiserver.http import limits as http_limits
from megaplane.apiserver.http.endpoints import ResourceEndpoints, protobuf_status
from megaplane.apiserver.http.h2 import ALPNSwitch
from megaplane.apiserver.http.routing import parse_path, parse_query
from megaplane.apiserver.http.transport import HTTPServer, Request, Response, StreamResponse, resume
from megaplane.apiserver.metrics import APIMetrics
from megaplane.apiserver.registry.admission import DefaultTolerationSeconds
from megaplane.apiserver.registry.kinds import StrategyConfig
from megaplane.apiserver.registry.plugins import DEFAULT_ADMISSION_PLUGINS
from megaplane.apiserver.registry.plugins import install as install_admission
from megaplane.apiserver.registry.priority import CachedPriorityClasses, PriorityAdmission
from megaplane.apiserver.registry.registry import Registry, RegistryConfig
from megaplane.apiserver.registry.services import DEFAULT_SERVICE_CLUSTER_IP_RANGE
from megaplane.apiserver.watchcache import WatchCache
from megaplane.storage import Storage

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
    service_cluster_ip_range: str = DEFAULT_SERVICE_CLUSTER_IP_RANGE
    #: --service-node-port-range
    service_node_port_range: str = "30000-32767"
    #: Address reported in /api's serverAddressByClientCIDRs.
    #: Of the default service family (the `kubernetes` Service's endpoint), as kube-apiserver requires.
    advertise_address: str = "::1"
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
    #: --enable-priority-and-fairness, --max-requests-inflight, --max-mutating-requests-inflight (apiserver.flowcontrol).
    enable_priority_and_fairness: bool = True
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    #: --request-timeout: how long a non-long-running request may take (kube-apiserver: 60 s).
    request_timeout: float = 60.0
    #: --min-request-timeout: a watch without timeoutSeconds lasts a random [min, 2*min] (1800 s).
    min_request_timeout: float = 1800.0
    #: --default-not-ready-toleration-seconds / --default-unreachable-toleration-seconds (DefaultTolerationSeconds).
    default_not_ready_toleration_seconds: int = 300
    default_unreachable_toleration_seconds: int = 300
    #: --http2-max-streams-per-connection: streams an HTTP/2 client may open at once (0: 100, as upstream).
    http2_max_streams_per_connection: int = 0
    #: --client-ca-file, --token-auth-file, --service-account-*, --anonymous-auth (apiserver.authn.config).
    authentication: AuthenticationConfig = dataclasses.field(default_factory=AuthenticationConfig)
    #: --authorization-mode (apiserver.authz.config); in process AlwaysAllow, `megaplane up`/`apiserver` Node,RBAC.
    authorization: AuthorizationConfig = dataclasses.field(default_factory=AuthorizationConfig)
    #: --enable-admission-plugins / --disable-admission-plugins: the enabled ones (registry.plugins).
    admission_plugins: FrozenSet[str] = DEFAULT_ADMISSION_PLUGINS
    #: --audit-policy-file, --audit-log-* (apiserver.audit): off unless both a policy and a log path are given.
    audit: AuditConfig = dataclasses.field(default_factory=AuditConfig)


class APIServer:
    def __init__(self, storage: Storage, config: Optional[APIServerConfig] = None) -> None:
        self.storage = storage
        self.config = cfg = config or APIServerConfig()
        self.registry = Registry(storage, RegistryConfig(
            strategies=StrategyConfig(cfg.service_cluster_ip_range, cfg.service_node_port_range, cfg.event_ttl),
            watch_cache_window=cfg.watch_cache_window,
            watch_cache_min_events=cfg.watch_cache_min_events,
            watch_cache_max_events=cfg.watch_cache_max_events,
        ))
        self.caches = self.registry.caches
        #: CustomResourceDefinitions: serves the custom resources of established CRDs (apiserver.apiextensions).
        self.apiextensions = CustomResourceDefinitions(self.registry)
        if "DefaultTolerationSeconds" in cfg.admission_plugins:
            self.registry.admission.mutating.append(DefaultTolerationSeconds(
                cfg.default_not_ready_toleration_seconds, cfg.default_unreachable_toleration_seconds))
        # Priority (on by default in kube-apiserver): pods' priority from their PriorityClass, one default class.
        priority_classes = lookup("scheduling.k8s.io", "priorityclasses")
        assert priority_classes is not None
        if "Priority" in cfg.admission_plugins:
            priority = PriorityAdmission(CachedPriorityClasses(self.registry.cache_for(priority_classes)))
            self.registry.admission.mutating.append(priority)
            self.registry.admission.validating.append(priority)
        install_admission(self.registry, cfg.admission_plugins)  # LimitRanger, ServiceAccount, ResourceQuota
        self.discovery = Discovery(self.config.advertise_address)
        self.metrics = APIMetrics(self.registry)
        self.endpoints = ResourceEndpoints(self.registry, self.metrics, min_request_timeout=cfg.min_request_timeout)
        self.metrics.watches = self.endpoints.fanouts
        self.prometheus = CollectorRegistry()
        self.prometheus.register(self.metrics)
        # The flags' limits over the package defaults (tests lower the others through DEFAULT_LIMITS).
        self.http = HTTPServer(self.handle, limits=dataclasses.replace(
            http_limits.DEFAULT_LIMITS, request_timeout=cfg.request_timeout, min_request_timeout=cfg.min_request_timeout,
            http2_max_streams_per_connection=cfg.http2_max_streams_per_connection), tls_protocol=ALPNSwitch)
        self._tasks: List[asyncio.Task] = []
        self._openapi: Any = None
        self._openapi_generation = 0
        self.started = False
        #: What /readyz reports; the process that runs this server points it at its runner's readiness.
        self.readiness: Callable[[], bool] = lambda: self.started
        self._verb_handlers = self.endpoints.verbs()
        #: Who a request is from (authn/) and whether they may (authz/); the process wires the configured ones.
        self.authenticator: RequestAuthenticator = build_authenticator(self.registry, cfg.authentication)
        self.authorizer: RequestAuthorizer
        #: The authorizer loopback clients with an identity and the reviews ask (modes.ModeAuthorizer).
        self.authz: Any
        self.authorizer, self.authz = build_authorizer(self.registry, cfg.authorization)
        # Flow control: admits, queues or answers 429 before a resource handler runs (see _resource).
        self.flowcontrol = FlowController(
            FlowControlConfig(cfg.enable_priority_and_fairness, cfg.max_requests_inflight,
                              cfg.max_mutating_requests_inflight, self.http.request_timeout),
            object_count=lambda r: len(self.registry.cache_for(r).objects))
        self.prometheus.register(FlowControlMetrics(self.flowcontrol))
        # Audit wraps the whole handler (every listener, both HTTP versions); without a policy nothing is wrapped.
        self.auditor = build_auditor(cfg.audit)
        if self.auditor is not None:
            self.http.handler = self.auditor.wrap(self.http.handler)
            self.prometheus.register(AuditMetrics(self.auditor))

    # -- the Component contract ------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "apiserver"

    async def start(self) -> None:
        """Fill the caches from storage and start the built-in loops (listening is `listen`)."""
        loop = asyncio.get_running_loop()
        await self.registry.start()
        await self.apiextensions.start()
        await ensure_objects(self.registry)  # the flowcontrol.apiserver.k8s.io bootstrap objects
        if "RBAC" in self.config.authorization.modes:
            await ensure_policy(self.registry)  # the bootstrap ClusterRoles and ClusterRoleBindings
        self._tasks.append(loop.create_task(self._bookmarks()))
        if self.auditor is not None:
            self.auditor.start()
        self.started = True

    async def listen(self, host: str, port: int, ssl: Any = None) -> int:
        return await self.http.listen(host, port, ssl)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        await self.http.close()
        if self.auditor is not None:
            self.auditor.stop()
        self.apiextensions.stop()
        self.registry.stop()
        self.started = False

    def ready(self) -> bool:
        return self.started

    def statistics(self) -> Dict[str, float]:
        return {
            "objects": float(sum(len(c.objects) for c in self.registry.caches.values())),
            "watchers": float(sum(len(f) for f in self.endpoints.fanouts.values())),
            "inflight": float(sum(self.metrics.inflight.values())),
        }

    # -- lookups -------------------------------------------------------------------------------

    def cache_for(self, r: Resource) -> WatchCache:
        return self.registry.cache_for(r)

    @property
    def openapi(self) -> Any:
        if self._openapi is None or self._openapi_generation != resource_table.generation():
            from megaplane.apiserver.schema.openapi import OpenAPI, ResourceInfo

            self._openapi_generation = resource_table.generation()  # custom resources came or went: rebuild
            infos = [
                ResourceInfo(r.group, r.version, r.plural, r.kind, r.namespaced, r.subresources, r.verbs,
                             strategic_merge="openapi" not in r.extra)
                for r in RESOURCES
            ]
            # Custom resources carry their published schema (apiserver.apiextensions.openapi).
            schemas = {(r.group, r.version, r.kind): r.extra["openapi"] for r in RESOURCES if "openapi" in r.extra}
            self._openapi = OpenAPI(infos, schemas)  # type: ignore[arg-type]
        return self._openapi

    # -- built-in loops ------------------------------------------------------------------------

    async def _bookmarks(self) -> None:
        while True:
            await asyncio.sleep(self.config.bookmark_interval)
            self.endpoints.bookmark_all()

    # -- request routing ---------------------------------------------------------------------

    def handle(self, req: Request) -> Any:
        req.user = self.authenticator.authenticate(req)
        if wants_impersonation(req.headers):
            impersonate(req, self.authz)
        path = req.path
        if path.startswith("/api/") or path.startswith("/apis/"):
            q = parse_query(req.query)
            info = parse_path(req.method, path, q)
            if info is not None:
                try:
                    return self._resource(info, req, q)
                except errors.StatusError as exc:  # refused before its handler (403, 405, 429): as negotiated
                    resp = protobuf_status(req, info.resource, exc)
                    if resp is None:
                        raise
                    return resp
        self.authorizer.authorize_path(req, req.path, _NON_RESOURCE_VERBS.get(req.method, req.method.lower()))
        return self._other(req)

    def _resource(self, info: Any, req: Request, q: Dict[str, str]) -> Any:
        handler = self._verb_handlers[info.verb]
        r = info.resource
        self.authorizer.authorize_resource(req, info)
        allowed = SUBRESOURCE_VERBS[info.subresource] if info.subresource else r.verbs
        if info.verb not in allowed:
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        scope = request_scope(info)
        try:
            result = self.flowcontrol.handle(info, req, q, handler)  # runs handler(info, req, q), or a 429
            if asyncio.iscoroutine(result):
                # Step it here: most verbs finish without waiting (the embedded storage never suspends unless an
                # fsync is due), and then need no wrapping coroutine for their metrics.
                coro = result
                try:
                    fut = coro.send(None)
                except StopIteration as stop:
                    result = stop.value
                else:
                    return self._observed(resume(coro, fut), info, req, scope, _dry_run_label(q))
        except errors.StatusError as exc:
            self.metrics.observe(info.verb, r, info.subresource, scope, exc.code, time.perf_counter() - req.started,
                                 _dry_run_label(q))
            raise
        except Exception:
            self.metrics.observe(info.verb, r, info.subresource, scope, 500, time.perf_counter() - req.started,
                                 _dry_run_label(q))
            raise
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
            ok = self.readiness()
            verbose = "verbose" in req.query
            body = b"ok" if not verbose else b"[+]ping ok\n[+]etcd ok\n" + (b"healthz check passed\n" if ok else b"")
            return Response(200 if ok else 503, body, b"text/plain; charset=utf-8")
        if path == "/metrics":
            return Response(200, generate_latest(self.prometheus), CONTENT_TYPE_LATEST.encode())
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
            from megaplane.apiserver.schema.openapi.handler import serve_v2

            reply = serve_v2(self.openapi, req.method, req.headers)
            return Response(reply.status, reply.body, reply.content_type.encode(),
                            [(k.encode(), v.encode()) for k, v in reply.headers])
        if path == "/openapi/v3":
            return Response(200, self.openapi.v3_index())
        if path.startswith("/openapi/v3/"):
            doc = self.openapi.v3_document(path[len("/openapi/v3/") :])
            if doc is not None:
                return Response(200, doc)
        # Paths no API group or handler owns fall through to Go's http.NotFound upstream: plain text.
        return Response(404, b"404 page not found\n", b"text/plain; charset=utf-8")


# Non-resource request verbs are the lower-cased HTTP method (request info's NonResourceURL verbs), HEAD as get.
_NON_RESOURCE_VERBS = {"GET": "get", "HEAD": "get", "POST": "post", "PUT": "put", "PATCH": "patch", "DELETE": "delete"}


def request_scope(info: Any) -> str:
    """The scope label: resource for named objects and creates, namespace, or cluster."""
    if info.name or info.verb == "create":
        return "resource"
    return "namespace" if info.namespace else "cluster"


def _dry_run_label(q: Dict[str, str]) -> str:
    return q.get("dryRun", "")


def _agg_version(media_type: bytes) -> str:
    return "apidiscovery.k8s.io/v2" if b"v=v2;" in media_type else "apidiscovery.k8s.io/v2beta1"
