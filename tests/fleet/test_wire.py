"""megaplane.fleet.wire: the renewal PUT is byte for byte what HTTPTransport sends; pipelined answers in order;
a connection lost with requests unanswered fails each of them once."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Tuple

from megaplane.client import ConnectionFailedError, HTTPTransport
from megaplane.fleet.config import FleetConfig
from megaplane.fleet.heartbeats import LEASE_NAMESPACE, LEASES, Heartbeats
from megaplane.fleet.ipam import PodAddresses
from megaplane.fleet.nodes import NodeFactory
from megaplane.fleet.wire import Channel, Endpoint

UID = b"0b6c1f3e-54a1-4c5e-9a56-0f1d8c1b2a3f"


class Server:
    """A socket server that records each request and answers the first `answer` of them (in order)."""

    def __init__(self, answer: int = 1 << 30, status: int = 200) -> None:
        self.requests: List[bytes] = []
        self.answer = answer
        self.status = status
        self.buffer = b""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:
                head, _, rest = self.buffer.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
                if len(rest) < length:
                    break
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                self.buffer = rest[length:]
                if len(self.requests) > self.answer:
                    writer.close()
                    return
                n = len(self.requests)
                body = b'{"kind":"Lease","metadata":{"resourceVersion":"%d"}}' % (100 + n)
                if self.status != 200:
                    body = b'{"kind":"Status","code":%d,"reason":"Conflict"}' % self.status
                writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (self.status, len(body), body))
        writer.close()


async def _serve(server: Server) -> Tuple[asyncio.AbstractServer, str]:
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    return srv, f"http://127.0.0.1:{port}"


def _heartbeats(url: str, token: str = "") -> Heartbeats:
    config = FleetConfig(nodes=4)
    beats = Heartbeats(HTTPTransport(url, token=token, qps=0), config, NodeFactory(config, PodAddresses(config)),
                       endpoint=Endpoint(url, token=token))
    for i in range(4):
        beats.node_uid[i] = UID
    return beats


def test_the_pipelined_put_is_the_bytes_http_transport_sends() -> None:
    async def main() -> Tuple[bytes, bytes]:
        server = Server()
        srv, url = await _serve(server)
        beats = _heartbeats(url, token="secret")
        body = beats.lease_body(2, 1700000000.123456, b"42")
        await beats.transport.update(LEASES, LEASE_NAMESPACE, beats.names[2], body)
        answers: List[Any] = []
        channel = Channel(beats.channel.endpoint, 1, 4, on_answer=lambda *a: answers.append(a),  # type: ignore
                          on_failure=lambda *a: answers.append(a))
        channel.queue("x", beats.lease_request(2, 1700000000.123456, b"42"))
        channel.flush()
        while not answers:
            await asyncio.sleep(0.01)
        await channel.close()
        await beats.transport.close()
        srv.close()
        return server.requests[0], server.requests[1]

    sent_by_client, sent_by_wire = asyncio.run(main())
    assert sent_by_wire == sent_by_client
    assert sent_by_wire.startswith(b"PUT /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-2 HTTP/1.1")
    assert b"Authorization: Bearer secret\r\n" in sent_by_wire
    assert b'"resourceVersion":"42"' in sent_by_wire and b'"renewTime":"2023-11-14T22:13:20.123456Z"' in sent_by_wire
    assert b'"uid":"' + UID + b'"' in sent_by_wire


def test_pipelined_answers_come_back_in_order_on_few_connections() -> None:
    async def main() -> Tuple[List[Any], Channel, Server]:
        server = Server()
        srv, url = await _serve(server)
        answers: List[Any] = []
        channel = Channel(Endpoint(url), 2, 4, on_answer=lambda item, status, headers, body: answers.append(
            (item, status, body)), on_failure=lambda item, error: answers.append((item, error)), read_delay=0.005)
        beats = _heartbeats(url)
        for i in range(8):
            channel.queue(i, beats.lease_request(i % 4, 1700000000.0, b"7"))
        channel.flush()
        while len(answers) < 8:
            await asyncio.sleep(0.01)
        await channel.close()
        await beats.transport.close()
        srv.close()
        return answers, channel, server

    answers, channel, server = asyncio.run(main())
    # Each connection takes `depth` requests in queue order, and answers come back in its order.
    assert [a[0] for a in answers if a[0] < 4] == [0, 1, 2, 3]
    assert [a[0] for a in answers if a[0] >= 4] == [4, 5, 6, 7]
    assert all(a[1] == 200 for a in answers) and len(server.requests) == 8
    assert channel.opened <= 2 and channel.requests == 8 and channel.writes < 8


def test_a_lost_connection_fails_each_unanswered_request_once() -> None:
    async def main() -> Tuple[List[int], Dict[int, Any]]:
        server = Server(answer=2)
        srv, url = await _serve(server)
        answered: List[int] = []
        failed: Dict[int, Any] = {}
        channel = Channel(Endpoint(url), 1, 5, on_answer=lambda item, *rest: answered.append(item),
                          on_failure=lambda item, error: failed.__setitem__(item, error))
        beats = _heartbeats(url)
        for i in range(5):
            channel.queue(i, beats.lease_request(i % 4, 1700000000.0, b"7"))
        channel.flush()
        while len(answered) + len(failed) < 5:
            await asyncio.sleep(0.01)
        await channel.close()
        await beats.transport.close()
        srv.close()
        return answered, failed

    answered, failed = asyncio.run(main())
    assert answered == [0, 1]
    assert sorted(failed) == [2, 3, 4] and all(isinstance(e, ConnectionFailedError) for e in failed.values())


def test_a_conflict_is_counted_and_handed_to_the_workers_with_a_fresh_read() -> None:
    async def main() -> Heartbeats:
        server = Server(status=409)
        srv, url = await _serve(server)
        beats = _heartbeats(url)
        beats._running = True
        beats.lease_rv[1] = b"5"
        assert beats.channel is not None
        beats.channel.queue((1, 0.0, 0.0), beats.lease_request(1, 1700000000.0, b"5"))
        beats.channel.flush()
        while not beats._retry:
            await asyncio.sleep(0.01)
        beats._running = False
        await beats.channel.close()
        await beats.transport.close()
        srv.close()
        return beats

    beats = asyncio.run(main())
    assert beats.renew_conflicts == 1 and beats.renew_failures == 0
    assert beats.lease_rv[1] == b"" and list(beats._retry) == [(1, 0.0, 0.0, 1, 0.0)]
