"""The garbage collector (kube-controller-manager's garbage-collector-controller).

`graph` holds the ownerReferences graph and applies informer events to it;
`collector` is the component: its informers, its two work queues (attempt
to delete, attempt to orphan) and the API writes. Built only on
megaplane.client.
"""

from .collector import DEFAULT_CONCURRENT_GC_SYNCS, IGNORED_RESOURCES, GarbageCollector
from .graph import Graph, Node, ObjectMeta, ObjectReference, OwnerRef

__all__ = ["DEFAULT_CONCURRENT_GC_SYNCS", "GarbageCollector", "Graph", "IGNORED_RESOURCES", "Node", "ObjectMeta",
           "ObjectReference", "OwnerRef"]
