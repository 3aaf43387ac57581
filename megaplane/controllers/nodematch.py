"""Whether a pod may go to a node, as the DaemonSet controller asks it (upstream's component-helpers
scheduling/corev1: GetRequiredNodeAffinity, FindMatchingUntoleratedTaint, ToleratesTaint).

- `matches_required_affinity`: the pod's nodeSelector (every label equal)
  and its required node affinity (any term; in a term every
  matchExpression on the node's labels and every matchField on
  `metadata.name`);
- `untolerated_taint`: the first of the node's taints (of the effects
  asked about) none of the pod's tolerations tolerates.

The scheduler has its own, faster form of these over its node table; this
one reads plain objects, one node at a time.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

__all__ = ["matches_required_affinity", "target_node_name", "tolerates", "untolerated_taint"]


def _requirement_matches(req: Mapping[str, Any], value: Optional[str]) -> bool:
    op = req.get("operator")
    values = [str(v) for v in req.get("values") or ()]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str], name: str) -> bool:
    expressions = term.get("matchExpressions") or ()
    fields = term.get("matchFields") or ()
    if not expressions and not fields:
        return False  # an empty term matches nothing
    for req in expressions:
        if not _requirement_matches(req, labels.get(str(req.get("key")))):
            return False
    for req in fields:
        value = name if req.get("key") == "metadata.name" else None
        if not _requirement_matches(req, value):
            return False
    return True


def matches_required_affinity(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    name = str(meta.get("name") or "")
    return any(_term_matches(t, labels, name) for t in required.get("nodeSelectorTerms") or ())


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """ToleratesTaint: same effect (or any), same key (or any with Exists), and Equal values or Exists."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def untolerated_taint(taints: Iterable[Mapping[str, Any]], tolerations: Sequence[Mapping[str, Any]],
                      include: Callable[[Mapping[str, Any]], bool]) -> Optional[Mapping[str, Any]]:
    for taint in taints:
        if not include(taint):
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def target_node_name(pod: Mapping[str, Any]) -> Optional[str]:
    """The node a pod is for: its nodeName, or the one node its required affinity names by metadata.name
    (GetTargetNodeName, for daemon pods not yet bound)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution")) or {}
    terms: Sequence[Mapping[str, Any]] = required.get("nodeSelectorTerms") or []
    if len(terms) != 1:
        return None
    for req in terms[0].get("matchFields") or ():
        values: Sequence[Any] = req.get("values") or []
        if req.get("key") == "metadata.name" and req.get("operator") == "In" and len(values) == 1:
            return str(values[0])
    return None
