"""The HTTP/2 transport under load shapes real clients produce: big responses, many streams, cancels."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import urllib.request

import grpc
import pytest

from megaplane.etcd.pb import etcd_pb2 as pb
from tests.etcd.conftest import ETCDCTL, etcdctl, free_port, start_megaplane


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("transport")
    metrics = free_port()
    s = start_megaplane(str(root / "data"), ["--listen-metrics-urls", f"http://127.0.0.1:{metrics}"])
    s.metrics = f"http://127.0.0.1:{metrics}/metrics"
    yield s
    s.stop()


def metric(server, name: str) -> float:
    text = urllib.request.urlopen(server.metrics, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def unary(channel, method, req, resp_type):
    return channel.unary_unary(
        method, request_serializer=type(req).SerializeToString, response_deserializer=resp_type.FromString
    )(req, timeout=30)


def test_responses_larger_than_the_clients_window_arrive_whole(server):
    """2 MB of values in one Range: past the 64 KiB default window and 16 KiB frames."""
    with grpc.insecure_channel(server.endpoint, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        for i in range(200):
            unary(ch, "/etcdserverpb.KV/Put", pb.PutRequest(key=b"/big/%03d" % i, value=bytes([i % 251]) * 10_000), pb.PutResponse)
        r = unary(ch, "/etcdserverpb.KV/Range", pb.RangeRequest(key=b"/big/", range_end=b"/big0"), pb.RangeResponse)
    assert len(r.kvs) == 200
    assert all(kv.value == bytes([i % 251]) * 10_000 for i, kv in enumerate(r.kvs))
    # etcdctl (grpc-go) reads the same through its own flow control.
    out = etcdctl(server.endpoint, "get", "/big/", "--prefix", "--keys-only")
    assert out.stdout.split() == ["/big/%03d" % i for i in range(200)]


def test_many_concurrent_calls_on_one_connection(server):
    async def main():
        async with grpc.aio.insecure_channel(server.endpoint) as ch:
            put = ch.unary_unary(
                "/etcdserverpb.KV/Put", request_serializer=pb.PutRequest.SerializeToString, response_deserializer=pb.PutResponse.FromString
            )
            replies = await asyncio.gather(*(put(pb.PutRequest(key=b"/conc/%04d" % i, value=b"v")) for i in range(1000)))
        return sorted(r.header.revision for r in replies)

    revs = asyncio.run(main())
    assert len(set(revs)) == 1000 and revs[-1] - revs[0] == 999, "each put got its own revision"


def test_a_burst_of_events_reaches_a_watcher_in_order(server):
    with grpc.insecure_channel(server.endpoint) as ch:
        start = unary(ch, "/etcdserverpb.KV/Put", pb.PutRequest(key=b"/burst/start", value=b"x"), pb.PutResponse).header.revision
        for i in range(3000):
            unary(ch, "/etcdserverpb.KV/Put", pb.PutRequest(key=b"/burst/k%d" % (i % 50), value=b"%d" % i), pb.PutResponse)
        req = pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"/burst/", range_end=b"/burst0", start_revision=start))
        done = threading.Event()

        def requests():
            yield req
            done.wait(30)

        call = ch.stream_stream(
            "/etcdserverpb.Watch/Watch",
            request_serializer=pb.WatchRequest.SerializeToString,
            response_deserializer=pb.WatchResponse.FromString,
        )(requests(), timeout=30)
        revs = []
        for resp in call:
            revs.extend(e.kv.mod_revision for e in resp.events)
            if len(revs) >= 3001:
                break
        done.set()
        call.cancel()
    assert revs == list(range(start, start + 3001))


def test_cancelled_streams_release_their_watchers(server):
    before = metric(server, "etcd_debugging_mvcc_watcher_total")
    procs = [
        subprocess.Popen(
            [ETCDCTL, "--endpoints", server.endpoint, "watch", "--prefix", f"/cancel/{i}"],
            env={**os.environ, "ETCDCTL_API": "3"},
            stdout=subprocess.DEVNULL,
        )
        for i in range(5)
    ]
    deadline = time.monotonic() + 10
    while metric(server, "etcd_debugging_mvcc_watcher_total") < before + 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(server, "etcd_debugging_mvcc_watcher_total") == before + 5
    for p in procs:
        p.kill()
        p.wait()
    deadline = time.monotonic() + 10
    while metric(server, "etcd_debugging_mvcc_watcher_total") > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(server, "etcd_debugging_mvcc_watcher_total") == before


def test_compressed_requests_are_refused_cleanly(server):
    with grpc.insecure_channel(server.endpoint, compression=grpc.Compression.Gzip) as ch:
        with pytest.raises(grpc.RpcError) as info:
            unary(ch, "/etcdserverpb.KV/Range", pb.RangeRequest(key=b"a"), pb.RangeResponse)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with grpc.insecure_channel(server.endpoint) as ch:
        assert unary(ch, "/etcdserverpb.KV/Range", pb.RangeRequest(key=b"a"), pb.RangeResponse).header.revision > 0


def test_health_service(server):
    with grpc.insecure_channel(server.endpoint) as ch:
        raw = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b, response_deserializer=lambda b: b)(b"", timeout=5)
    assert raw == b"\x08\x01"  # HealthCheckResponse{status: SERVING}


def test_metrics_use_etcd_names(server):
    etcdctl(server.endpoint, "put", "/m", "1")
    assert metric(server, "etcd_mvcc_put_total") >= 1
    assert metric(server, "etcd_debugging_mvcc_current_revision") > 1
    assert metric(server, "etcd_disk_wal_write_bytes_total") >= 0
    assert json.loads(etcdctl(server.endpoint, "get", "/m", "-w", "json").stdout)["count"] == 1
