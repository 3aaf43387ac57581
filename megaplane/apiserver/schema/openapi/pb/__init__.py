"""Generated protobuf messages of gnostic's OpenAPI v2 Document (OpenAPIv2.proto; regenerate with scripts/gen-openapi-proto).

Nothing hand-written lives here.
"""
