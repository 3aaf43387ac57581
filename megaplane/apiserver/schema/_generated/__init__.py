"""Generated code (scripts/gen-protobuf-schema); do not edit by hand."""
