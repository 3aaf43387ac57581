"""Raw etcd v3 gRPC requests, good and bad, sent to megaplane and to etcd 3.4: same answers.

Every case sends identical request bytes to both servers and compares the
gRPC status code and message (or the normalised response). Bad input must
change nothing: the revision is checked before and after.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from megaplane.etcd.pb import etcd_pb2 as pb

RESPONSES = {
    "/etcdserverpb.KV/Range": pb.RangeResponse,
    "/etcdserverpb.KV/Put": pb.PutResponse,
    "/etcdserverpb.KV/DeleteRange": pb.DeleteRangeResponse,
    "/etcdserverpb.KV/Txn": pb.TxnResponse,
    "/etcdserverpb.KV/Compact": pb.CompactionResponse,
    "/etcdserverpb.Lease/LeaseGrant": pb.LeaseGrantResponse,
    "/etcdserverpb.Lease/LeaseRevoke": pb.LeaseRevokeResponse,
    "/etcdserverpb.Lease/LeaseTimeToLive": pb.LeaseTimeToLiveResponse,
    "/etcdserverpb.Maintenance/Status": pb.StatusResponse,
}


class Client:
    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.insecure_channel(
            endpoint, options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        )

    def call(self, method: str, request, raw: bool = False):
        """(status code name, details, response or None)."""
        fn = self.channel.unary_unary(
            method,
            request_serializer=(lambda b: b) if raw else type(request).SerializeToString,
            response_deserializer=RESPONSES.get(method, pb.RangeResponse).FromString,
        )
        try:
            return "OK", "", fn(request, timeout=10)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details(), None

    def revision(self) -> int:
        return self.call("/etcdserverpb.KV/Range", pb.RangeRequest(key=b"x"))[2].header.revision


@pytest.fixture(scope="module")
def clients(servers):
    cs = {name: Client(s.endpoint) for name, s in servers.items()}
    yield cs
    for c in cs.values():
        c.channel.close()


def put(key: bytes, value: bytes = b"v", **kw) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, **kw))


BAD = [
    ("range empty key", "/etcdserverpb.KV/Range", pb.RangeRequest(key=b"")),
    ("put empty key", "/etcdserverpb.KV/Put", pb.PutRequest(key=b"", value=b"v")),
    ("delete empty key", "/etcdserverpb.KV/DeleteRange", pb.DeleteRangeRequest(key=b"")),
    ("ignore_value with value", "/etcdserverpb.KV/Put", pb.PutRequest(key=b"a", value=b"v", ignore_value=True)),
    ("ignore_lease with lease", "/etcdserverpb.KV/Put", pb.PutRequest(key=b"a", lease=5, ignore_lease=True)),
    ("ignore_value missing key", "/etcdserverpb.KV/Put", pb.PutRequest(key=b"missing", ignore_value=True)),
    ("unknown lease", "/etcdserverpb.KV/Put", pb.PutRequest(key=b"a", value=b"v", lease=12345)),
    ("future revision", "/etcdserverpb.KV/Range", pb.RangeRequest(key=b"a", revision=1 << 40)),
    ("txn duplicate put", "/etcdserverpb.KV/Txn", pb.TxnRequest(success=[put(b"k"), put(b"k")])),
    (
        "txn put inside deleted range",
        "/etcdserverpb.KV/Txn",
        pb.TxnRequest(success=[pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=b"a", range_end=b"z")), put(b"k")]),
    ),
    ("txn empty op", "/etcdserverpb.KV/Txn", pb.TxnRequest(success=[pb.RequestOp()])),
    ("txn too many ops", "/etcdserverpb.KV/Txn", pb.TxnRequest(success=[put(b"k%d" % i) for i in range(129)])),
    ("txn empty compare key", "/etcdserverpb.KV/Txn", pb.TxnRequest(compare=[pb.Compare(key=b"")], success=[put(b"k")])),
    ("txn unknown lease", "/etcdserverpb.KV/Txn", pb.TxnRequest(success=[put(b"ok"), put(b"k", lease=999)])),
    (
        "txn range future revision",
        "/etcdserverpb.KV/Txn",
        pb.TxnRequest(success=[put(b"ok"), pb.RequestOp(request_range=pb.RangeRequest(key=b"a", revision=1 << 40))]),
    ),
    ("compact future", "/etcdserverpb.KV/Compact", pb.CompactionRequest(revision=1 << 40)),
    ("value over max-request-bytes", "/etcdserverpb.KV/Put", pb.PutRequest(key=b"big", value=b"x" * 1_600_000)),
    ("revoke unknown lease", "/etcdserverpb.Lease/LeaseRevoke", pb.LeaseRevokeRequest(ID=4242)),
    ("lease ttl too large", "/etcdserverpb.Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=9_000_000_001)),
]


@pytest.mark.parametrize("name,method,request_", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_etcds_status_and_change_nothing(clients, name, method, request_):
    before = {n: c.revision() for n, c in clients.items()}
    got = {n: c.call(method, request_)[:2] for n, c in clients.items()}
    assert got["megaplane"] == got["etcd"], name
    assert got["megaplane"][0] != "OK"
    assert {n: c.revision() for n, c in clients.items()} == before


@pytest.mark.parametrize(
    "name,payload",
    [("truncated protobuf", b"\x0a\xff\x01abc"), ("wrong wire type", b"\x0d\x00\x00\x00")],
)
def test_malformed_requests_are_refused_without_a_crash(clients, name, payload):
    codes = {n: c.call("/etcdserverpb.KV/Put", payload, raw=True)[0] for n, c in clients.items()}
    # grpc-go and grpcio word the message differently; the code is the contract.
    assert codes["megaplane"] == codes["etcd"] == "INTERNAL"
    assert clients["megaplane"].revision() > 0, "the server is still up"


def test_oversized_message_is_refused_by_grpc(clients):
    req = pb.PutRequest(key=b"huge", value=b"x" * (3 << 20))
    codes = {n: c.call("/etcdserverpb.KV/Put", req)[0] for n, c in clients.items()}
    assert codes["megaplane"] == codes["etcd"] == "RESOURCE_EXHAUSTED"


def test_unknown_method(clients):
    codes = {n: c.call("/etcdserverpb.KV/Frobnicate", pb.RangeRequest(key=b"a"))[0] for n, c in clients.items()}
    assert codes["megaplane"] == codes["etcd"] == "UNIMPLEMENTED"


def test_lease_edges_match(clients):
    for c in clients.values():
        assert c.call("/etcdserverpb.Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=60, ID=77))[0] == "OK"
    dup = {n: c.call("/etcdserverpb.Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=60, ID=77))[:2] for n, c in clients.items()}
    assert dup["megaplane"] == dup["etcd"] == ("FAILED_PRECONDITION", "etcdserver: lease already exists")
    ttl = {n: c.call("/etcdserverpb.Lease/LeaseTimeToLive", pb.LeaseTimeToLiveRequest(ID=4243)) for n, c in clients.items()}
    assert ttl["megaplane"][2].TTL == ttl["etcd"][2].TTL == -1
    short = {n: c.call("/etcdserverpb.Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=1))[2].TTL for n, c in clients.items()}
    assert short["megaplane"] == short["etcd"], "TTLs below the minimum are raised alike"


def test_compacted_and_negative_revisions_match(clients):
    results = {}
    for n, c in clients.items():
        c.call("/etcdserverpb.KV/Put", pb.PutRequest(key=b"cmp", value=b"1"))
        c.call("/etcdserverpb.KV/Put", pb.PutRequest(key=b"cmp", value=b"2"))
        rev = c.revision()
        c.call("/etcdserverpb.KV/Compact", pb.CompactionRequest(revision=rev - 1))
        results[n] = (
            c.call("/etcdserverpb.KV/Range", pb.RangeRequest(key=b"cmp", revision=rev - 2))[:2],
            c.call("/etcdserverpb.KV/Compact", pb.CompactionRequest(revision=rev - 1))[:2],
            c.call("/etcdserverpb.KV/Range", pb.RangeRequest(key=b"cmp", revision=-3))[2].kvs[0].value,
        )
    assert results["megaplane"] == results["etcd"]
    assert results["megaplane"][0] == ("OUT_OF_RANGE", "etcdserver: mvcc: required revision has been compacted")


def watch_session(endpoint: str, requests, expect: int, timeout: float = 5.0):
    """Send watch requests on one stream; collect `expect` responses (normalised)."""
    sent = threading.Event()

    def gen():
        for r in requests:
            yield r
        sent.set()
        time.sleep(timeout)

    with grpc.insecure_channel(endpoint) as ch:
        call = ch.stream_stream(
            "/etcdserverpb.Watch/Watch",
            request_serializer=pb.WatchRequest.SerializeToString,
            response_deserializer=pb.WatchResponse.FromString,
        )(gen(), timeout=timeout)
        out = []
        try:
            for resp in call:
                out.append(
                    (resp.watch_id, resp.created, resp.canceled, resp.compact_revision, resp.cancel_reason,
                     [(e.type, e.kv.key, e.kv.value, e.prev_kv.value) for e in resp.events])
                )
                if len(out) >= expect:
                    break
        except grpc.RpcError:
            pass
        call.cancel()
    return out


def create(key: bytes, range_end: bytes = b"", **kw) -> pb.WatchRequest:
    return pb.WatchRequest(create_request=pb.WatchCreateRequest(key=key, range_end=range_end, **kw))


def test_watch_control_responses_match(servers, clients):
    for c in clients.values():
        c.call("/etcdserverpb.KV/Put", pb.PutRequest(key=b"/wc/a", value=b"1"))
        c.call("/etcdserverpb.KV/Put", pb.PutRequest(key=b"/wc/a", value=b"2"))
    start = clients["etcd"].revision() - 1
    requests = [
        create(b"/wc/z", b"/wc/a"),  # empty range
        create(b"/wc/", b"/wc0", start_revision=start, prev_kv=True, watch_id=7),
        create(b"/wc/", b"/wc0", watch_id=7),  # duplicate id
        pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=999)),  # unknown: no answer
    ]
    got = {n: watch_session(s.endpoint, requests, expect=4) for n, s in servers.items()}
    # Control responses and a watcher's events are separate streams in etcd
    # (ctrlStream vs. the watch channel); only each one's own order is fixed.
    def split(responses):
        control = [r for r in responses if not r[5]]
        events = [r for r in responses if r[5]]
        return control, events

    assert split(got["megaplane"]) == split(got["etcd"])
    assert got["megaplane"][0][:3] == (-1, True, True)
    cancel = [create(b"/wc/a"), pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=0))]
    got = {n: watch_session(s.endpoint, cancel, expect=2) for n, s in servers.items()}
    assert got["megaplane"] == got["etcd"] == [(0, True, False, 0, "", []), (0, False, True, 0, "", [])]


def test_watch_compacted_start_is_cancelled_with_compact_revision(servers, clients):
    for c in clients.values():
        for i in range(3):
            c.call("/etcdserverpb.KV/Put", pb.PutRequest(key=b"/wk", value=b"%d" % i))
        c.call("/etcdserverpb.KV/Compact", pb.CompactionRequest(revision=c.revision()))
    requests = [create(b"/wk", start_revision=2)]
    got = {n: watch_session(s.endpoint, requests, expect=2) for n, s in servers.items()}
    assert got["megaplane"] == got["etcd"]
    assert got["megaplane"][1][2] is True and got["megaplane"][1][3] > 0


def test_progress_request_is_answered_with_watch_id_minus_1(servers):
    for name, s in servers.items():
        got = watch_session(s.endpoint, [create(b"/prog"), pb.WatchRequest(progress_request=pb.WatchProgressRequest())], expect=2)
        assert got[0][:2] == (0, True), name
        assert got[1][0] == -1 and got[1][5] == [], name
