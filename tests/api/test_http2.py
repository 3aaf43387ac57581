"""HTTP/2 on the secure port: ALPN h2 (HTTP/1.1 when the client offers only that), requests, watches, limits.

One `megaplane apiserver` for the module. The HTTP/2 client is hyper-h2 on
a blocking TLS socket (what a test needs of it: streams, resets, windows);
curl and kubectl are the real tools.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Dict, Iterator, List, Optional, Tuple

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
import yaml

from megaplane.apiserver.http.h2 import ALPNSwitch
from megaplane.apiserver.http.limits import TransportLimits
from megaplane.apiserver.http.messages import Request, Response
from megaplane.apiserver.http.transport import HTTPServer
from tests.api.conftest import KUBECTL, Cluster, start_megaplane


class Server:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        with open(cluster.kubeconfig) as f:
            config = yaml.safe_load(f)
        c = config["clusters"][0]["cluster"]
        self.secure_port = int(c["server"].rsplit(":", 1)[1])
        self.ca = os.path.join(cluster.root, "ca.crt")
        with open(self.ca, "wb") as f:
            f.write(base64.b64decode(c["certificate-authority-data"]))
        # The kubeconfig's credentials, whichever kind it carries (a client certificate, a token, none).
        user = config["users"][0]["user"]
        self.auth = [("authorization", f"Bearer {user['token']}")] if user.get("token") else []
        self.cert: Optional[str] = None
        if user.get("client-certificate-data"):
            self.cert = os.path.join(cluster.root, "client.pem")
            with open(self.cert, "wb") as f:
                f.write(base64.b64decode(user["client-certificate-data"]))
                f.write(b"\n" + base64.b64decode(user["client-key-data"]))

    def context(self, alpn: Optional[List[str]]) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca)
        if self.cert is not None:
            ctx.load_cert_chain(self.cert)
        if alpn is not None:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def https11(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None,
                alpn: Optional[List[str]] = None) -> Tuple[int, bytes, str]:
        """One HTTP/1.1 request over TLS; (status, body, the ALPN protocol the server chose)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.secure_port, context=self.context(alpn), timeout=60)
        try:
            hdrs = {"Content-Type": "application/json", **dict(self.auth), **(headers or {})}
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            chosen = conn.sock.selected_alpn_protocol() if conn.sock is not None else None
            return resp.status, data, chosen or ""
        finally:
            conn.close()


