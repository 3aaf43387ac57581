"""Generated protobuf messages of the etcd v3 API (etcd.proto; regenerate with scripts/gen-proto).

Nothing hand-written lives here.
"""
