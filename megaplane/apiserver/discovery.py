"""Discovery documents: legacy (/api, /apis, per group-version) and aggregated (apidiscovery.k8s.io/v2).

kubectl 1.32 asks /api and /apis for the aggregated form first
(`Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`)
and falls back to the legacy documents. Both are built once from the
resource table; the aggregated answer must carry the negotiated media type
as its Content-Type or client-go ignores it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Optional, Tuple

import orjson

from megaplane.apimachinery import resources as table
from megaplane.apimachinery.resources import GROUP_VERSIONS, RESOURCES, Resource

__all__ = ["Discovery", "AGGREGATED_V2", "AGGREGATED_V2BETA1"]

AGGREGATED_V2 = b"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = b"application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

_SUB_VERBS = {"status": ["get", "patch", "update"], "scale": ["get", "patch", "update"], "binding": ["create"],
              "eviction": ["create"], "finalize": ["update"], "token": ["create"]}


def _sub_kind(r: Resource, sub: str) -> Tuple[str, str, str]:
    if sub == "scale":
        return ("autoscaling", "v1", "Scale")
    if sub == "binding":
        return ("", "v1", "Binding")
    if sub == "eviction":
        return ("policy", "v1", "Eviction")  # kubectl drain finds the Eviction version here
    if sub == "token":
        return ("authentication.k8s.io", "v1", "TokenRequest")
    return (r.group, r.version, r.kind)


def _hash(r: Resource) -> str:
    return hashlib.sha256(f"{r.group}/{r.version}/{r.kind}".encode()).digest()[:8].hex()


class Discovery:
    def __init__(self, server_address: str = "") -> None:
        self.server_address = server_address
        self._cache: Dict[Any, bytes] = {}
        self._generation = table.generation()

    def _memo(self, key: Any, build: Any) -> bytes:
        if self._generation != table.generation():  # custom resources came or went: rebuild every document
            self._cache.clear()
            self._generation = table.generation()
        body = self._cache.get(key)
        if body is None:
            body = self._cache[key] = orjson.dumps(build())
        return body

    # -- legacy -------------------------------------------------------------------------

    def api_versions(self) -> bytes:
        return self._memo(
            "api",
            lambda: {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}],
            },
        )

    def _group(self, group: str) -> Dict[str, Any]:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def api_group_list(self) -> bytes:
        groups: List[str] = []
        for g, _ in GROUP_VERSIONS:
            if g and g not in groups:
                groups.append(g)
        return self._memo(
            "apis", lambda: {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group(g) for g in groups]}
        )

    def api_group(self, group: str) -> Optional[bytes]:
        if not any(g == group for g, _ in GROUP_VERSIONS) or not group:
            return None
        return self._memo(("group", group), lambda: {"kind": "APIGroup", "apiVersion": "v1", **self._group(group)})

    def resource_list(self, group: str, version: str) -> Optional[bytes]:
        if (group, version) not in GROUP_VERSIONS:
            return None

        def build() -> Dict[str, Any]:
            out = []
            for r in RESOURCES:
                if r.group != group or r.version != version:
                    continue
                entry: Dict[str, Any] = {
                    "name": r.plural,
                    "singularName": r.singular,
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": list(r.verbs),
                }
                if r.short_names:
                    entry["shortNames"] = list(r.short_names)
                if r.categories:
                    entry["categories"] = list(r.categories)
                if r.stored:  # reviews have no storage version
                    entry["storageVersionHash"] = _hash(r)
                out.append(entry)
                for sub in r.subresources:
                    g, v, k = _sub_kind(r, sub)
                    s: Dict[str, Any] = {
                        "name": f"{r.plural}/{sub}",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": k,
                        "verbs": _SUB_VERBS.get(sub, ["get"]),
                    }
                    if g != r.group or v != r.version:
                        s["group"], s["version"] = g, v
                    out.append(s)
            gv = f"{group}/{version}" if group else version
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}

        return self._memo(("resources", group, version), build)

    # -- aggregated ------------------------------------------------------------------------

    def _aggregated_group(self, group: str) -> Dict[str, Any]:
        versions = []
        for g, v in GROUP_VERSIONS:
            if g != group:
                continue
            resources = []
            for r in RESOURCES:
                if r.group != g or r.version != v:
                    continue
                entry: Dict[str, Any] = {
                    "resource": r.plural,
                    "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                    "scope": "Namespaced" if r.namespaced else "Cluster",
                    "singularResource": r.singular,
                    "verbs": list(r.verbs),
                }
                if r.short_names:
                    entry["shortNames"] = list(r.short_names)
                if r.categories:
                    entry["categories"] = list(r.categories)
                subs = []
                for sub in r.subresources:
                    sg, sv, sk = _sub_kind(r, sub)
                    subs.append(
                        {
                            "subresource": sub,
                            "responseKind": {"group": sg, "version": sv, "kind": sk},
                            "verbs": _SUB_VERBS.get(sub, ["get"]),
                        }
                    )
                if subs:
                    entry["subresources"] = subs
                resources.append(entry)
            versions.append({"version": v, "resources": resources, "freshness": "Current"})
        meta: Dict[str, Any] = {"creationTimestamp": None}
        if group:
            meta["name"] = group
        return {"metadata": meta, "versions": versions}

    def aggregated(self, core: bool, api_version: str) -> bytes:
        def build() -> Dict[str, Any]:
            if core:
                items = [self._aggregated_group("")]
            else:
                groups: List[str] = []
                for g, _ in GROUP_VERSIONS:
                    if g and g not in groups:
                        groups.append(g)
                items = [self._aggregated_group(g) for g in groups]
            return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}

        return self._memo(("aggregated", core, api_version), build)

    @staticmethod
    def negotiate(accept: str) -> Optional[bytes]:
        """The aggregated media type the client asked for first, if any."""
        for part in accept.split(","):
            params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
            if params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io":
                if params.get("v") == "v2":
                    return AGGREGATED_V2
                if params.get("v") == "v2beta1":
                    return AGGREGATED_V2BETA1
            elif part.split(";")[0].strip() in ("application/json", "*/*"):
                return None
        return None
