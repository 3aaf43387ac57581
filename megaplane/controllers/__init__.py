"""megaplane.controllers: the controllers of kube-controller-manager (and kube-apiserver's own), as components.

Each controller is a `megaplane.runtime.Component` built only on
`megaplane.client` (informers, listers, work queues): it runs the same inside
`megaplane up` (over the loopback transport) or in a process of its own
(over HTTP). Must not import megaplane.apiserver, megaplane.store,
megaplane.storage or megaplane.etcd.
"""
