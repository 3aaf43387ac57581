"""`OpenAPI`: builds the documents of a fixed resource list once, caches the bytes, serves index and hashes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from megaplane.apiserver.schema import definitions as schema
from megaplane.apiserver.schema.openapi.common import ResourceInfo, Schema, _gvk, gv_path
from megaplane.apiserver.schema.openapi.paths import _path_items, _PathItem
from megaplane.apiserver.schema.openapi.v2 import _build_v2
from megaplane.apiserver.schema.openapi.v2proto import to_protobuf
from megaplane.apiserver.schema.openapi.v3 import _build_v3


class OpenAPI:
    """Builds and caches the OpenAPI documents for a fixed list of served resources."""

    def __init__(self, resources: List[ResourceInfo],
                 schemas: Optional[Dict[Tuple[str, str, str], Schema]] = None) -> None:
        self._resources = list(resources)
        # (group, version, kind) -> the kind's schema where the 1.32 schemas have none (custom resources).
        self._schemas = dict(schemas or {})
        self._lock = threading.Lock()
        self._v3: Optional[Dict[str, bytes]] = None
        self._v3_hashes: Dict[str, str] = {}
        self._v3_index: Optional[bytes] = None
        self._v2: Optional[bytes] = None
        # The v2 document's protobuf form (built from the JSON bytes on first ask), ETag and build time.
        self._v2_pb: Optional[bytes] = None
        self._v2_etag = ""
        self._v2_built = 0.0
        # Definitions for kinds the 1.32 schemas lack (e.g. custom resources): a free-form object,
        # so explain and the field-validation check still find a schema for the kind.
        self._synth: Dict[str, Schema] = {}

    # ---- public API

    def group_versions(self) -> List[str]:
        """Document paths served under /openapi/v3/ ("api/v1", "apis/apps/v1", ...)."""
        return sorted(self._documents_v3())

    def v3_index(self) -> bytes:
        """JSON body of GET /openapi/v3."""
        docs = self._documents_v3()
        with self._lock:
            if self._v3_index is None:
                paths = {
                    p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={self._v3_hashes[p]}"}
                    for p in sorted(docs)
                }
                self._v3_index = _dumps({"paths": paths})
            return self._v3_index

    def v3_document(self, path: str) -> Optional[bytes]:
        """JSON body of GET /openapi/v3/<path> ("api/v1", "/apis/apps/v1"); None if not served."""
        return self._documents_v3().get(path.split("?", 1)[0].strip("/"))

    def v3_hash(self, path: str) -> Optional[str]:
        """The hash in the index for a document path (servers use it as ETag / to redirect stale hashes)."""
        self._documents_v3()
        return self._v3_hashes.get(path.split("?", 1)[0].strip("/"))

    def v2_document(self) -> bytes:
        """JSON body of GET /openapi/v2 (Swagger 2.0, every group-version in one document)."""
        with self._lock:
            if self._v2 is None:
                groups = [self._path_items(g, v, items) for (g, v), items in sorted(self._by_gv().items())]
                self._v2 = _dumps(_build_v2(groups, self._synth))
                self._v2_etag = hashlib.sha512(self._v2).hexdigest().upper()
                self._v2_built = time.time()
            return self._v2

    def v2_protobuf(self) -> bytes:
        """The same document as gnostic's openapi_v2.Document protobuf (kube-openapi's ToProtoBinary of the JSON)."""
        body = self.v2_document()
        with self._lock:
            if self._v2_pb is None:
                self._v2_pb = to_protobuf(body)
            return self._v2_pb

    def v2_etag(self) -> str:
        """ETag of GET /openapi/v2 in either form: SHA-512 of the JSON, upper-case hex (kube-openapi's computeETag)."""
        self.v2_document()
        return self._v2_etag

    def v2_last_modified(self) -> float:
        """When the v2 document was built (its Last-Modified)."""
        self.v2_document()
        return self._v2_built

    # ---- building

    def _documents_v3(self) -> Dict[str, bytes]:
        with self._lock:
            if self._v3 is None:
                docs: Dict[str, bytes] = {}
                for (group, version), items in self._by_gv().items():
                    body = _dumps(_build_v3(self._path_items(group, version, items), self._synth))
                    key = gv_path(group, version)
                    docs[key] = body
                    self._v3_hashes[key] = hashlib.sha512(body).hexdigest().upper()
                self._v3 = docs
            return self._v3

    def _by_gv(self) -> Dict[Tuple[str, str], List[ResourceInfo]]:
        out: Dict[Tuple[str, str], List[ResourceInfo]] = {}
        for r in self._resources:
            out.setdefault((r.group, r.version), []).append(r)
        return out

    def _definition(self, group: str, version: str, kind: str) -> str:
        name = schema.definition_for(group, version, kind)
        if name is not None:
            return name
        # Synthesize a name in upstream's style (reverse-DNS group) for a kind without a schema.
        rev = ".".join(reversed(group.split("."))) if group else "io.k8s.api.core"
        name = f"{rev}.{version}.{kind}"
        given = self._schemas.get((group, version, kind))
        if given is not None:
            self._synth[name] = given
        elif name not in self._synth:
            self._synth[name] = {
                "description": f"{kind} ({group or 'core'}/{version}); no schema is published for this kind.",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "x-kubernetes-group-version-kind": [_gvk(group, version, kind)],
            }
        return name

    def _path_items(self, group: str, version: str, items: List[ResourceInfo]) -> List[_PathItem]:
        return _path_items(self._definition, group, version, items)


def _dumps(doc: Any) -> bytes:
    # Sorted keys: byte-stable output, so the index hashes only change when content does.
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
