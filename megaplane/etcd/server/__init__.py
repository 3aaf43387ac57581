"""megaplane.etcd.server: the etcd v3 services over the embedded store.

`server` (EtcdServer: composes everything, lease-expiry loop, `serve`),
`member` (identity, alarms, response headers), one module per etcd service
(`kv`, `watch`, `lease`, `maintenance` with Cluster, Auth and Health), and
`views` (the narrow store Protocols the servicers are written against).
"""

from .server import EtcdServer, serve

__all__ = ["EtcdServer", "serve"]
