"""The objects besides nodes and pods that the plugins read: Namespaces' labels, and the Services and workloads
behind PodTopologySpread's default selector.

Filled by the scheduler's informers (`upsert` / `delete` with the object
as the API serves it). `default_selector` is upstream's
`helper.DefaultSelector` (v1.32): the merged `spec.selector` of the
Services in the pod's namespace that select it, then the requirements of
the ReplicaSets and StatefulSets selecting it (a nil or empty workload
selector selects nothing). ReplicationControllers are not served by
megaplane's API, so none can select a pod. Answers are cached per
(namespace, labels) until any of these objects changes.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Tuple

from .labels import NOTHING, Selector, SelectorError, selector_from, selector_from_set

__all__ = ["ClusterObjects", "SERVICES", "REPLICA_SETS", "STATEFUL_SETS", "NAMESPACES"]

NAMESPACES, SERVICES, REPLICA_SETS, STATEFUL_SETS = "namespaces", "services", "replicasets", "statefulsets"
_KINDS = (SERVICES, REPLICA_SETS, STATEFUL_SETS)


class ClusterObjects:
    def __init__(self) -> None:
        self.namespace_labels: Dict[str, Dict[str, str]] = {}
        #: kind -> namespace -> name -> selector (Services: their label map as a selector, None when nil).
        self._selectors: Dict[str, Dict[str, Dict[str, Optional[Selector]]]] = {k: {} for k in _KINDS}
        self._service_sets: Dict[str, Dict[str, Dict[str, str]]] = {}
        self._defaults: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], Selector] = {}
        self._namespace_matches: Dict[Selector, FrozenSet[str]] = {}
        self.generation = 0

    # -- feeding --------------------------------------------------------------------------------

    def upsert(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        if kind == NAMESPACES:
            labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
            if self.namespace_labels.get(name) != labels:
                self.namespace_labels[name] = labels
                self._namespace_matches.clear()
            return
        ns = str(meta.get("namespace", ""))
        spec = obj.get("spec") or {}
        if kind == SERVICES:
            raw = spec.get("selector")
            sel: Optional[Selector] = None
            if raw is not None:
                labels = {str(k): str(v) for k, v in raw.items()}
                self._service_sets.setdefault(ns, {})[name] = labels
                sel = selector_from_set(labels)
            else:
                self._service_sets.get(ns, {}).pop(name, None)
        else:
            try:
                sel = selector_from(spec.get("selector"))
            except SelectorError:
                sel = NOTHING
        by_name = self._selectors[kind].setdefault(ns, {})
        if name in by_name and by_name[name] == sel:
            return
        by_name[name] = sel
        self._changed()

    def delete(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        if kind == NAMESPACES:
            if self.namespace_labels.pop(name, None) is not None:
                self._namespace_matches.clear()
            return
        ns = str(meta.get("namespace", ""))
        if self._selectors[kind].get(ns, {}).pop(name, "absent") != "absent":
            self._service_sets.get(ns, {}).pop(name, None)
            self._changed()

    def _changed(self) -> None:
        self.generation += 1
        self._defaults.clear()

    # -- reads ------------------------------------------------------------------------------------

    def labels_of_namespace(self, namespace: str) -> Optional[Dict[str, str]]:
        """GetNamespaceLabelsSnapshot: the namespace's labels, None when it is not known."""
        return self.namespace_labels.get(namespace)

    def namespaces_matching(self, selector: Selector) -> FrozenSet[str]:
        """Names of the namespaces whose labels `selector` matches (nsLister.List(selector))."""
        found = self._namespace_matches.get(selector)
        if found is None:
            found = frozenset(n for n, labels in self.namespace_labels.items() if selector.matches(labels))
            if len(self._namespace_matches) > 1024:
                self._namespace_matches.clear()
            self._namespace_matches[selector] = found
        return found

    def default_selector(self, namespace: str, labels: Mapping[str, str]) -> Selector:
        """helper.DefaultSelector for a pod of `namespace` with `labels` (empty: nothing selects the pod)."""
        key = (namespace, tuple(sorted(labels.items())))
        found = self._defaults.get(key)
        if found is not None:
            return found
        merged: Dict[str, str] = {}
        services = self._service_sets.get(namespace, {})
        for name, sel in self._selectors[SERVICES].get(namespace, {}).items():
            if sel is not None and sel.matches(labels):
                merged.update(services.get(name, {}))
        selector = selector_from_set(merged)
        extra: List[Any] = []
        for kind in (REPLICA_SETS, STATEFUL_SETS):
            for sel in self._selectors[kind].get(namespace, {}).values():
                if sel is not None and not sel.empty and sel.matches(labels):
                    extra.extend(sel.requirements)
        if extra:
            selector = selector.add(tuple(extra))
        if len(self._defaults) > 4096:
            self._defaults.clear()
        self._defaults[key] = selector
        return selector
