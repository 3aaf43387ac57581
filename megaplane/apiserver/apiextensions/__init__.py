"""apiextensions.k8s.io/v1: CustomResourceDefinitions and the custom resources they define.

This package owns what apiextensions-apiserver does inside kube-apiserver:
the CRD kind's validation, strategy and store (crd.py, structural.py), the
naming and establishing logic (names.py), the lifecycle that adds and removes
custom resources in the resource table and the registry at runtime
(controller.py), and per custom resource version: its store and strategy
(customresource.py), schema validation (validator.py), pruning (pruning.py),
defaulting (defaulting.py), its server-side Table (printers.py) and the schema
it publishes in OpenAPI (openapi.py). The API server builds one
`CustomResourceDefinitions` over its registry and starts it after the caches.
"""

from __future__ import annotations

from megaplane.apiserver.apiextensions.controller import CustomResourceDefinitions

__all__ = ["CustomResourceDefinitions"]
