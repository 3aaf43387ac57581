"""megaplane.apiserver: the Kubernetes API server.

Layers, top to bottom (imports only go down):

- `server`: the APIServer component; routes non-resource paths (/version,
  health, discovery, OpenAPI, metrics) and resource paths to the registry.
- `http/`: bytes only: the HTTP/1.1 transport, TLS, routing of paths,
  content negotiation and body decoding, list/table/watch framing.
- `registry/`: one store per resource: the verbs on objects, admission,
  defaulting, validation and each kind's strategy; typed StatusError out.
- `printers/`, `patch/`, `schema/`: pure functions the registry and the
  HTTP layer use (tables, patches, schemas/defaults/validation/protobuf).

State is reached only through the storage seam, never a store's internals.
"""
