"""megaplane.api: the Kubernetes API server.

Owns everything between an HTTP request and the store: the HTTP/1.1
transport, routing, the resource table, verbs and their semantics
(validation, defaulting, patching, selectors), per-kind watch caches,
discovery, OpenAPI, server-side tables and metrics. It talks to state only
through `megaplane.store.backend.Backend`, never to a store's internals.
"""
