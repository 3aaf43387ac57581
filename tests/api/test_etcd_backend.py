"""`megaplane apiserver --etcd-servers` on real etcd 3.4 processes, driven by kubectl and the Python client.

Checks that the keys are the ones kube-apiserver writes (etcdctl), that
--etcd-servers-overrides puts leases in a cluster of their own, that an
etcd outage answers promptly with a Status (never a hang) and that the
server serves again, watches included, once etcd is back, and that a watch
from a compacted revision gets 410 Gone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from tests.api.conftest import Cluster, start_megaplane
from tests.storage.etcd_servers import EtcdProcess, etcdctl

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "namespace": "default"},
      "data": {"k": "v"}}


def _request(c: Cluster, method: str, path: str, body: Optional[Dict[str, Any]] = None,
             timeout: float = 30) -> Tuple[int, Dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(c.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _status(c: Cluster, path: str) -> int:
    try:
        with urllib.request.urlopen(c.url + path, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _wait(what: str, check, deadline_s: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def etcds() -> Iterator[List[EtcdProcess]]:
    procs = [EtcdProcess().start(), EtcdProcess().start()]
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


@pytest.fixture(scope="module")
def cluster(etcds: List[EtcdProcess]) -> Iterator[Cluster]:
    """One API server: everything in the first etcd, Leases in the second."""
    main, leases = etcds
    root = tempfile.mkdtemp(prefix="megaplane-etcd-backend-")
    c = start_megaplane(root, "apiserver", [
        "--etcd-servers", main.url,
        "--etcd-servers-overrides", f"coordination.k8s.io/leases#{leases.url}",
        "--etcd-request-timeout", "3s",
    ])
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def _keys(e: EtcdProcess, prefix: str = "/registry/") -> List[str]:
    return etcdctl(e.endpoint, "get", prefix, "--prefix", "--keys-only").split()


def test_kubectl_create_get_list_delete(cluster: Cluster, etcds: List[EtcdProcess]) -> None:
    main, _ = etcds
    cluster.ok("create", "-f", "-", input=json.dumps(CM))
    got = json.loads(cluster.ok("get", "configmap", "c1", "-o", "json"))
    assert got["data"] == {"k": "v"}
    rv = got["metadata"]["resourceVersion"]
    # The resourceVersion is etcd's revision of the key (etcdctl shows it as mod_revision).
    kv = json.loads(etcdctl(main.endpoint, "get", "/registry/configmaps/default/c1", "-w", "json"))["kvs"][0]
    assert str(kv["mod_revision"]) == rv
    assert "c1" in cluster.ok("get", "configmaps")
    keys = _keys(main)
    # The keys kube-apiserver writes: the bootstrap namespaces, the kubernetes Service under services/specs.
    for k in ("/registry/configmaps/default/c1", "/registry/namespaces/default", "/registry/namespaces/kube-system",
              "/registry/services/specs/default/kubernetes"):
        assert k in keys, keys
    cluster.ok("delete", "configmap", "c1")
    assert "/registry/configmaps/default/c1" not in _keys(main)
    out = cluster.kubectl("get", "configmap", "c1")
    assert out.returncode != 0 and "NotFound" in out.stderr


def test_watch_sees_changes(cluster: Cluster) -> None:
    import kubernetes

    api = kubernetes.client.CoreV1Api(cluster.api_client())
    listed = api.list_namespaced_config_map("default")
    api.create_namespaced_config_map("default", {**CM, "metadata": {"name": "w1", "namespace": "default"}})
    api.patch_namespaced_config_map("w1", "default", {"data": {"k": "v2"}})
    api.delete_namespaced_config_map("w1", "default")
    seen = []
    w = kubernetes.watch.Watch()
    for ev in w.stream(api.list_namespaced_config_map, "default", resource_version=listed.metadata.resource_version,
                       timeout_seconds=10):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_leases_live_in_their_own_etcd(cluster: Cluster, etcds: List[EtcdProcess]) -> None:
    main, leases = etcds
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "node-a", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 40}}
    cluster.ok("create", "-f", "-", input=json.dumps(lease))
    got = json.loads(cluster.ok("get", "lease", "-n", "kube-node-lease", "node-a", "-o", "json"))
    assert got["spec"]["holderIdentity"] == "node-a"
    assert "/registry/leases/kube-node-lease/node-a" in _keys(leases)
    assert not [k for k in _keys(main) if k.startswith("/registry/leases/")]
    assert not [k for k in _keys(leases) if not k.startswith("/registry/leases/")]
    # An update is a compare-and-swap on the lease's own revision in its own cluster.
    got["spec"]["holderIdentity"] = "node-b"
    status, body = _request(cluster, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-a",
                            got)
    assert status == 200 and body["spec"]["holderIdentity"] == "node-b"
    status, body = _request(cluster, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-a",
                            got)  # the old resourceVersion again
    assert status == 409 and body["reason"] == "Conflict"


def test_watch_from_a_compacted_revision_is_gone(cluster: Cluster, etcds: List[EtcdProcess]) -> None:
    main, _ = etcds
    status, made = _request(cluster, "POST", "/api/v1/namespaces/default/configmaps",
                            {**CM, "metadata": {"name": "old", "namespace": "default"}})
    assert status == 201
    for i in range(3):
        status, made = _request(cluster, "PUT", "/api/v1/namespaces/default/configmaps/old",
                                {**made, "data": {"i": str(i)}})
        assert status == 200
    current = int(made["metadata"]["resourceVersion"])
    etcdctl(main.endpoint, "compact", str(current))
    # An exact list at a compacted revision reads etcd: 410 Expired.
    status, body = _request(cluster, "GET", "/api/v1/namespaces/default/configmaps?resourceVersion=2"
                            "&resourceVersionMatch=Exact")
    assert status == 410 and body["reason"] == "Expired", body
    # A watch from it on a server whose watch cache started after the compaction: 410 Gone, the stream's one
    # ERROR event (the first server's cache still holds those events, and serves them as upstream's would).
    root = tempfile.mkdtemp(prefix="megaplane-etcd-backend-2-")
    second = start_megaplane(root, "apiserver", ["--etcd-servers", main.url, "--etcd-servers-overrides",
                                                 f"coordination.k8s.io/leases#{etcds[1].url}"])
    try:
        assert json.loads(second.ok("get", "configmap", "old", "-o", "json"))["data"] == {"i": "2"}
        with urllib.request.urlopen(second.url + "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=2"
                                    "&timeoutSeconds=5", timeout=30) as r:
            lines = [json.loads(line) for line in r.read().splitlines() if line.strip()]
        assert lines and lines[0]["type"] == "ERROR", lines
        assert lines[0]["object"]["code"] == 410 and lines[0]["object"]["reason"] in ("Expired", "Gone"), lines
    finally:
        second.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_etcd_down_answers_promptly_then_recovers(cluster: Cluster, etcds: List[EtcdProcess]) -> None:
    import kubernetes

    main, _ = etcds
    api = kubernetes.client.CoreV1Api(cluster.api_client())
    listed = api.list_namespaced_config_map("default")
    main.kill()
    try:
        started = time.monotonic()
        status, body = _request(cluster, "POST", "/api/v1/namespaces/default/configmaps",
                                {**CM, "metadata": {"name": "down", "namespace": "default"}})
        took = time.monotonic() - started
        assert status in (500, 503, 504) and body.get("kind") == "Status", (status, body)
        assert body["reason"] in ("ServerTimeout", "Timeout", "ServiceUnavailable"), body
        assert "Traceback" not in body.get("message", "")
        assert took < 10, f"an etcd outage took {took:.1f}s to answer"  # the 3 s etcd deadline, not a hang
        # Reads of what the watch cache holds are still served, as kube-apiserver's cacher does; /readyz says
        # the server is not ready (its etcd watch stream is down).
        assert _request(cluster, "GET", "/api/v1/namespaces/default")[0] == 200
        _wait("/readyz to fail", lambda: _status(cluster, "/readyz") == 503)
    finally:
        main.start()
    _wait("/readyz to pass again", lambda: _status(cluster, "/readyz") == 200)
    # Served again without a restart; the watch cache resumed its etcd watch without a gap.
    _wait("writes after etcd restarted", lambda: _request(
        cluster, "POST", "/api/v1/namespaces/default/configmaps",
        {**CM, "metadata": {"name": "back", "namespace": "default"}})[0] == 201)
    seen = []
    w = kubernetes.watch.Watch()
    for ev in w.stream(api.list_namespaced_config_map, "default", resource_version=listed.metadata.resource_version,
                       timeout_seconds=10):
        seen.append((ev["type"], ev["object"].metadata.name))
        if ev["object"].metadata.name == "back":
            w.stop()
    assert seen[-1] == ("ADDED", "back") and ("ADDED", "down") not in seen
    assert "back" in cluster.ok("get", "configmaps")
    assert os.path.exists(cluster.kubeconfig)


def test_read_not_older_than_another_kinds_revision(cluster: Cluster) -> None:
    """A list "not older than" a revision written to another kind waits for the watch cache to reach it, which
    on etcd moves only with events or a progress notification (RequestProgress), then answers from the cache."""
    status, secret = _request(cluster, "POST", "/api/v1/namespaces/default/secrets",
                              {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"}, "data": {}})
    assert status == 201
    rv = int(secret["metadata"]["resourceVersion"])
    status, listed = _request(cluster, "GET", f"/api/v1/namespaces/default/configmaps?resourceVersion={rv}")
    assert status == 200, listed
    assert int(listed["metadata"]["resourceVersion"]) >= rv


def test_up_on_etcd(etcds: List[EtcdProcess]) -> None:
    """`megaplane up --etcd-servers`: the whole control plane (fleet, controllers) keeps its state in etcd."""
    main, _ = etcds
    root = tempfile.mkdtemp(prefix="megaplane-etcd-up-")
    up = start_megaplane(root, "up", ["--etcd-servers", main.url, "--etcd-prefix", "/up", "--nodes", "1",
                                      "--controllers", "namespace,serviceaccount"])
    try:
        nodes = _wait("the fleet's node", lambda: json.loads(up.ok("get", "nodes", "-o", "json"))["items"])
        name = nodes[0]["metadata"]["name"]
        keys = _keys(main, "/up/")
        assert f"/up/minions/{name}" in keys and f"/up/leases/kube-node-lease/{name}" in keys, keys
        assert "/up/serviceaccounts/default/default" in _wait(
            "the default service account", lambda: [k for k in _keys(main, "/up/") if "serviceaccounts" in k])
    finally:
        up.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_etcd_hung_answers_timeout(cluster: Cluster, etcds: List[EtcdProcess]) -> None:
    """etcd stopped (SIGSTOP: connections open, nothing answers): a write gets 504 Timeout once the etcd deadline
    (--etcd-request-timeout 3s here) passes, not a hang; resumed, it serves again."""
    import signal

    main, _ = etcds
    assert main.proc is not None
    main.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        status, body = _request(cluster, "POST", "/api/v1/namespaces/default/configmaps",
                                {**CM, "metadata": {"name": "hung", "namespace": "default"}})
        took = time.monotonic() - started
    finally:
        main.proc.send_signal(signal.SIGCONT)
    assert (status, body.get("kind"), body.get("reason")) == (504, "Status", "Timeout"), body
    assert "request timeout" in body["message"] and took < 10, (took, body)
    _wait("writes after etcd resumed", lambda: _request(
        cluster, "POST", "/api/v1/namespaces/default/configmaps",
        {**CM, "metadata": {"name": "resumed", "namespace": "default"}})[0] in (201, 409))


def test_compacted_while_partitioned_relists(etcds: List[EtcdProcess]) -> None:
    """The API server cut off from etcd (a TCP proxy drops it) while others write and compact: once reconnected,
    its watches find their next revision compacted, the watch caches relist (serving what was written meanwhile)
    and end their watchers, who then get 410 for the old resourceVersion, as upstream's cacher does."""
    import threading

    from tests.storage.etcd_servers import TCPProxy

    main, leases = etcds
    proxy = TCPProxy(main.port)
    root = tempfile.mkdtemp(prefix="megaplane-etcd-partition-")
    c = start_megaplane(root, "apiserver", ["--etcd-servers", proxy.url, "--etcd-request-timeout", "2s",
                                            "--etcd-servers-overrides", f"coordination.k8s.io/leases#{leases.url}"])
    try:
        status, made = _request(c, "POST", "/api/v1/namespaces/default/configmaps",
                                {**CM, "metadata": {"name": "before-cut", "namespace": "default"}})
        assert status == 201
        old_rv = made["metadata"]["resourceVersion"]
        ended: List[bytes] = []

        def watch() -> None:
            with urllib.request.urlopen(c.url + f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old_rv}"
                                        "&timeoutSeconds=60", timeout=90) as r:
                ended.append(r.read())

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        proxy.cut()
        # Someone else writes and compacts meanwhile (straight to etcd, as another API server would), past the
        # revision the cut-off server's watches resume from.
        cm = {**CM, "metadata": {"name": "during-cut", "namespace": "default", "uid": "d1",
                                 "creationTimestamp": "2026-12-02T00:00:00Z"}}
        etcdctl(main.endpoint, "put", "/registry/configmaps/default/during-cut", json.dumps(cm))
        etcdctl(main.endpoint, "put", "/registry/configmaps/default/during-cut", json.dumps(cm))  # a second revision
        rev = json.loads(etcdctl(main.endpoint, "get", "/registry/configmaps/default/during-cut", "-w", "json"))
        etcdctl(main.endpoint, "compact", str(rev["header"]["revision"]))
        proxy.restore()
        got = _wait("the relisted cache", lambda: (lambda r: r[1] if r[0] == 200 else None)(
            _request(c, "GET", "/api/v1/namespaces/default/configmaps/during-cut")))
        assert got["metadata"]["uid"] == "d1"
        watcher.join(30)
        assert ended, "the watch was not ended when its cache started over"
        with urllib.request.urlopen(c.url + f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old_rv}"
                                    "&timeoutSeconds=5", timeout=30) as r:
            lines = [json.loads(line) for line in r.read().splitlines() if line.strip()]
        assert lines and lines[0]["type"] == "ERROR" and lines[0]["object"]["code"] == 410, lines
    finally:
        c.stop()
        proxy.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_apiserver_waits_for_etcd_at_start() -> None:
    """Started before its etcd (as a whole cluster coming up at once), the API server waits for it."""
    import threading

    late = EtcdProcess()
    root = tempfile.mkdtemp(prefix="megaplane-etcd-late-")
    log = os.path.join(root, "apiserver.log")

    def start_when_waited_for() -> None:  # etcd comes up only once the API server said it is waiting
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.exists(log):
                with open(log) as f:
                    if "waiting for etcd" in f.read():
                        break
            time.sleep(0.05)
        late.start()

    starter = threading.Thread(target=start_when_waited_for)
    starter.start()
    try:
        c = start_megaplane(root, "apiserver", ["--etcd-servers", late.url])
        try:
            assert "kube-system" in c.ok("get", "namespaces")
        finally:
            c.stop()
        with open(log) as f:
            assert "waiting for etcd" in f.read()
    finally:
        starter.join()
        late.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_apiserver_on_megaplane_store() -> None:
    """The same backend on `megaplane store` (megaplane's own etcd v3 API): kubectl works, etcdctl sees the keys."""
    from tests.storage.etcd_servers import StoreProcess

    store = StoreProcess().start()
    root = tempfile.mkdtemp(prefix="megaplane-on-store-")
    try:
        c = start_megaplane(root, "apiserver", ["--etcd-servers", store.url])
        try:
            c.ok("create", "-f", "-", input=json.dumps(CM))
            assert json.loads(c.ok("get", "configmap", "c1", "-o", "json"))["data"] == {"k": "v"}
            assert "/registry/configmaps/default/c1" in _keys(store)
            c.ok("delete", "configmap", "c1")
            assert "/registry/configmaps/default/c1" not in _keys(store)
        finally:
            c.stop()
    finally:
        store.stop()
        shutil.rmtree(root, ignore_errors=True)
