"""Hostile and careless clients against a real `megaplane up`, over raw sockets (issue 8: #1, #3, #4, #10, #11).

Each test sends the exact bytes of the probe that broke the server, then
checks the answer and that the server still answers everyone else. Tests
that need short timeouts start `megaplane up` with smaller TransportLimits
(--request-timeout as a flag; the limits no flag carries through the
transport's DEFAULT_LIMITS package variable in the child process); the
fd-budget test starts it under a lower RLIMIT_NOFILE.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from tests.api.conftest import Cluster
from tests.etcd.conftest import free_port

pytestmark = pytest.mark.timeout(300) if hasattr(pytest.mark, "timeout") else []


# -- raw HTTP ---------------------------------------------------------------------------------


def connect(port: int, timeout: float = 30) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    return s


def read_response(s: socket.socket) -> Tuple[int, Dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length framed) read from `s`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if "content-length" in headers:
        want = int(headers["content-length"])
        while len(body) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    else:  # Go's plain-text errors: the body runs to the close
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    return code, headers, body


def request(port: int, raw: bytes) -> Tuple[int, Dict[str, str], bytes]:
    with connect(port) as s:
        s.sendall(raw)
        return read_response(s)


def body_request(method: str, path: str, body: bytes, ctype: str = "application/json") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def get(port: int, path: str) -> Tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def send_refused(port: int, raw: bytes) -> Tuple[int, bytes]:
    """Send `raw` from a thread (the server may stop reading it) and read the answer on the main thread."""
    s = connect(port)

    def sender() -> None:
        try:
            s.sendall(raw)
        except OSError:
            pass  # the server answered and closed before taking everything: expected

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        code, _, body = read_response(s)
    finally:
        s.close()
        t.join(30)
    return code, body


def is_closed(s: socket.socket) -> bool:
    """True once the server has closed `s` (EOF or reset); waits up to the socket's timeout."""
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8


def tcp_state(s: socket.socket) -> int:
    """The kernel's TCP state of `s` (linux/tcp.h), read without touching its receive queue."""
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def wait_for(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as r:
            return r.status == 200
    except OSError:
        return False


# -- servers with small limits ------------------------------------------------------------------

_LAUNCHER = """
import sys
from megaplane.apiserver.http import limits
limits.DEFAULT_LIMITS = limits.TransportLimits(**{limits_kwargs})
from megaplane.cli import main
sys.argv = ["megaplane"] + sys.argv[1:]
sys.exit(main())
"""


def start_limited(root: str, limits: Dict[str, Any], nofile: Optional[int] = None) -> Cluster:
    """`megaplane up` with the given TransportLimits (and RLIMIT_NOFILE), plain HTTP on a free port."""
    port, secure = free_port(), free_port()
    kubeconfig = os.path.join(root, "kubeconfig")
    log = open(os.path.join(root, "megaplane.log"), "w")

    def lower_fd_limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    limits = dict(limits)
    flags: List[str] = []
    if "request_timeout" in limits:  # carried by the CLI flag, as upstream's --request-timeout
        flags += ["--request-timeout", f"{limits.pop('request_timeout')}s"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER.replace("{limits_kwargs}", repr(limits)), "up", "--port", str(port),
         "--secure-port", str(secure), "--kubeconfig", kubeconfig, "--data-dir", os.path.join(root, "data"), *flags],
        stdout=log, stderr=subprocess.STDOUT, preexec_fn=lower_fd_limit,
    )
    log.close()  # the child holds its own descriptor
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"megaplane up exited with {proc.returncode}; see {log.name}")
        if ready(port) and os.path.exists(kubeconfig):
            return Cluster(proc, port, kubeconfig, root)
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("megaplane up did not become ready")


