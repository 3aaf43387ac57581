"""OpenAPI documents for the served resources: /openapi/v3 (index and per group-version) and /openapi/v2.

This package owns turning a list of served resources (`ResourceInfo`) plus the
Kubernetes 1.32 object schemas (`megaplane.apiserver.schema.definitions`) into the JSON bodies
that upstream's kube-apiserver serves at:

* ``GET /openapi/v3``: the index, ``{"paths": {"api/v1": {"serverRelativeURL":
  "/openapi/v3/api/v1?hash=<SHA512>"}, ...}}``;
* ``GET /openapi/v3/<api/v1 | apis/<group>/<version>>``: one OpenAPI 3.0
  document per group-version (paths + ``components.schemas``);
* ``GET /openapi/v2``: one Swagger 2.0 document for everything, as JSON or as gnostic's
  ``openapi_v2.Document`` protobuf (v2proto.py), negotiated as kube-openapi does (handler.py).

What clients rely on (from reading kubectl 1.32 / client-go):

* kubectl's field-validation check (cli-runtime ``queryParamVerifierV3``)
  fetches the index, takes the entry ``api/v1`` or ``apis/<g>/<v>``, fetches
  that document and scans ``paths`` for a **PATCH** operation whose
  ``x-kubernetes-group-version-kind`` (a single ``{group, kind, version}``
  object, not a list) is the kind being sent; the first such operation decides:
  if its ``parameters`` name ``fieldValidation``, kubectl sends
  ``fieldValidation=Strict`` and lets the server reject unknown fields.
  Go map iteration is random, so *every* PATCH operation of a kind (the
  resource and its ``status`` subresource) must list the parameter.
* ``kubectl explain`` (v3 template) looks up the GVK from the operations on
  ``/api[s]/.../<resource>[/{name}]`` or the namespaced variants, then finds
  the component schema whose ``x-kubernetes-group-version-kind`` *list*
  contains it and walks ``properties``/``items``/``additionalProperties``,
  following ``$ref`` (siblings such as ``description`` allowed). It compares
  ``type`` with ``"object"``, so ``type`` must be a single string.

The schemas come from kubernetes-validate's JSON-schema flavour, so they are
converted back to OpenAPI form here: nullable type lists collapse to one type,
the "strict" flavour's ``additionalProperties: false`` is dropped (it is not
in upstream's documents), the ``enum`` that flavour adds to ``apiVersion`` /
``kind`` is dropped, and the ``oneOf`` encodings of IntOrString / Quantity go
back to upstream's string forms.

Documents are built lazily, once per `OpenAPI` instance, and cached as bytes;
the index hashes are SHA-512 of those bytes (stable for a given resource list).

Layout: common.py (ResourceInfo, shared names and parameters), schemas.py
(schema conversion and closure), paths.py (paths and operations, described
once), v3.py and v2.py (rendering), document.py (`OpenAPI`: build once, cache,
index hashes), v2proto.py (the v2 JSON -> gnostic's Document protobuf; pb/ holds the vendored
OpenAPIv2.proto and its generated module), handler.py (GET /openapi/v2: negotiation, ETag, 304).
"""

from __future__ import annotations

from megaplane.apiserver.schema.openapi.common import ALL_VERBS, ResourceInfo, gv_path
from megaplane.apiserver.schema.openapi.document import OpenAPI

__all__ = ["ResourceInfo", "OpenAPI", "ALL_VERBS", "gv_path"]
