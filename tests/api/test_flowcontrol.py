"""API Priority and Fairness over real sockets: 429s when saturated, leases still served, the objects, metrics.

The server runs with tiny limits (`--max-requests-inflight 4 --max-mutating-requests-inflight 2`: a
server concurrency limit of 6, so global-default and node-high get one seat each). Bulk traffic is a
burst of LISTs over hundreds of raw connections, sent again until the server has answered 429 (a
state polled for with a deadline, never a timed assertion).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import urllib.request
from typing import Dict, Iterator, List, Tuple

import pytest

from megaplane.client import Client, HTTPTransport, TooManyRequestsError
from tests.api.conftest import Cluster, start_cluster

BULK_AGENT = "bulk-loader/1.0"
CONFIGMAPS = 150
BURST = 400


@pytest.fixture(scope="module")
def small() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-apf-")
    c = start_cluster(root, ["--max-requests-inflight", "4", "--max-mutating-requests-inflight", "2"])
    try:
        for i in range(CONFIGMAPS):
            _request(c, "POST", "/api/v1/namespaces/default/configmaps",
                     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"},
                      "data": {"k": "v" * 200}})
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def _request(c: Cluster, method: str, path: str, body: object = None, agent: str = "test") -> Tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(c.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", "User-Agent": agent})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def _burst(port: int, n: int, agent: str, path: str) -> List[Tuple[int, Dict[str, str], bytes]]:
    """`n` requests at once, one per connection; each answer's status, headers and body."""
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]
    request = (f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n").encode()
    for _, w in conns:
        w.write(request)

    async def answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> Tuple[int, Dict[str, str], bytes]:
        raw = await r.read()
        w.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, body

    return list(await asyncio.gather(*(answer(r, w) for r, w in conns)))


def _saturate(c: Cluster, agent: str = BULK_AGENT, rounds: int = 30) -> List[Tuple[int, Dict[str, str], bytes]]:
    """Bursts of LISTs until some are answered 429; every answer of the last burst."""
    for _ in range(rounds):
        answers = asyncio.run(_burst(c.port, BURST, agent, "/api/v1/namespaces/default/configmaps"))
        if any(status == 429 for status, _, _ in answers):
            return answers
    raise AssertionError(f"{rounds} bursts of {BURST} LISTs never saturated the server")


def test_saturated_server_answers_429_with_retry_after(small: Cluster) -> None:
    answers = _saturate(small)
    statuses = {status for status, _, _ in answers}
    assert statuses <= {200, 429}, statuses  # never a 5xx
    for status, headers, body in answers:
        if status == 429:
            assert int(headers["retry-after"]) >= 1
            assert headers["content-type"] == "text/plain; charset=utf-8"
            assert body == b"Too many requests, please try again later.\n"
        else:
            assert json.loads(body)["kind"] == "ConfigMapList"
    status, _ = _request(small, "GET", "/readyz")
    assert status == 200


def test_lease_renewals_succeed_while_bulk_traffic_saturates(small: Cluster) -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "node-1"},
             "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}
    status, body = _request(small, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)
    assert status == 201, body
    stop = threading.Event()
    flood: List[int] = []

    def bulk() -> None:
        while not stop.is_set():
            flood.extend(status for status, _, _ in
                         asyncio.run(_burst(small.port, BURST, BULK_AGENT, "/api/v1/namespaces/default/configmaps")))

    t = threading.Thread(target=bulk)
    t.start()
    renewals: List[int] = []
    try:
        while not (429 in flood and len(renewals) >= 50):
            current = json.loads(_request(small, "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                                                        "leases/node-1", agent="kubelet/v1.32")[1])
            current["spec"]["renewTime"] = "2026-01-01T00:00:00.000000Z"
            status, body = _request(small, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"
                                                  "node-1", current, agent="kubelet/v1.32")
            renewals.append(status)
            assert len(renewals) < 5000, "the bulk traffic never saturated the server"
    finally:
        stop.set()
        t.join()
    assert set(renewals) == {200}
    assert 429 in flood and set(flood) <= {200, 429}


def test_megaplane_client_retries_after_429(small: Cluster) -> None:
    """The same flow as the flood (one User-Agent): refused at first, then served after Retry-After."""
    agent = "megaplane-retry-test"

    async def run() -> Tuple[float, int]:
        stop = asyncio.Event()

        async def flood() -> None:
            while not stop.is_set():
                await _burst(small.port, BURST, agent, "/api/v1/namespaces/default/configmaps")

        flooding = asyncio.get_running_loop().create_task(flood())
        try:
            async with Client(HTTPTransport(small.url, qps=0, max_retries=0, user_agent=agent)) as impatient:
                retry_after = None
                for _ in range(2000):
                    try:
                        await impatient.resource("configmaps").list(namespace="default")
                    except TooManyRequestsError as exc:
                        retry_after = exc.retry_after
                        break
                assert retry_after is not None and retry_after >= 1
            async with Client(HTTPTransport(small.url, qps=0, max_retries=20, user_agent=agent)) as patient:
                served = 0
                for _ in range(20):
                    items = await patient.resource("configmaps").list(namespace="default")
                    served += 1 if items is not None else 0
            return retry_after, served
        finally:
            stop.set()
            await flooding

    retry_after, served = asyncio.run(run())
    assert served == 20


def test_flowschemas_and_priority_levels_are_served_read_only(small: Cluster) -> None:
    out = small.ok("get", "flowschemas,prioritylevelconfigurations", "-o", "name")
    for name in ("exempt", "probes", "system-leader-election", "system-node-high", "system-nodes",
                 "global-default", "catch-all"):
        assert f"flowschema.flowcontrol.apiserver.k8s.io/{name}\n" in out
    for name in ("exempt", "system", "node-high", "leader-election", "workload-high", "workload-low",
                 "global-default", "catch-all"):
        assert f"prioritylevelconfiguration.flowcontrol.apiserver.k8s.io/{name}\n" in out
    status, body = _request(small, "GET", "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations/node-high")
    assert status == 200
    spec = json.loads(body)["spec"]
    assert spec["limited"]["nominalConcurrencyShares"] == 40
    assert spec["limited"]["limitResponse"]["queuing"] == {"queues": 64, "handSize": 6, "queueLengthLimit": 50}
    status, body = _request(small, "GET", "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/system-node-high")
    assert json.loads(body)["spec"]["priorityLevelConfiguration"]["name"] == "node-high"
    status, _ = _request(small, "DELETE", "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/global-default")
    assert status == 405
    status, _ = _request(small, "POST", "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas",
                         {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
                          "metadata": {"name": "mine"}, "spec": {"priorityLevelConfiguration": {"name": "exempt"}}})
    assert status == 405


def test_flowcontrol_metrics(small: Cluster) -> None:
    _saturate(small)
    status, body = _request(small, "GET", "/metrics")
    text = body.decode()
    assert 'apiserver_flowcontrol_nominal_limit_seats{priority_level="node-high"} 1.0' in text
    assert 'apiserver_flowcontrol_nominal_limit_seats{priority_level="global-default"} 1.0' in text
    for family in ("apiserver_flowcontrol_current_inflight_requests", "apiserver_flowcontrol_current_inqueue_requests",
                   "apiserver_flowcontrol_request_wait_duration_seconds_bucket"):
        assert f'{family}{{' in text, family
    assert ('apiserver_flowcontrol_dispatched_requests_total{flow_schema="global-default",'
            'priority_level="global-default"}') in text
    assert ('apiserver_flowcontrol_rejected_requests_total{flow_schema="global-default",'
            'priority_level="global-default",reason="queue-full"}') in text


def test_disabled_priority_and_fairness_uses_the_inflight_limits() -> None:
    root = tempfile.mkdtemp(prefix="megaplane-apf-off-")
    c = start_cluster(root, ["--enable-priority-and-fairness=false", "--max-requests-inflight", "1"])
    try:
        for i in range(CONFIGMAPS):
            _request(c, "POST", "/api/v1/namespaces/default/configmaps",
                     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}})
        answers = _saturate(c)
        assert {status for status, _, _ in answers} <= {200, 429}
        status, body = _request(c, "GET", "/metrics")
        assert "apiserver_flowcontrol_dispatched_requests_total" not in body.decode()
        status, _ = _request(c, "GET", "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas")
        assert status == 200
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)
