"""Object schemas and what is derived from them: defaults, field validation, OpenAPI, protobuf decoding.

Generated tables live in `_generated/` apart from hand-written code.
"""
