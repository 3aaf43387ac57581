"""Several `megaplane apiserver` processes on one real etcd 3.4, behind a real load balancer (Debian haproxy).

Each API server is started as the README documents (`megaplane apiserver --etcd-servers URL` once per
port); haproxy balances TCP connections round-robin and health-checks each server's /readyz over its
plain HTTP port. Checked: writes through the balancer land on both servers, a read through one server sees
what the other just wrote, a watch on one server gets the other's writes in revision order, a stale
resourceVersion written through the other server is a 409, and with one server killed (-9) requests
through haproxy keep succeeding. Also here, because they need the same processes: writes under load
against a 3-member etcd cluster while a follower and then the leader are killed, and the snapshot drill
(`etcdctl snapshot save`, wipe, `snapshot restore`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from tests.api.conftest import KUBECTL, Cluster, start_megaplane
from tests.etcd.conftest import free_port
from tests.storage.etcd_servers import EtcdCluster, EtcdProcess, TCPProxy, etcdctl

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CMS = "/api/v1/namespaces/default/configmaps"


def _cm(name: str, **data: str) -> Dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": data}


def _request(url: str, method: str, path: str, body: Optional[Dict[str, Any]] = None,
             timeout: float = 30) -> Tuple[int, Dict[str, Any]]:
    """One request on a new connection (urllib does not keep connections), so haproxy balances each one."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _wait(what: str, check, deadline_s: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _creates_served(c: Cluster) -> float:
    """POSTs of configmaps this API server answered 201 (its own apiserver_request_total)."""
    with urllib.request.urlopen(c.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if (line.startswith("apiserver_request_total{") and 'verb="POST"' in line and 'resource="configmaps"' in line
                and 'code="201"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Watcher:
    """A watch on one server's plain HTTP port, read in a thread: every event as (type, name, resourceVersion)."""

    def __init__(self, url: str, rv: str, timeout_s: int = 120) -> None:
        import http.client
        import urllib.parse

        self.events: List[Tuple[str, str, int]] = []
        self.ended = threading.Event()
        u = urllib.parse.urlsplit(url)
        self._conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout_s + 30)
        self._conn.request("GET", f"{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds={timeout_s}")
        self._resp = self._conn.getresponse()
        assert self._resp.status == 200, self._resp.read()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while line := self._resp.readline():
                if line.strip():
                    ev = json.loads(line)
                    md = ev["object"].get("metadata", {})
                    self.events.append((ev["type"], md.get("name", ""), int(md.get("resourceVersion") or 0)))
        except Exception:  # the socket shut down by close(), or the server gone: the events so far stand
            pass
        finally:
            self.ended.set()

    def close(self) -> None:
        import socket

        if self._conn.sock is not None:
            try:
                self._conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)
        self._conn.close()