@pytest.fixture(scope="module")
def limited() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-limits-")
    c = start_limited(root, {"read_header_timeout": 2.0, "idle_timeout": 2.0, "request_timeout": 3.0,
                             "write_stall_timeout": 3.0, "write_high_water": 256 * 1024})
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def server_rss(c: Cluster) -> int:
    with open(f"/proc/{c.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# -- #1: collection deletes that reach every namespace ---------------------------------------


def _configmap(port: int, ns: str, name: str) -> None:
    body = json.dumps({"metadata": {"name": name, "namespace": ns}}).encode()
    code, _, answer = request(port, body_request("POST", f"/api/v1/namespaces/{ns}/configmaps", body))
    assert code == 201, answer


def test_deletecollection_at_cluster_scope_is_405_and_deletes_nothing(cluster: Cluster) -> None:
    _configmap(cluster.port, "default", "hostile-keep-1")
    _configmap(cluster.port, "kube-system", "hostile-keep-2")
    code, _, body = request(cluster.port, b"DELETE /api/v1/configmaps HTTP/1.1\r\nHost: x\r\n\r\n")
    assert code == 405
    assert json.loads(body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server does not allow this method on the requested resource",
        "reason": "MethodNotAllowed", "details": {}, "code": 405,
    }
    for method in (b"POST", b"PUT", b"PATCH"):
        code, _, _ = request(cluster.port, method + b" /api/v1/pods HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert code == 405, method
    # A name under the cluster-scope path of a namespaced kind has no route at all.
    code, _, body = request(cluster.port, b"DELETE /api/v1/configmaps/hostile-keep-1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert code == 404 and json.loads(body)["message"] == "the server could not find the requested resource"
    assert get(cluster.port, "/api/v1/namespaces/default/configmaps/hostile-keep-1")[0] == 200
    assert get(cluster.port, "/api/v1/namespaces/kube-system/configmaps/hostile-keep-2")[0] == 200


def test_empty_namespace_segment_needs_a_namespace(cluster: Cluster) -> None:
    _configmap(cluster.port, "default", "hostile-keep-3")
    code, _, body = request(cluster.port, b"DELETE /api/v1/namespaces//configmaps HTTP/1.1\r\nHost: x\r\n\r\n")
    assert code == 400
    status = json.loads(body)
    assert status["reason"] == "BadRequest" and status["message"] == "Namespace parameter required."
    code, _, _ = request(cluster.port, b"DELETE /api/v1/namespaces//configmaps/hostile-keep-3 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert code == 400
    assert get(cluster.port, "/api/v1/namespaces/default/configmaps/hostile-keep-3")[0] == 200
    # Listing still spans namespaces, as upstream's namespaced route with an empty namespace does.
    code, listed = get(cluster.port, "/api/v1/namespaces//configmaps")
    assert code == 200 and any(i["metadata"]["name"] == "hostile-keep-3" for i in listed["items"])


# -- #10: header and URL limits ---------------------------------------------------------------

GO_431 = b"431 Request Header Fields Too Large"


def test_head_is_answered_without_a_body_and_the_next_response_is_intact(cluster: Cluster) -> None:
    """A HEAD's answer carries its GET's Content-Length but no body; body bytes would be read as the start of the
    next response on a keep-alive connection."""
    with connect(cluster.port) as s:
        s.sendall(b"HEAD /version HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"HEAD /api/v1/namespaces/default HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 ") < 3 or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 3, data
    for answer in answers[:2]:
        head, _, rest = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"200 OK") and b"Content-Length: 0" not in head, head
        assert rest == b"", answer  # no body before the next status line
    head, _, body = answers[2].partition(b"\r\n\r\n")
    assert head.startswith(b"200 OK") and json.loads(body)["minor"] == "32"


def test_16mb_header_is_431(cluster: Cluster) -> None:
    raw = b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (16 << 20) + b"\r\n\r\n"
    code, body = send_refused(cluster.port, raw)
    assert code == 431 and body == GO_431
    assert ready(cluster.port)


def test_a_head_just_past_the_limit_is_431_even_when_it_ends_in_the_read_that_completes_it(cluster: Cluster) -> None:
    # 1 MiB + 8 KiB: past MaxHeaderBytes + Go's 4 KiB slack; the head's last read also completes the request.
    raw = b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * ((1 << 20) + (8 << 10)) + b"\r\n\r\n"
    code, body = send_refused(cluster.port, raw)
    assert code == 431 and body == GO_431
    assert ready(cluster.port)


def test_200k_headers_are_431(cluster: Cluster) -> None:
    raw = b"GET /version HTTP/1.1\r\nHost: x\r\n" + b"X-Many: y\r\n" * 200_000 + b"\r\n"
    code, body = send_refused(cluster.port, raw)
    assert code == 431 and body == GO_431
    assert ready(cluster.port)


def test_64mb_url_is_refused_after_the_header_limit(cluster: Cluster) -> None:
    # Go's http.Server reads the request line under the same MaxHeaderBytes budget: 431, not 414.
    raw = b"GET /api/v1/" + b"a" * (64 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    code, body = send_refused(cluster.port, raw)
    assert code == 431 and body == GO_431
    assert ready(cluster.port)


def test_headers_under_the_limit_are_served(cluster: Cluster) -> None:
    raw = b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (900 << 10) + b"\r\n" + b"X-Rep: 1\r\n" * 1000 + b"\r\n"
    code, _, body = request(cluster.port, raw)
    assert code == 200 and json.loads(body)["major"] == "1"


# -- #4: timeouts ------------------------------------------------------------------------------


def test_slowloris_head_is_closed(limited: Cluster) -> None:
    with connect(limited.port) as s:
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n")
        s.sendall(b"X-Slow: 1\r\n")  # never the blank line
        assert is_closed(s)  # read_header_timeout (2 s here): closed without an answer, as Go does
    assert ready(limited.port)


def test_idle_keepalive_connection_is_closed(limited: Cluster) -> None:
    with connect(limited.port) as s:
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 200
        assert is_closed(s)


def test_silent_new_connection_is_closed(limited: Cluster) -> None:
    with connect(limited.port) as s:
        assert is_closed(s)


def test_body_shorter_than_content_length_is_504(limited: Cluster) -> None:
    with connect(limited.port) as s:
        s.sendall(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"metadata\":")
        code, headers, body = read_response(s)
    assert code == 504 and headers.get("connection") == "close"
    assert json.loads(body) == {"metadata": {}, "status": "Failure", "reason": "Timeout", "details": {}, "code": 504,
                                "message": "Timeout: request did not complete within the allotted timeout"}


def test_chunked_body_that_never_ends_is_504(limited: Cluster) -> None:
    with connect(limited.port) as s:
        s.sendall(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"met\r\n")
        code, _, _ = read_response(s)
    assert code == 504


def test_invalid_timeout_parameter_is_400(cluster: Cluster) -> None:
    code, _, body = request(cluster.port, b"GET /api/v1/namespaces/default/configmaps?timeout=abc HTTP/1.1\r\nHost: x\r\n\r\n")
    assert code == 400
    assert json.loads(body)["message"] == 'invalid timeout specified in the request URL - time: invalid duration "abc"'


# -- #3: a client that pipelines and never reads -----------------------------------------------


def test_pipelining_client_that_never_reads_is_cut_off(limited: Cluster) -> None:
    assert ready(limited.port)
    before = server_rss(limited)
    s = connect(limited.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /openapi/v2 HTTP/1.1\r\nHost: x\r\n\r\n" * 2000)
    # The server stops answering at its high-water mark, keeps serving others, then drops the non-reader.
    assert ready(limited.port)
    assert server_rss(limited) - before < 200 << 20
    # Not reading at all: the server cuts the connection off (a reset), seen in our socket's TCP state.
    wait_for(lambda: tcp_state(s) in (TCP_CLOSE, TCP_CLOSE_WAIT), timeout=60)
    s.close()
    assert ready(limited.port)


# -- #4: the file-descriptor budget -------------------------------------------------------------


def test_idle_sockets_do_not_lock_out_new_clients() -> None:
    root = tempfile.mkdtemp(prefix="megaplane-fds-")
    c = start_limited(root, {}, nofile=1024)
    idle: List[socket.socket] = []
    try:
        for _ in range(1100):
            try:
                idle.append(socket.create_connection(("127.0.0.1", c.port), timeout=10))
            except OSError:
                break
        assert ready(c.port)  # a new client is served: the oldest idle sockets were closed for it
        code, _, body = request(c.port, b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert code == 200
    finally:
        for s in idle:
            s.close()
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


# -- #11: watch deadlines -----------------------------------------------------------------------


@pytest.mark.parametrize("seconds", ["9223372036854775807", "-1"])
def test_watch_whose_go_duration_is_negative_ends_at_once(cluster: Cluster, seconds: str) -> None:
    # time.Duration(timeoutSeconds) * time.Second wraps to -1 s for the largest int64: upstream ends the watch.
    with connect(cluster.port) as s:
        s.sendall(f"GET /api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds={seconds} HTTP/1.1\r\n"
                  f"Host: x\r\n\r\n".encode())
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK")


def test_watch_ends_at_its_timeout(cluster: Cluster) -> None:
    with connect(cluster.port) as s:
        s.sendall(b"GET /api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        # The connection is kept alive for the next request after the stream ends.
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 200
