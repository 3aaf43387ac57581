"""What one API server connection may cost, and how long its requests may take: kube-apiserver's limits.

`TransportLimits` holds the numbers the HTTP transport enforces, each
default taken from kube-apiserver (its Go http.Server in
secure_serving.go and its server options); `DEFAULT_LIMITS` is what an
HTTPServer gets when given none. The request-deadline rules are here too:
--request-timeout with ?timeout= (endpoints/filters/request_deadline.go,
time.ParseDuration's wording) and a watch's lifetime from timeoutSeconds
and --min-request-timeout (GetTimeoutForWatch).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote_plus

from megaplane.apimachinery import errors

__all__ = [
    "TransportLimits",
    "DEFAULT_LIMITS",
    "watch_timeout",
    "parse_go_duration",
    "invalid_timeout",
    "request_deadline",
]


@dataclass(frozen=True)
class TransportLimits:
    """What one connection may cost; the defaults are kube-apiserver's (secure_serving.go, server/options)."""

    #: Request body (apiserver/pkg/server: MaxRequestBodyBytes, 3 MiB): 413 beyond it.
    max_body_bytes: int = 3 * 1024 * 1024
    #: Request line + headers (http.Server.MaxHeaderBytes = 1 << 20 in secure_serving.go; Go reads
    #: MaxHeaderBytes + 4096 before answering 431).
    max_header_bytes: int = 1 << 20
    #: Seconds for a request's head to arrive (secure_serving.go: ReadHeaderTimeout 32 s, "just shy of
    #: requestTimeoutUpperBound"); also the time a new connection has for its first request.
    read_header_timeout: float = 32.0
    #: Seconds a keep-alive connection may wait for its next request (secure_serving.go: IdleTimeout 90 s).
    idle_timeout: float = 90.0
    #: --request-timeout (60 s): a non-long-running request (and its body) must finish within it.
    request_timeout: float = 60.0
    #: --min-request-timeout (1800 s): a watch without timeoutSeconds ends after a random [min, 2*min].
    min_request_timeout: float = 1800.0
    #: Output a connection may buffer before it stops reading and answering (asyncio's high-water mark).
    write_high_water: int = 1 << 20
    #: Seconds a connection may stay above the high-water mark (its client not reading) before it is cut off.
    write_stall_timeout: float = 60.0
    #: File descriptors kept free below RLIMIT_NOFILE for everything that is not a client connection
    #: (0: a tenth of the limit, at least 64).
    fd_reserve: int = 0
    #: --http2-max-streams-per-connection: SETTINGS_MAX_CONCURRENT_STREAMS of an HTTP/2 connection (0: 100, as
    #: kube-apiserver's secure_serving.go sets when the flag is 0).
    http2_max_streams_per_connection: int = 0


#: The limits an HTTPServer gets when given none (a package variable, so tests and CLI flags can set it).
DEFAULT_LIMITS = TransportLimits()

_INT64 = 1 << 64


def watch_timeout(timeout_seconds: Optional[int], min_request_timeout: float) -> float:
    """Seconds a watch runs, as upstream's GetTimeoutForWatch computes them.

    timeoutSeconds is turned into a Go time.Duration (nanoseconds in an
    int64, wrapping on overflow as Go's multiplication does); zero or absent
    means a random time in [min, 2*min]; a negative duration (a negative
    value, or 9223372036854775807 s wrapping to -1 s) ends the watch at once.
    """
    nanos = 0
    if timeout_seconds is not None:
        nanos = (int(timeout_seconds) * 1_000_000_000) % _INT64
        if nanos >= _INT64 // 2:
            nanos -= _INT64
    if nanos == 0 and min_request_timeout > 0:
        return min_request_timeout * (random.random() + 1.0)
    return nanos / 1e9


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _query_timeout(query: str) -> Optional[str]:
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "timeout":
            return unquote_plus(value)
    return None


def parse_go_duration(text: str) -> float:
    """time.ParseDuration, in seconds; ValueError with Go's message."""
    invalid = ValueError(f'time: invalid duration "{text}"')
    s = text
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise invalid
    total = 0.0
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        number = s[:i]
        if not number or number == "." or number.count(".") > 1:
            raise invalid
        s = s[i:]
        j = 0
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit = s[:j]
        s = s[j:]
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(number) * _DURATION_UNITS[unit]
    return sign * total


def invalid_timeout(path: str, query: str) -> Optional[errors.StatusError]:
    """400 for a ?timeout= Go cannot parse (watches, being long-running, skip the deadline filter)."""
    value = _query_timeout(query)
    if not value or "watch" in query or "/watch/" in path:
        return None
    try:
        parse_go_duration(value)
    except ValueError as exc:
        return errors.bad_request(f"invalid timeout specified in the request URL - {exc}")
    return None


def request_deadline(query: str, request_timeout: float) -> float:
    """Seconds a request may take: --request-timeout, or a shorter positive ?timeout=."""
    if "timeout=" in query:
        value = _query_timeout(query)
        if value:
            try:
                asked = parse_go_duration(value)
            except ValueError:
                return request_timeout
            if 0 < asked < request_timeout:
                return asked
    return request_timeout
