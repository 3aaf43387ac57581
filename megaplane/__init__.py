"""megaplane: a Kubernetes-compatible control plane in Python, built for a million nodes.

Packages:
- `megaplane.store`: the etcd-compatible in-memory state store.
"""

__version__ = "0.1.0"
