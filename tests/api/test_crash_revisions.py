"""kill -9 `megaplane up` in the default WAL modes: no resourceVersion is handed out twice (issue 8 #9).

ConfigMaps are created over HTTP and each acknowledged resourceVersion is
recorded; the server is killed while the last of them are still in the
buffered WAL (a flush interval of seconds makes that certain rather than
likely), then restarted on the same data dir. The store resumes above
every revision it may have handed out, with everything below compacted,
so new objects get larger resourceVersions, and a watch from an
acknowledged resourceVersion that was lost answers 410 Expired: the
client relists instead of silently missing events.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests.api.conftest import Cluster, start_cluster

# Default WAL modes; buffered writes wait up to 2 s for the disk, so a kill right after a burst loses it.
EXTRA = ["--wal-flush-interval", "2s"]
PATH = "/api/v1/namespaces/default/configmaps"


def request(c: Cluster, method: str, path: str, body: Any = None) -> Tuple[int, Dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        c.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def create(c: Cluster, name: str) -> int:
    code, obj = request(c, "POST", PATH, {"metadata": {"name": name}, "data": {"n": name}})
    assert code == 201, obj
    return int(obj["metadata"]["resourceVersion"])


def wal_segment_bytes(root: str, stream: str) -> int:
    d = os.path.join(root, "data", "wal", stream)
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) if os.path.isdir(d) else 0


@pytest.fixture
def root() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="megaplane-crash-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_no_resource_version_is_reused_after_kill_9_and_lost_ones_answer_410(root: str) -> None:
    c = start_cluster(root, EXTRA)
    try:
        durable = {f"kept-{i}": create(c, f"kept-{i}") for i in range(10)}
        # Wait (by polling the data dir) until the first burst is on disk: a prefix survives the kill.
        deadline = time.monotonic() + 30
        while wal_segment_bytes(root, "~registry~configmaps~") < 1000:
            assert time.monotonic() < deadline, "the buffered WAL never reached the disk"
            time.sleep(0.05)
        burst = {f"lost-{i}": create(c, f"lost-{i}") for i in range(20)}
    finally:
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait()
    acked = {**durable, **burst}
    highest = max(acked.values())

    c = start_cluster(root, EXTRA)
    try:
        code, listed = request(c, "GET", PATH)
        assert code == 200
        present = {
            item["metadata"]["name"]: int(item["metadata"]["resourceVersion"]) for item in listed["items"]
        }
        assert all(present[name] == rv for name, rv in durable.items()), "what reached the disk survives"
        lost: List[int] = sorted(rv for name, rv in acked.items() if name not in present)
        assert lost, "the burst of the last moments was still in the buffered WAL"
        assert int(listed["metadata"]["resourceVersion"]) > highest

        # New objects get resourceVersions above every acknowledged one.
        after = [create(c, f"after-{i}") for i in range(5)]
        assert min(after) > highest and after == sorted(after)
        code, updated = request(
            c, "PUT", f"{PATH}/after-0", {"metadata": {"name": "after-0"}, "data": {"n": "again"}}
        )
        assert code == 200 and int(updated["metadata"]["resourceVersion"]) > max(after)

        # A watch from an acknowledged resourceVersion that was lost: 410 Expired, as for a too old one.
        for rv in (lost[0], lost[-1]):
            req = urllib.request.Request(f"{c.url}{PATH}?watch=1&resourceVersion={rv}&timeoutSeconds=5")
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
                event = json.loads(r.readline())
            status = event["object"]
            assert event["type"] == "ERROR", event
            assert status["code"] == 410 and status["reason"] == "Expired", status
            assert status["message"].startswith(f"too old resource version: {rv} ("), status
    finally:
        c.stop()