class HAProxy:
    """haproxy in the foreground (-db) as a TCP load balancer: roundrobin, /readyz checked every 200 ms."""

    def __init__(self, root: str, backends: List[int]) -> None:
        if not os.path.exists(HAPROXY):
            pytest.fail("haproxy is not installed: apt-get install haproxy")
        self.port = free_port()
        self.cfg = os.path.join(root, "haproxy.cfg")
        self.stats_socket = os.path.join(root, "haproxy.sock")
        servers = "\n".join(f"    server api{i} 127.0.0.1:{p} check" for i, p in enumerate(backends))
        with open(self.cfg, "w") as f:
            f.write(f"""global
    maxconn 512
    stats socket {self.stats_socket}

defaults
    mode tcp
    timeout connect 2s
    timeout client 150s
    timeout server 150s
    # A connection refused by a dead server is tried on another one.
    retries 2
    option redispatch

frontend kube-apiserver
    bind 127.0.0.1:{self.port}
    default_backend apiservers

backend apiservers
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
{servers}
""")
        out = subprocess.run([HAPROXY, "-c", "-f", self.cfg], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        with open(os.path.join(root, "haproxy.log"), "a") as log:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg], stdout=log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        _wait("haproxy to serve /readyz", lambda: self._ready())

    def _ready(self) -> bool:
        assert self.proc.poll() is None, "haproxy exited"
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def server_states(self) -> Dict[str, str]:
        """Each backend server's status as haproxy's health checks see it (UP, DOWN, ...), from `show stat`."""
        import socket

        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.stats_socket)
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
        return {r["svname"]: r["status"] for r in rows if r["pxname"] == "apiservers" and r["svname"].startswith("api")}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Setup:
    def __init__(self, etcd: EtcdProcess, servers: List[Cluster], lb: HAProxy, kubeconfig: str, root: str) -> None:
        self.etcd, self.servers, self.lb, self.kubeconfig, self.root = etcd, servers, lb, kubeconfig, root

    def kubectl(self, *args: str, input: Optional[str] = None) -> str:
        out = subprocess.run([KUBECTL, "--kubeconfig", self.kubeconfig, "--cache-dir",
                              os.path.join(self.root, "kubectl-cache"), *args],
                             input=input, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"kubectl {' '.join(args)} through haproxy failed:\n{out.stderr}"
        return out.stdout


def _lb_kubeconfig(root: str, url: str) -> str:
    path = os.path.join(root, "kubeconfig-lb")
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "lb",
                   "clusters": [{"name": "lb", "cluster": {"server": url}}],
                   "users": [{"name": "admin", "user": {}}],
                   "contexts": [{"name": "lb", "context": {"cluster": "lb", "user": "admin"}}]}, f)
    return path


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    root = tempfile.mkdtemp(prefix="megaplane-several-")
    etcd = EtcdProcess().start()
    servers: List[Cluster] = []
    lb: Optional[HAProxy] = None
    try:
        for name in ("a", "b"):  # the README's commands: one `megaplane apiserver` per port, same --etcd-servers
            os.makedirs(os.path.join(root, name))
            servers.append(start_megaplane(os.path.join(root, name), "apiserver",
                                           ["--etcd-servers", etcd.url, "--etcd-request-timeout", "3s"]))
        lb = HAProxy(root, [c.port for c in servers])
        yield Setup(etcd, servers, lb, _lb_kubeconfig(root, lb.url), root)
    finally:
        if lb is not None:
            lb.stop()
        for c in servers:
            c.stop()
        etcd.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_writes_through_the_balancer_land_on_both_servers(setup: Setup) -> None:
    a, b = setup.servers
    before = (_creates_served(a), _creates_served(b))
    setup.kubectl("create", "-f", "-", input=json.dumps(_cm("by-kubectl", k="v")))
    for i in range(10):
        status, body = _request(setup.lb.url, "POST", CMS, _cm(f"lb-{i}", i=str(i)))
        assert status == 201, body
    after = (_creates_served(a), _creates_served(b))
    assert after[0] > before[0] and after[1] > before[1], (before, after)
    assert sum(after) - sum(before) == 11
    # Every server lists all of them, whichever one wrote them (a consistent read waits for its cache).
    for c in (a, b):
        status, listed = _request(c.url, "GET", CMS)
        names = {o["metadata"]["name"] for o in listed["items"]}
        assert {"by-kubectl", *(f"lb-{i}" for i in range(10))} <= names
    got = json.loads(setup.kubectl("get", "configmap", "lb-3", "-o", "json"))
    assert got["data"] == {"i": "3"}
    # The Python client through haproxy.
    import kubernetes

    cfg = kubernetes.client.Configuration()
    cfg.host = setup.lb.url
    api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(cfg))
    api.create_namespaced_config_map("default", _cm("by-python", k="p"))
    assert api.read_namespaced_config_map("by-python", "default").data == {"k": "p"}


def test_read_through_one_server_sees_the_others_write(setup: Setup) -> None:
    a, b = setup.servers
    for i in range(20):  # no waiting: each read follows the write at once
        status, made = _request(a.url, "POST", CMS, _cm(f"rw-{i}"))
        assert status == 201, made
        status, got = _request(b.url, "GET", f"{CMS}/rw-{i}")
        assert status == 200 and got["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"], got
        status, listed = _request(b.url, "GET", CMS)
        assert int(listed["metadata"]["resourceVersion"]) >= int(made["metadata"]["resourceVersion"])
        assert f"rw-{i}" in {o["metadata"]["name"] for o in listed["items"]}


