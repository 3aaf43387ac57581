"""The autoscaling/v1 Scale view of a workload, and what a Scale write asks for."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.selectors import selector_from_dict

__all__ = ["scale_body", "requested_replicas", "object_field"]


def object_field(value: Any, what: str) -> Dict[str, Any]:
    """A nested object of a body (absent: empty), with the decoder's error when it is not an object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.bad_request(f"json: cannot unmarshal {type(value).__name__} into Go struct field {what} of type object")
    return value


def scale_body(obj: Dict[str, Any]) -> bytes:
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


def requested_replicas(scale: Dict[str, Any], name: str) -> Tuple[int, str]:
    """(spec.replicas, metadata.resourceVersion) of a Scale write; 422 for a bad replica count."""
    replicas = object_field(scale.get("spec"), "Scale.spec").get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid(
            "autoscaling", "Scale", name,
            [field_error("", "spec.replicas", replicas, "must be greater than or equal to 0")],
        )
    return replicas, object_field(scale.get("metadata"), "Scale.metadata").get("resourceVersion", "")
