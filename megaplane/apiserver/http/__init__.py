"""The API server's HTTP layer: bytes in, bytes out.

Owns the HTTP/1.1 transport (httptools, keep-alive, chunked watch streams),
TLS and kubeconfig material, request routing (URL -> RequestInfo), body
decoding by content type, and the framing of responses (list bodies,
Tables, watch event lines). It knows nothing of storage.
"""