class H2Client:
    """A blocking HTTP/2 client: open streams, read until a stream ends, reset streams."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.sock = server.context(["h2", "http/1.1"]).wrap_socket(
            socket.create_connection(("127.0.0.1", server.secure_port), timeout=60), server_hostname="localhost")
        self.alpn = self.sock.selected_alpn_protocol()
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        # hpack's Huffman encoder is quadratic in a string's length: send literals (a 1 MiB header takes minutes).
        encode = self.conn.encoder.encode
        self.conn.encoder.encode = lambda headers, huffman=True: encode(headers, huffman=False)  # type: ignore
        self.conn.initiate_connection()
        self.status: Dict[int, int] = {}
        self.headers: Dict[int, Dict[bytes, bytes]] = {}
        self.bodies: Dict[int, bytearray] = {}
        self.ended: Dict[int, str] = {}  # stream -> "end" or "reset:<code>"
        self.terminated: Optional[h2.events.ConnectionTerminated] = None
        self.settings = False
        self.flush()
        while not self.settings:  # the server's SETTINGS come first
            self.read()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def start(self, method: str, path: str, body: bytes = b"", headers: Optional[List[Tuple[str, str]]] = None,
              end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        extra = headers or []
        if not any(k == "content-type" for k, _ in extra):
            extra = [("content-type", "application/json"), *extra]
        hdrs = [(":method", method), (":path", path), (":scheme", "https"), (":authority", "127.0.0.1"),
                *self.server.auth, *extra]
        self.conn.send_headers(sid, hdrs, end_stream=end and not body)
        self.bodies[sid] = bytearray()
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        self.flush()
        return sid

    def read(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                hdrs = dict(ev.headers)
                self.status[ev.stream_id] = int(hdrs[b":status"])
                self.headers[ev.stream_id] = hdrs
            elif isinstance(ev, h2.events.DataReceived):
                self.bodies.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended[ev.stream_id] = "end"
            elif isinstance(ev, h2.events.StreamReset):
                self.ended.setdefault(ev.stream_id, f"reset:{ev.error_code}")
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.terminated = ev
        self.flush()

    def wait(self, sid: int, timeout: float = 60) -> Tuple[int, bytes]:
        deadline = time.monotonic() + timeout
        while sid not in self.ended:
            assert time.monotonic() < deadline, f"stream {sid} did not end"
            self.read()
        return self.status.get(sid, 0), bytes(self.bodies.get(sid, b""))

    def request(self, method: str, path: str, body: bytes = b"",
                headers: Optional[List[Tuple[str, str]]] = None) -> Tuple[int, bytes]:
        return self.wait(self.start(method, path, body, headers))

    def send_body(self, sid: int, body: bytes) -> None:
        """Send `body` as the peer's windows allow, reading meanwhile; stops if the server ends the stream."""
        view = memoryview(body)
        while view and sid not in self.ended:
            n = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size, len(view))
            if n <= 0:
                self.read()
                continue
            self.conn.send_data(sid, bytes(view[:n]))
            view = view[n:]
            self.flush()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    root = tempfile.mkdtemp(prefix="megaplane-h2-")
    cluster = start_megaplane(root, "apiserver", ["--data-dir", os.path.join(root, "data")])
    try:
        yield Server(cluster)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def client(server: Server) -> Iterator[H2Client]:
    c = H2Client(server)
    try:
        yield c
    finally:
        c.close()


def test_alpn_negotiates_h2_and_curl_speaks_it(server: Server, client: H2Client) -> None:
    assert client.alpn == "h2"
    assert client.conn.remote_settings.max_concurrent_streams == 100  # --http2-max-streams-per-connection 0
    out = subprocess.run(
        ["curl", "-s", "--http2", "--cacert", server.ca, *(["--cert", server.cert] if server.cert else []),
         "-o", "/dev/null", "-w", "%{http_version} %{http_code}", f"https://127.0.0.1:{server.secure_port}/version"],
        capture_output=True, text=True, timeout=60)
    assert out.stdout == "2 200", out


def test_http11_when_the_client_offers_only_http11_or_nothing(server: Server) -> None:
    for alpn, expect in ((["http/1.1"], "http/1.1"), (None, "")):
        status, body, chosen = server.https11("GET", "/api/v1/namespaces/default", alpn=alpn)
        assert (status, chosen) == (200, expect)
        assert json.loads(body)["metadata"]["name"] == "default"


def test_verbs_over_h2_answer_as_over_http11(server: Server, client: H2Client) -> None:
    base = "/api/v1/namespaces/default/configmaps"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h2-verbs"}, "data": {"a": "1"}}
    status, body = client.request("POST", base, json.dumps(cm).encode())
    assert status == 201, body
    created = json.loads(body)
    s11, b11, _ = server.https11("GET", f"{base}/h2-verbs", alpn=["http/1.1"])
    status, got = client.request("GET", f"{base}/h2-verbs")
    assert (status, s11) == (200, 200)
    assert got == b11  # the same bytes whichever protocol carries them
    assert json.loads(got) == created
    status, body = client.request("PATCH", f"{base}/h2-verbs", b'{"data":{"b":"2"}}',
                                  [("content-type", "application/merge-patch+json")])
    assert status == 200, body
    assert json.loads(body)["data"] == {"a": "1", "b": "2"}
    s11, b11, _ = server.https11("GET", f"{base}/h2-verbs", alpn=["http/1.1"])
    assert json.loads(b11) == json.loads(body)
    status, body = client.request("DELETE", f"{base}/h2-verbs")
    assert status == 200, body
    assert json.loads(body)["details"]["name"] == "h2-verbs"
    status, body = client.request("GET", f"{base}/h2-verbs")
    s11, b11, _ = server.https11("GET", f"{base}/h2-verbs", alpn=["http/1.1"])
    assert (status, s11) == (404, 404)
    assert body == b11


