"""Generated protobuf messages of the etcd v3 API (see etcd.proto; regenerate with scripts/gen-proto)."""