def test_watch_on_one_server_sees_the_others_writes_in_order(setup: Setup) -> None:
    a, b = setup.servers
    status, listed = _request(a.url, "GET", CMS)
    w = Watcher(a.url, listed["metadata"]["resourceVersion"])
    try:
        written: List[Tuple[str, str, int]] = []
        for i in range(10):
            status, made = _request(b.url, "POST", CMS, _cm(f"w-{i}"))
            assert status == 201
            written.append(("ADDED", f"w-{i}", int(made["metadata"]["resourceVersion"])))
            status, made = _request(b.url, "PUT", f"{CMS}/w-{i}", {**made, "data": {"v": "2"}})
            assert status == 200
            written.append(("MODIFIED", f"w-{i}", int(made["metadata"]["resourceVersion"])))
        status, _ = _request(b.url, "DELETE", f"{CMS}/w-0")  # answers a Status for configmaps, as upstream
        assert status == 200
        _wait("server a's watch to deliver server b's writes", lambda: len(w.events) > len(written))
        assert w.events[:-1] == written
        assert w.events[-1][:2] == ("DELETED", "w-0") and w.events[-1][2] > written[-1][2], w.events
    finally:
        w.close()


def test_stale_resource_version_through_the_other_server_is_a_conflict(setup: Setup) -> None:
    a, b = setup.servers
    status, made = _request(a.url, "POST", CMS, _cm("cas", v="0"))
    assert status == 201
    status, seen_by_b = _request(b.url, "GET", f"{CMS}/cas")
    assert status == 200
    status, updated = _request(a.url, "PUT", f"{CMS}/cas", {**made, "data": {"v": "a"}})
    assert status == 200
    status, body = _request(b.url, "PUT", f"{CMS}/cas", {**seen_by_b, "data": {"v": "b"}})
    assert status == 409 and body["reason"] == "Conflict", body
    assert "the object has been modified" in body["message"]
    # Same through the balancer, whichever server answers: a stale write never wins.
    for _ in range(4):
        status, body = _request(setup.lb.url, "PUT", f"{CMS}/cas", {**seen_by_b, "data": {"v": "lb"}})
        assert status == 409, body
    assert _request(b.url, "GET", f"{CMS}/cas")[1]["data"] == {"v": "a"}


