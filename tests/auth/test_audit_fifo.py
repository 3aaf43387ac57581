"""A slow audit sink never holds up a request: the log is a FIFO nobody reads.

The writer thread blocks opening (and would block writing) the FIFO; the
queue (--audit-log-batch-buffer-size 10) fills and further events are
dropped and counted in apiserver_audit_error_total{plugin="log"}, while
every request is answered as usual.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import urllib.request
from typing import Dict

from tests.api.conftest import start_megaplane

POLICY = """
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: RequestResponse
"""


def _metrics(url: str) -> Dict[str, float]:
    """One scrape (the scrape's own events are counted only after it answered)."""
    out = {}
    for line in urllib.request.urlopen(url + "/metrics", timeout=30).read().decode().splitlines():
        if line.startswith("apiserver_audit_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_requests_are_answered_while_the_sink_is_stuck() -> None:
    root = tempfile.mkdtemp(prefix="megaplane-audit-fifo-")
    policy = os.path.join(root, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    fifo = os.path.join(root, "audit.fifo")
    os.mkfifo(fifo)
    cluster = start_megaplane(root, "up", [
        "--data-dir", f"{root}/data", "--nodes", "0", "--scheduler=false", "--controllers", "",
        "--audit-policy-file", policy, "--audit-log-path", fifo, "--audit-log-batch-buffer-size", "10"])
    try:
        started = time.monotonic()
        for i in range(60):
            with urllib.request.urlopen(f"{cluster.url}/api/v1/namespaces/default/configmaps?n={i}", timeout=30) as r:
                assert r.status == 200
                assert r.headers["Audit-Id"]
        # Sixty requests in well under the 30 s any one of them could have been held (no timed claim beyond that).
        assert time.monotonic() - started < 30
        metrics = _metrics(cluster.url)
        dropped = metrics['apiserver_audit_error_total{plugin="log"}']
        events = metrics["apiserver_audit_event_total"]
        # Two stages a request; the writer holds one batch (up to a queue's worth) and the queue one more.
        assert events >= 120 and dropped >= events - 21, (events, dropped)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