def test_head_over_h2_answers_headers_without_data(server: Server, client: H2Client) -> None:
    """client-go logs "protocol error: received DATA on a HEAD request" otherwise (kpt's HEAD probes)."""
    status, body = client.request("HEAD", "/version")
    assert (status, body) == (200, b"")
    status, body = client.request("GET", "/version")
    assert status == 200 and json.loads(body)["minor"] == "32"


def _watchers(server: Server, resource: str) -> float:
    with urllib.request.urlopen(server.cluster.url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    m = re.search(r'apiserver_longrunning_requests\{[^}]*resource="%s"[^}]*\} (\S+)' % resource, text)
    return float(m.group(1)) if m else 0.0


def test_watch_over_h2_gets_events_and_ends_on_rst_stream(server: Server, client: H2Client) -> None:
    base = "/apis/apps/v1/namespaces/default/controllerrevisions"  # a kind nothing else watches here
    status, body = client.request("GET", base)
    rv = json.loads(body)["metadata"]["resourceVersion"]
    sid = client.start("GET", f"{base}?watch=true&resourceVersion={rv}")
    deadline = time.monotonic() + 60
    while sid not in client.status:
        assert time.monotonic() < deadline
        client.read()
    assert client.status[sid] == 200
    tmpl = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "h2-watched"}, "revision": 1}
    s, b, _ = server.https11("POST", base, json.dumps(tmpl).encode(), alpn=["http/1.1"])
    assert s == 201, b
    while b"\n" not in client.bodies[sid]:
        assert time.monotonic() < deadline, "no watch event over HTTP/2"
        client.read()
    event = json.loads(bytes(client.bodies[sid]).split(b"\n")[0])
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "h2-watched")
    assert _watchers(server, "controllerrevisions") == 1
    client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    while _watchers(server, "controllerrevisions") != 0:  # the server ended the watch when the client reset its stream
        assert time.monotonic() < deadline, "the watch outlived its stream"
        time.sleep(0.05)
    assert client.request("GET", "/version")[0] == 200  # the connection carries on


def test_many_concurrent_streams_on_one_connection(server: Server, client: H2Client) -> None:
    base = "/api/v1/namespaces/default/configmaps"
    n = client.conn.remote_settings.max_concurrent_streams
    sids = {}
    for i in range(n):
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"h2-many-{i}"}, "data": {"i": str(i)}}
        sids[client.start("POST", base, json.dumps(cm).encode())] = i
    for sid, i in sids.items():
        status, body = client.wait(sid)
        assert status == 201, body
        assert json.loads(body)["data"] == {"i": str(i)}
    status, body = client.request("GET", base + "?labelSelector=")
    names = {o["metadata"]["name"] for o in json.loads(body)["items"]}
    assert {f"h2-many-{i}" for i in range(n)} <= names