def test_read_waits_for_what_etcd_acknowledged(setup: Setup) -> None:
    """Server c reaches etcd through a proxy that holds back etcd's answers (watch events included): a write
    acknowledged through server a cannot be in c's watch cache yet, and a read through c waits for etcd's current
    revision and for its cache to reach it, instead of answering from the cache as it is."""
    a = setup.servers[0]
    proxy = TCPProxy(setup.etcd.port)
    root = tempfile.mkdtemp(prefix="megaplane-several-c-")
    c: Optional[Cluster] = None
    timers: List[threading.Timer] = []
    try:
        c = start_megaplane(root, "apiserver", ["--etcd-servers", proxy.url, "--etcd-request-timeout", "10s"])
        for name in ("held-get", "held-list"):
            proxy.hold()
            status, made = _request(a.url, "POST", CMS, _cm(name))
            assert status == 201
            timers.append(threading.Timer(0.5, proxy.release))
            timers[-1].start()
            if name == "held-get":
                status, got = _request(c.url, "GET", f"{CMS}/{name}")
                assert status == 200 and got["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
            else:
                status, listed = _request(c.url, "GET", CMS)
                assert status == 200 and name in {o["metadata"]["name"] for o in listed["items"]}
                assert int(listed["metadata"]["resourceVersion"]) >= int(made["metadata"]["resourceVersion"])
    finally:
        for t in timers:
            t.cancel()
        proxy.release()
        if c is not None:
            c.stop()
        proxy.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_one_server_killed_the_balancer_keeps_serving(setup: Setup) -> None:
    """Last in this module: it kills server a."""
    a, b = setup.servers
    assert setup.lb.server_states() == {"api0": "UP", "api1": "UP"}
    a.proc.kill()
    a.proc.wait()
    b_before = _creates_served(b)
    failures = 0
    for i in range(30):
        for attempt in range(3):  # a client retry, as client-go's on a dropped connection
            try:
                status, body = _request(setup.lb.url, "POST", CMS, _cm(f"after-kill-{i}"), timeout=10)
            except (OSError, urllib.error.URLError):
                failures += 1
                continue
            if status == 409 and attempt:  # the first attempt was written, its answer was lost
                break
            assert status == 201, body
            break
        else:
            pytest.fail(f"create {i} failed three times through haproxy with one server down")
    assert _creates_served(b) - b_before >= 30
    # haproxy's health check took the dead server out (so new connections no longer try it first).
    _wait("haproxy to mark server a down", lambda: setup.lb.server_states()["api0"].startswith("DOWN"))
    assert setup.lb.server_states()["api1"] == "UP"
    names = {o["metadata"]["name"] for o in _request(setup.lb.url, "GET", CMS)[1]["items"]}
    assert {f"after-kill-{i}" for i in range(30)} <= names
    assert "after-kill-29" in setup.kubectl("get", "configmaps")


#: The answers a client retries while the leader moves: upstream's Status for each (ServerTimeout is upstream's
#: "could not be completed at this time, please try again", code 500 with Retry-After).
RETRIABLE = {(429, "TooManyRequests"), (500, "ServerTimeout"), (503, "ServiceUnavailable"), (504, "Timeout")}


class Writer(threading.Thread):
    """Creates configmaps one after another through the API until stopped; a name is tried once."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acked: Dict[str, int] = {}
        self.attempted: List[str] = []
        self.retried: List[int] = []
        self.unexpected: List[Any] = []
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            name = f"load-{i}"
            i += 1
            self.attempted.append(name)
            try:
                status, body = _request(self.url, "POST", CMS, _cm(name, i=str(i)), timeout=15)
            except OSError as e:
                self.unexpected.append(repr(e))
                continue
            if status == 201:
                self.acked[name] = int(body["metadata"]["resourceVersion"])
            elif (status, body.get("reason")) in RETRIABLE and "Traceback" not in body.get("message", "Traceback"):
                self.retried.append(status)
                time.sleep(0.05)
            else:
                self.unexpected.append((status, body))

    def wait_for_more(self, n: int, what: str) -> None:
        start = len(self.acked)
        _wait(what, lambda: len(self.acked) >= start + n or self.unexpected, 60)
        assert not self.unexpected, self.unexpected


def test_member_kills_under_write_load() -> None:
    """A steady write load through one API server on a 3-member etcd cluster; kill -9 a follower (then start it
    again), then the leader: every acknowledged create is there afterwards, the only errors are Status 5xx/429,
    and a watch open across both faults delivers each acknowledged create once, revisions strictly increasing."""
    cluster = EtcdCluster().start()
    root = tempfile.mkdtemp(prefix="megaplane-etcd-faults-")
    server: Optional[Cluster] = None
    writer: Optional[Writer] = None
    watcher: Optional[Watcher] = None
    try:
        server = start_megaplane(root, "apiserver", ["--etcd-servers", ",".join(cluster.urls),
                                                     "--etcd-request-timeout", "2s"])
        status, listed = _request(server.url, "GET", CMS)
        watcher = Watcher(server.url, listed["metadata"]["resourceVersion"])
        writer = Writer(server.url)
        writer.start()
        writer.wait_for_more(50, "writes before the faults")
        leader = cluster.leader()
        follower = next(m for m in cluster.members if m is not leader)
        follower.kill()
        writer.wait_for_more(80, "writes with a follower down")
        follower.start()
        writer.wait_for_more(30, "writes with the follower back")
        leader = cluster.leader()
        leader.kill()
        writer.wait_for_more(80, "writes after the leader was killed")
        assert cluster.leader() is not leader
        writer.halt.set()
        writer.join(30)
        assert not writer.unexpected, writer.unexpected
        acked = writer.acked
        for name, rv in acked.items():  # each acknowledged write read back
            status, got = _request(server.url, "GET", f"{CMS}/{name}")
            assert status == 200 and int(got["metadata"]["resourceVersion"]) == rv, (name, status, got)
        w = watcher
        _wait("the watch to deliver every acknowledged create",
              lambda: set(acked) <= {n for t, n, _ in w.events if t == "ADDED"} or w.ended.is_set())
        revisions = [rv for _, _, rv in w.events]
        assert all(x < y for x, y in zip(revisions, revisions[1:])), "watch events out of order or repeated"
        added = [n for t, n, _ in w.events if t == "ADDED"]
        assert len(added) == len(set(added)), "a create delivered twice"
        assert set(acked) <= set(added), f"missing from the watch: {sorted(set(acked) - set(added))[:10]}"
        assert set(added) <= set(writer.attempted)
        assert {rv for t, n, rv in w.events if n in acked} == set(acked.values())
    finally:
        if writer is not None:
            writer.halt.set()
            writer.join(30)
        if watcher is not None:
            watcher.close()
        if server is not None:
            server.stop()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _restore(etcd: EtcdProcess, snapshot: str) -> int:
    """kill -9 etcd, wipe its data dir, `etcdctl snapshot restore` into a new one, move the restored revision past
    the one etcd had before (a watch resumed from the revision after that must find it compacted) and compact
    there, then start etcd for its clients. Returns the compacted revision.

    The revision is moved while etcd listens on another port, so no client sees the restored history before it
    is compacted: by hand what etcdutl's `snapshot restore --bump-revision --mark-compacted` does offline (etcd
    3.4's etcdctl has neither flag). Without it, a watch resumed from a revision of the lost history waits for
    the restored history to reach that number and then goes on from there, on etcd as through the API."""
    status = json.loads(etcdctl(etcd.endpoint, "endpoint", "status", "-w", "json"))
    past_revision = int(status[0]["Status"]["header"]["revision"])
    etcd.kill()
    shutil.rmtree(etcd.data_dir)
    peer = f"http://127.0.0.1:{etcd.peer_port}"
    restored = os.path.join(etcd.root, "restored")
    etcdctl(etcd.endpoint, "snapshot", "restore", snapshot, "--data-dir", restored, "--name", "default",
            "--initial-cluster", f"default={peer}", "--initial-advertise-peer-urls", peer)
    etcd.data_dir = restored
    client_port, etcd.port = etcd.port, free_port()
    etcd.start()
    while True:
        status = json.loads(etcdctl(etcd.endpoint, "endpoint", "status", "-w", "json"))
        revision = int(status[0]["Status"]["header"]["revision"])
        if revision > past_revision + 1:
            break
        etcdctl(etcd.endpoint, "put", "/megaplane-restore-bump", str(revision))  # outside /registry
    etcdctl(etcd.endpoint, "compact", str(revision))
    etcd.kill()
    etcd.port = client_port
    etcd.start()
    return revision


@pytest.mark.parametrize("restart", [True, False], ids=["apiserver-restarted", "apiserver-running"])
def test_snapshot_drill(restart: bool) -> None:
    """Seed 002's drill: `etcdctl snapshot save`, more writes, wipe etcd, `etcdctl snapshot restore`, the revision
    moved past the lost history and compacted (see _restore), etcd started. Either in the order of upstream's
    runbook ("Operating etcd clusters for Kubernetes": stop the API servers, restore, start them) or with the API
    server left running: its etcd watches resume at a compacted revision, so its watch caches relist. Both
    serve the snapshot's state; a client resuming its watch from a resourceVersion of the lost history gets
    410 Gone and relists (client-go's reflector does), then follows the restored history."""
    etcd = EtcdProcess().start()
    root = tempfile.mkdtemp(prefix="megaplane-etcd-drill-")
    server: Optional[Cluster] = None
    watcher: Optional[Watcher] = None
    try:
        server = start_megaplane(root, "apiserver", ["--etcd-servers", etcd.url, "--etcd-request-timeout", "2s"])
        for i in range(3):
            assert _request(server.url, "POST", CMS, _cm(f"before-{i}", v=str(i)))[0] == 201
        snapshot = os.path.join(root, "snapshot.db")
        etcdctl(etcd.endpoint, "snapshot", "save", snapshot)
        status, listed = _request(server.url, "GET", CMS)
        watcher = Watcher(server.url, listed["metadata"]["resourceVersion"])
        for i in range(5):
            status, made = _request(server.url, "POST", CMS, _cm(f"after-{i}"))
            assert status == 201
        last_rv = int(made["metadata"]["resourceVersion"])
        _wait("the watch to see the writes after the snapshot", lambda: len(watcher.events) == 5)
        port = server.port
        if restart:
            server.stop()
        compacted = _restore(etcd, snapshot)
        if restart:
            server = start_megaplane(root, "apiserver", ["--etcd-servers", etcd.url, "--etcd-request-timeout", "2s"],
                                     port=port)
        # The watch opened before ends: with its server, or when its watch cache starts over from the restored
        # state (as upstream's cacher ends its watchers on a relist).
        assert watcher.ended.wait(30), "the watch opened before the restore did not end"
        watcher.close()

        def restored() -> Optional[Dict[str, Any]]:
            status, listed = _request(server.url, "GET", CMS)
            return listed if status == 200 and not any(o["metadata"]["name"].startswith("after-")
                                                       for o in listed["items"]) else None

        listed = _wait("the restored state", restored)
        assert {o["metadata"]["name"] for o in listed["items"]} == {"before-0", "before-1", "before-2"}
        assert int(listed["metadata"]["resourceVersion"]) >= compacted > last_rv + 1
        assert _request(server.url, "GET", f"{CMS}/after-0")[0] == 404
        assert _request(server.url, "GET", f"{CMS}/before-1")[1]["data"] == {"v": "1"}
        # The watcher resumes where it was: a revision of the lost history, now compacted.
        with urllib.request.urlopen(f"{server.url}{CMS}?watch=1&resourceVersion={last_rv}&timeoutSeconds=5",
                                    timeout=30) as r:
            lines = [json.loads(line) for line in r.read().splitlines() if line.strip()]
        assert lines and lines[0]["type"] == "ERROR" and lines[0]["object"]["code"] == 410, lines
        # So it relists and watches from there: the restored history, new writes included.
        watcher = Watcher(server.url, listed["metadata"]["resourceVersion"])
        status, made = _request(server.url, "POST", CMS, _cm("after-restore"))
        assert status == 201
        _wait("the relisted watch to see a write after the restore", lambda: watcher.events)
        assert watcher.events == [("ADDED", "after-restore", int(made["metadata"]["resourceVersion"]))]
        stale = _cm("before-0")
        stale["metadata"]["resourceVersion"] = str(last_rv)  # a resourceVersion from the lost history
        status, body = _request(server.url, "PUT", f"{CMS}/before-0", stale)
        assert status == 409 and body["reason"] == "Conflict", body
        status, body = _request(server.url, "POST", CMS, _cm("after-0"))  # a name only the lost history had
        assert status == 201, body
    finally:
        if watcher is not None:
            watcher.close()
        if server is not None:
            server.stop()
        etcd.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_up_apiservers_behind_haproxy() -> None:
    """`megaplane up --apiservers 2`: a second API server on the next port over the embedded store's etcd
    endpoint; writes through haproxy land on both, each reads the other's, and both stop with `up`."""
    from types import SimpleNamespace

    from tests.api.conftest import start_cluster

    root = tempfile.mkdtemp(prefix="megaplane-up-apiservers-")
    port = free_port()
    secure = free_port()
    while secure in (port, port + 1):
        secure = free_port()
    c = start_cluster(root, ["--apiservers", "2"], port=port, secure_port=secure)
    lb: Optional[HAProxy] = None
    try:
        other = SimpleNamespace(url=f"http://127.0.0.1:{c.port + 1}")
        lb = HAProxy(root, [c.port, c.port + 1])
        before = (_creates_served(c), _creates_served(other))  # type: ignore[arg-type]
        for i in range(6):
            status, body = _request(lb.url, "POST", CMS, _cm(f"up-lb-{i}", i=str(i)))
            assert status == 201, body
        after = (_creates_served(c), _creates_served(other))  # type: ignore[arg-type]
        assert after[0] > before[0] and after[1] > before[1], (before, after)
        for url in (c.url, other.url):  # a consistent read on each shows every write, whichever server took it
            status, listed = _request(url, "GET", CMS)
            assert {f"up-lb-{i}" for i in range(6)} <= {o["metadata"]["name"] for o in listed["items"]}
        status, made = _request(other.url, "POST", CMS, _cm("up-stale"))
        assert status == 201, made
        stale = _cm("up-stale", k="v")
        stale["metadata"]["resourceVersion"] = str(int(made["metadata"]["resourceVersion"]) - 1)
        status, body = _request(c.url, "PUT", f"{CMS}/up-stale", stale)
        assert status == 409, body
    finally:
        if lb is not None:
            lb.stop()
        c.stop()

    def gone() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{c.port + 1}/readyz", timeout=2)
        except OSError:
            return True
        return False

    _wait("the second API server to stop with up", gone)
    shutil.rmtree(root, ignore_errors=True)