def test_kubectl_uses_http2(server: Server) -> None:
    env = {**os.environ, "GODEBUG": "http2debug=1"}
    out = subprocess.run([KUBECTL, "--kubeconfig", server.cluster.kubeconfig, "--cache-dir",
                          tempfile.mkdtemp(dir=server.cluster.root), "get", "namespaces", "-o", "name"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "namespace/default" in out.stdout
    # Go's http2 Transport reports each connection it opens and the response headers it decodes.
    assert "http2: Transport creating client conn" in out.stderr
    assert re.search(r"http2: Transport received HEADERS flags=\S*END_HEADERS stream=\d+", out.stderr), out.stderr
    # A watch: kubectl's events arrive over its HTTP/2 stream.
    import queue
    import threading

    before = _watchers(server, "configmaps")
    watch = subprocess.Popen([KUBECTL, "--kubeconfig", server.cluster.kubeconfig, "--cache-dir",
                              tempfile.mkdtemp(dir=server.cluster.root), "get", "configmaps", "-w", "-o", "name"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in watch.stdout], daemon=True).start()  # type: ignore
    try:
        deadline = time.monotonic() + 60
        while _watchers(server, "configmaps") <= before:
            assert time.monotonic() < deadline and watch.poll() is None, "kubectl -w did not start its watch"
            time.sleep(0.05)
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h2-kubectl-watched"}}
        s, b, _ = server.https11("POST", "/api/v1/namespaces/default/configmaps", json.dumps(cm).encode())
        assert s == 201, b
        while True:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            if line.strip() == "configmap/h2-kubectl-watched":
                break
    finally:
        watch.terminate()
        _, err = watch.communicate(timeout=30)
    assert "http2: Transport creating client conn" in err
    # client-go's DISABLE_HTTP2 leaves it on HTTP/1.1, which the server still speaks on the same port.
    out = subprocess.run([KUBECTL, "--kubeconfig", server.cluster.kubeconfig, "--cache-dir",
                          tempfile.mkdtemp(dir=server.cluster.root), "get", "namespaces", "-o", "name"],
                         capture_output=True, text=True, timeout=60, env={**env, "DISABLE_HTTP2": "1"})
    assert out.returncode == 0, out.stderr
    assert "namespace/default" in out.stdout
    assert "http2: Transport" not in out.stderr


def test_oversized_headers_get_431_as_over_http11(server: Server, client: H2Client) -> None:
    big = "x" * (3 << 19)  # 1.5 MiB: past MaxHeaderBytes (1 MiB), within twice it (past that, HTTP/2 ends the connection)
    status, body = client.request("GET", "/version", headers=[("x-big", big)])
    assert status == 431
    assert body == b"<h1>HTTP Error 431</h1><p>Request Header Fields Too Large</p>".replace(b"Fields", b"Field(s)")
    req = urllib.request.Request(server.cluster.url + "/version", headers={"X-Big": big})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=60)
    assert exc.value.code == 431
    assert client.request("GET", "/version")[0] == 200  # a stream error, not a connection error


def test_body_over_the_limit_gets_413_as_over_http11(server: Server, client: H2Client) -> None:
    base = "/api/v1/namespaces/default/configmaps"
    too_big = b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"big"},"data":{"a":"' + b"x" * (3 << 20) + b'"}}'
    s11, b11, _ = server.https11("POST", base, too_big, alpn=["http/1.1"])
    assert s11 == 413
    # Announced by content-length: refused before the body is sent.
    status, body = client.request("POST", base, headers=[("content-length", str(len(too_big)))])
    assert (status, body) == (413, b11)
    # Not announced: refused once the body passes the limit, the rest of the stream reset.
    sid = client.start("POST", base, end=False)
    client.send_body(sid, too_big)
    status, body = client.wait(sid)
    assert (status, body) == (413, b11)
    assert client.request("GET", "/version")[0] == 200


def test_a_watcher_that_grants_no_window_is_cut_off(server: Server, client: H2Client) -> None:
    base = "/api/v1/namespaces/default/secrets"
    status, body = client.request("GET", base)
    rv = json.loads(body)["metadata"]["resourceVersion"]
    sid = client.start("GET", f"{base}?watch=true&resourceVersion={rv}")
    deadline = time.monotonic() + 60
    while sid not in client.status:
        assert time.monotonic() < deadline
        client.read()
    assert _watchers(server, "secrets") == 1
    # From here the client reads nothing, so it grants no window: past its first 64 KiB the events wait in the
    # server, and past 4 MiB waiting the watch is closed (its client relists), as an HTTP/1.1 watcher that
    # stops reading is once its socket backs up.
    payload = base64.b64encode(b"x" * 200_000).decode()
    for i in range(30):  # ~8 MiB of events
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"h2-window-{i}"}, "data": {"k": payload}}
        s, b, _ = server.https11("POST", base, json.dumps(secret).encode(), alpn=["http/1.1"])
        assert s == 201, b
    while _watchers(server, "secrets") != 0:
        assert time.monotonic() < deadline, "a watcher that grants no window kept its watch"
        time.sleep(0.05)
    other = H2Client(server)  # the server carries on
    try:
        assert other.request("GET", "/version")[0] == 200
    finally:
        other.close()


# -- the transport alone: an HTTPServer in this process, on a real TLS socket, with a handler that waits ----------


class InProcess:
    """An HTTPServer with a handler that answers `/wait` only when told, on a loop in a thread of its own."""

    def __init__(self, root: str, limits: TransportLimits) -> None:
        import asyncio
        import threading

        from megaplane.apiserver.http.tls import ensure_certs, server_ssl_context

        self.ca, crt, key = ensure_certs(os.path.join(root, "pki"))
        self.loop = asyncio.new_event_loop()
        self.waiting: "asyncio.Future[None]" = self.loop.create_future()
        self.http = HTTPServer(self.handle, limits=limits, tls_protocol=ALPNSwitch)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self.call(self.http.listen("127.0.0.1", 0, server_ssl_context(crt, key)))

    async def handle(self, req: Request) -> Response:
        if req.path == "/wait":
            await self.waiting
        return Response(200, b'{"path":"%s"}' % req.path.encode())

    def call(self, coro):  # type: ignore[no-untyped-def]
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def protocols(self) -> List[str]:
        async def names() -> List[str]:
            return sorted(type(c).__name__ for c in self.http.connections)

        return self.call(names())  # type: ignore[no-any-return]

    def stop(self) -> None:
        import asyncio

        self.call(self.http.close())
        deadline = time.monotonic() + 10
        while self.http.connections and time.monotonic() < deadline:  # TLS shutdowns take a few loop turns
            self.call(asyncio.sleep(0.05))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()  # nothing left to a finalizer (late ResourceWarnings upset CPython 3.11.7's AST checks)


@pytest.fixture(scope="module")
def in_process() -> Iterator[InProcess]:
    root = tempfile.mkdtemp(prefix="megaplane-h2-transport-")
    server = InProcess(root, TransportLimits(request_timeout=1.0, idle_timeout=1.0))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


class _Local:
    """What H2Client needs of a Server, for the in-process one (no credentials)."""

    def __init__(self, server: InProcess) -> None:
        self.secure_port = server.port
        self.auth: List[Tuple[str, str]] = []
        self.ca = server.ca
        self.cert = None

    def context(self, alpn: Optional[List[str]]) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca)
        if alpn is not None:
            ctx.set_alpn_protocols(alpn)
        return ctx


def test_a_waiting_handler_gets_504_on_its_stream_and_the_others_are_answered(in_process: InProcess) -> None:
    client = H2Client(_Local(in_process))  # type: ignore[arg-type]
    try:
        slow = client.start("GET", "/wait")
        assert client.request("GET", "/fast") == (200, b'{"path":"/fast"}')  # not behind the waiting one
        status, body = client.wait(slow)
        assert status == 504
        assert json.loads(body)["reason"] == "Timeout"
        assert client.request("GET", "/after") == (200, b'{"path":"/after"}')
    finally:
        client.close()


def test_goaway_when_idle_and_when_the_server_closes(in_process: InProcess) -> None:
    client = H2Client(_Local(in_process))  # type: ignore[arg-type]
    try:
        assert in_process.protocols() == ["H2Connection"]  # counted with the server's connections
        assert client.request("GET", "/x")[0] == 200
        deadline = time.monotonic() + 30
        while client.terminated is None:  # idle past idle_timeout: GOAWAY, then closed
            assert time.monotonic() < deadline, "no GOAWAY for an idle connection"
            try:
                client.read()
            except ConnectionError:
                break
        assert client.terminated is not None and client.terminated.error_code == h2.errors.ErrorCodes.NO_ERROR
    finally:
        client.close()
    late = H2Client(_Local(in_process))  # type: ignore[arg-type]
    try:
        assert late.request("GET", "/y")[0] == 200
        in_process.call(in_process.http.close())
        deadline = time.monotonic() + 30
        while late.terminated is None:
            assert time.monotonic() < deadline, "no GOAWAY when the server closed"
            try:
                late.read()
            except (ConnectionError, OSError):
                break
        assert late.terminated is not None and late.terminated.error_code == h2.errors.ErrorCodes.NO_ERROR
    finally:
        late.close()
