"""A client of the etcd v3 API (a real etcd cluster or `megaplane store`): KV, leases, compaction, watches.

The calls kube-apiserver's etcd3 store makes, with the request shapes of
pkg/storage/etcd3/store.go built here so that callers never touch etcd's
protobufs (only megaplane.etcd imports them). Two transports carry them
(`ClientConfig.transport`): megaplane's own HTTP/2 gRPC client
(megaplane.etcd.grpc.client, the default: about half grpc.aio's CPU per
call and no I/O thread, measured by benchmarks/etcd_backend.py) or
grpcio's asyncio API (`grpc.aio`).

- `compare_and_put`: Txn(MOD(key) == expected; Put [+ a keys-only Range
  for the new create revision]; else Range(key)). expected 0 is a create.
- `compare_and_delete`: Txn(MOD(key) == expected; DeleteRange(prev_kv);
  else Range(key)).
- `compact_rev_key`: kube-apiserver's compaction election
  (Txn(VERSION("compact_rev_key") == t; Put(rev); else Range)), then `compact`.
- `WatchSession`: many watches on one bidirectional Watch stream, as
  clientv3 shares one per context; creates are sent one at a time and
  matched to their `created` responses in order; a progress request is
  answered with watch id -1 for every watch on the stream. When the
  stream breaks (a member died, the cluster restarted), the session
  reconnects with backoff and re-creates every watch from the revision
  after the last one it delivered, so subscribers see neither a gap nor a
  duplicate; a watch whose next revision was compacted meanwhile is
  cancelled with its compact revision, as etcd does.

Endpoints: one channel per member URL; a call that cannot reach its member
moves to the next one. Reads are retried on any member; writes only when
the request never left (the connection could not be made), because a
retried compare-and-swap that had already applied would answer wrong.
Every call has a deadline. etcd's errors arrive as `EtcdError` subclasses
carrying etcd's own message; callers translate them once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Protocol, Sequence, Tuple
from urllib.parse import urlparse

import grpc
import grpc.aio

from .grpc.client import CallError
from .grpc.client import Channel as GrpcChannel
from .grpc.client import Stream as GrpcStream
from .pb import etcd_pb2 as pb
from .urls import grpc_address

__all__ = [
    "ClientConfig",
    "EtcdClient",
    "EtcdError",
    "EtcdUnavailable",
    "EtcdTimeout",
    "EtcdCompacted",
    "EtcdFutureRevision",
    "EtcdRequestTooLarge",
    "EtcdLeaseNotFound",
    "WatchSession",
    "Subscription",
    "KeyValue",
    "Event",
    "COMPACT_REV_KEY",
    "save_snapshot_from_endpoint",
    "parse_version",
    "TRANSPORTS",
]

log = logging.getLogger("megaplane.etcd.client")

KeyValue = pb.KeyValue
Event = pb.Event
PUT = pb.Event.PUT
DELETE = pb.Event.DELETE

#: kube-apiserver's compaction election key (pkg/storage/etcd3/compact.go), outside --etcd-prefix.
COMPACT_REV_KEY = b"compact_rev_key"

# etcd's error texts (api/v3rpc/rpctypes/error.go) that decide the kind.
_COMPACTED = "required revision has been compacted"
_FUTURE = "required revision is a future revision"
_TOO_LARGE = "request is too large"
_LEASE_NOT_FOUND = "requested lease not found"
_TIMED_OUT = ("request timed out", "timed out")

# A progress request unanswered this long (seconds) may be asked again.
_PROGRESS_RETRY = 5.0
# Reconnect backoff (clientv3 uses 50 ms doubling to about 1 s, jittered, for its balancer).
_BACKOFF_START = 0.05
_BACKOFF_MAX = 1.0


class EtcdError(Exception):
    """An etcd call failed: `code` is the gRPC status name, `message` etcd's (or the transport's) text."""

    def __init__(self, message: str, code: str = "UNKNOWN", endpoint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.endpoint = endpoint


class EtcdUnavailable(EtcdError):
    """No member answered: connection refused or lost, no leader, leader changed."""


class EtcdTimeout(EtcdError):
    """The call's deadline passed, or etcd timed the request out (it may still have applied)."""


class EtcdCompacted(EtcdError):
    """The revision asked for is below etcd's compaction floor."""


class EtcdFutureRevision(EtcdError):
    """The revision asked for is above etcd's current revision."""


class EtcdRequestTooLarge(EtcdError):
    """The request exceeds etcd's --max-request-bytes."""


class EtcdLeaseNotFound(EtcdError):
    """The lease a put named does not exist (expired or revoked)."""


class _RpcFailure(Exception):
    """A failed call, whichever transport made it: gRPC's status name and its details."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


def _error(e: _RpcFailure, endpoint: str) -> EtcdError:
    name = e.code
    text = e.details or name
    if _COMPACTED in text:
        return EtcdCompacted(text, name, endpoint)
    if _FUTURE in text:
        return EtcdFutureRevision(text, name, endpoint)
    if _TOO_LARGE in text or "larger than max" in text:  # etcd's --max-request-bytes, or gRPC's message limit
        return EtcdRequestTooLarge(text, name, endpoint)
    if "too many requests" in text:  # etcd sheds load (ErrTooManyRequests): retry later
        return EtcdUnavailable(text, name, endpoint)
    if _LEASE_NOT_FOUND in text:
        return EtcdLeaseNotFound(text, name, endpoint)
    if name == "DEADLINE_EXCEEDED" or any(t in text for t in _TIMED_OUT):
        return EtcdTimeout(text, name, endpoint)
    if name in ("UNAVAILABLE", "CANCELLED"):
        return EtcdUnavailable(text, name, endpoint)
    return EtcdError(text, name, endpoint)


def _never_sent(e: _RpcFailure) -> bool:
    """True when the call failed before any byte left: the member could not be connected to at all."""
    if e.code != "UNAVAILABLE":
        return False
    text = e.details.lower()
    return "failed to connect" in text or "connection refused" in text or "connect failed" in text


def parse_version(version: str) -> Tuple[int, int, int]:
    """(3, 5, 13) from "3.5.13" (missing or odd parts are 0)."""
    parts: List[int] = []
    for p in version.split(".")[:3]:
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


@dataclass
class ClientConfig:
    """How to reach one etcd cluster: kube-apiserver's --etcd-servers and --etcd-*file flags."""

    #: Client URLs of the cluster's members (http:// or https://).
    endpoints: List[str]
    #: --etcd-cafile, --etcd-certfile, --etcd-keyfile (https endpoints).
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    #: Deadline of every unary call (seconds): a member that neither answers nor fails gives EtcdTimeout then.
    request_timeout: float = 10.0
    #: gRPC keepalive (kube-apiserver's DialKeepAliveTime/Timeout: 30 s / 10 s).
    keepalive_time: float = 30.0
    keepalive_timeout: float = 10.0
    #: Largest message received (etcd's default --max-request-bytes is 1.5 MiB, lists are larger).
    max_receive_bytes: int = 2**31 - 1
    extra_options: List[Tuple[str, Any]] = field(default_factory=list)
    #: "megaplane" (megaplane.etcd.grpc.client: about half grpc.aio's CPU per call, measured by
    #: benchmarks/etcd_backend.py) or "grpcio" (grpc.aio); see TRANSPORTS.
    transport: str = "megaplane"


# method -> (gRPC path, request type, response type): the calls this client makes.
_METHODS: Dict[str, Tuple[str, Any, Any]] = {
    "range": ("/etcdserverpb.KV/Range", pb.RangeRequest, pb.RangeResponse),
    "txn": ("/etcdserverpb.KV/Txn", pb.TxnRequest, pb.TxnResponse),
    "put": ("/etcdserverpb.KV/Put", pb.PutRequest, pb.PutResponse),
    "delete_range": ("/etcdserverpb.KV/DeleteRange", pb.DeleteRangeRequest, pb.DeleteRangeResponse),
    "compact": ("/etcdserverpb.KV/Compact", pb.CompactionRequest, pb.CompactionResponse),
    "lease_grant": ("/etcdserverpb.Lease/LeaseGrant", pb.LeaseGrantRequest, pb.LeaseGrantResponse),
    "lease_revoke": ("/etcdserverpb.Lease/LeaseRevoke", pb.LeaseRevokeRequest, pb.LeaseRevokeResponse),
    "status": ("/etcdserverpb.Maintenance/Status", pb.StatusRequest, pb.StatusResponse),
}
_WATCH = "/etcdserverpb.Watch/Watch"

#: `ClientConfig.transport` values: grpcio's asyncio API, or megaplane's own HTTP/2 client (megaplane.etcd.grpc).
TRANSPORTS = ("grpcio", "megaplane")


class _WatchCall(Protocol):
    """A Watch stream, whichever transport carries it."""

    async def write(self, request: pb.WatchRequest) -> None: ...

    def __aiter__(self) -> AsyncIterator[pb.WatchResponse]: ...

    def cancel(self) -> None: ...


class _Member:
    """One endpoint: its channel and the calls made to it (`unary`, `watch`), over grpcio's asyncio API."""

    def __init__(self, url: str, config: ClientConfig) -> None:
        self.url = url
        options: List[Tuple[str, Any]] = [
            ("grpc.max_receive_message_length", config.max_receive_bytes),
            ("grpc.max_send_message_length", config.max_receive_bytes),
            ("grpc.keepalive_time_ms", int(config.keepalive_time * 1000)),
            ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout * 1000)),
            # Reconnect soon after a member comes back (gRPC's default backoff grows to 120 s).
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            ("grpc.enable_retries", 0),
            *config.extra_options,
        ]
        scheme = urlparse(url).scheme if "://" in url else "http"
        if scheme == "https":
            u = urlparse(url)
            address = f"{u.hostname}:{u.port or 2379}"
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(config.ca_file),
                private_key=_read(config.key_file),
                certificate_chain=_read(config.cert_file),
            )
            self.channel = grpc.aio.secure_channel(address, creds, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(grpc_address(url), options=options)
        self._stubs = {
            name: self.channel.unary_unary(path, req.SerializeToString, resp.FromString)
            for name, (path, req, resp) in _METHODS.items()
        }
        self._watch = self.channel.stream_stream(_WATCH, pb.WatchRequest.SerializeToString,
                                                 pb.WatchResponse.FromString)

    def __repr__(self) -> str:
        return f"<etcd member {self.url}>"

    async def unary(self, method: str, request: Any, timeout: float) -> Any:
        try:
            return await self._stubs[method](request, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            raise _RpcFailure(e.code().name, e.details() or "") from None

    def watch(self) -> _WatchCall:
        return _GrpcioWatch(self._watch())

    async def close(self) -> None:
        await self.channel.close()


class _GrpcioWatch:
    def __init__(self, call: Any) -> None:
        self._call = call

    async def write(self, request: pb.WatchRequest) -> None:
        try:
            await self._call.write(request)
        except grpc.aio.AioRpcError as e:
            raise _RpcFailure(e.code().name, e.details() or "") from None
        except asyncio.InvalidStateError:
            raise _RpcFailure("UNAVAILABLE", "the watch stream is closed") from None

    def __aiter__(self) -> AsyncIterator[pb.WatchResponse]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[pb.WatchResponse]:
        try:
            async for resp in self._call:
                yield resp
        except grpc.aio.AioRpcError as e:
            raise _RpcFailure(e.code().name, e.details() or "") from None

    def cancel(self) -> None:
        self._call.cancel()


class _H2Member:
    """One endpoint over megaplane's own HTTP/2 gRPC client (megaplane.etcd.grpc.client)."""

    def __init__(self, url: str, config: ClientConfig) -> None:
        self.url = url
        u = urlparse(url if "://" in url else "http://" + url)
        context = None
        if u.scheme == "https":
            context = ssl.create_default_context(cafile=config.ca_file or None)
            if config.cert_file:
                context.load_cert_chain(config.cert_file, config.key_file or None)
            context.set_alpn_protocols(["h2"])
        self.channel = GrpcChannel(u.hostname or "127.0.0.1", u.port or 2379, ssl=context,
                                   keepalive=config.keepalive_time, keepalive_timeout=config.keepalive_timeout)
        self._paths = {name: (path.encode(), resp.FromString) for name, (path, _, resp) in _METHODS.items()}

    def __repr__(self) -> str:
        return f"<etcd member {self.url} (h2)>"

    async def unary(self, method: str, request: Any, timeout: float) -> Any:
        path, decode = self._paths[method]
        try:
            return decode(await self.channel.unary(path, request.SerializeToString(), timeout))
        except CallError as e:
            raise _RpcFailure(e.code, e.details) from None

    def watch(self) -> _WatchCall:
        return _H2Watch(self.channel.stream(_WATCH.encode()))

    async def close(self) -> None:
        await self.channel.close()


class _H2Watch:
    def __init__(self, stream: GrpcStream) -> None:
        self._stream = stream

    async def write(self, request: pb.WatchRequest) -> None:
        try:
            await self._stream.write(request.SerializeToString())
        except CallError as e:
            raise _RpcFailure(e.code, e.details) from None

    def __aiter__(self) -> AsyncIterator[pb.WatchResponse]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[pb.WatchResponse]:
        decode = pb.WatchResponse.FromString
        try:
            async for data in self._stream:
                yield decode(data)
        except CallError as e:
            raise _RpcFailure(e.code, e.details) from None

    def cancel(self) -> None:
        self._stream.cancel()


def _read(path: str) -> Optional[bytes]:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


class EtcdClient:
    """The calls kube-apiserver's etcd3 store makes, on one cluster, with failover across its members."""

    def __init__(self, config: ClientConfig) -> None:
        if not config.endpoints:
            raise ValueError("an etcd client needs at least one endpoint")
        if config.transport not in TRANSPORTS:
            raise ValueError(f"unknown etcd client transport {config.transport!r} (one of {', '.join(TRANSPORTS)})")
        self.config = config
        # Channels are opened on first use, on the loop that uses them (grpc.aio binds a channel to its loop).
        self._members: Optional[List[_Member]] = None
        self._current = 0
        self.timeout = config.request_timeout
        self._watch: Optional[WatchSession] = None
        #: The newest revision any response header carried (what this client knows etcd has reached).
        self.seen_revision = 0
        self.closed = False

    def __repr__(self) -> str:
        return f"<EtcdClient {','.join(self.config.endpoints)} current={self.config.endpoints[self._current]}>"

    @property
    def members(self) -> List[Any]:
        if self._members is None:
            kind = _H2Member if self.config.transport == "megaplane" else _Member
            self._members = [kind(url, self.config) for url in self.config.endpoints]
        return self._members

    @property
    def member(self) -> Any:
        return self.members[self._current]

    def failover(self, from_member: Any) -> None:
        """Move on from `from_member` (unless another caller already did)."""
        if self.members[self._current] is from_member and len(self.members) > 1:
            self._current = (self._current + 1) % len(self.members)
            log.warning("etcd member %s unreachable; using %s", from_member.url, self.member.url)

    async def _call(self, method: str, request: Any, *, idempotent: bool, timeout: Optional[float] = None) -> Any:
        last: Optional[_RpcFailure] = None
        last_member = self.member
        for _ in range(len(self.members)):
            m = self.member
            last_member = m
            try:
                resp = await m.unary(method, request, timeout or self.timeout)
            except _RpcFailure as e:
                last = e
                if e.code == "UNAVAILABLE" and (idempotent or _never_sent(e)):
                    self.failover(m)
                    continue
                raise _error(e, m.url) from None
            rev = resp.header.revision
            if rev > self.seen_revision:
                self.seen_revision = rev
            return resp
        assert last is not None
        raise _error(last, last_member.url) from None

    # -- KV ------------------------------------------------------------------------------

    async def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        revision: int = 0,
        limit: int = 0,
        count_only: bool = False,
        keys_only: bool = False,
        serializable: bool = False,
    ) -> pb.RangeResponse:
        req = pb.RangeRequest(key=key, range_end=range_end, revision=revision, limit=limit, count_only=count_only,
                              keys_only=keys_only, serializable=serializable)
        resp: pb.RangeResponse = await self._call("range", req, idempotent=True)
        return resp

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> pb.PutResponse:
        resp: pb.PutResponse = await self._call("put", pb.PutRequest(key=key, value=value, lease=lease),
                                                idempotent=False)
        return resp

    async def delete_range(self, key: bytes, range_end: bytes = b"") -> pb.DeleteRangeResponse:
        resp: pb.DeleteRangeResponse = await self._call(
            "delete_range", pb.DeleteRangeRequest(key=key, range_end=range_end), idempotent=False)
        return resp

    async def compare_and_put(
        self, key: bytes, expected_mod: int, value: bytes, *, lease: int = 0, else_get: bool = True
    ) -> Tuple[bool, int, Optional[pb.KeyValue]]:
        """Put `value` at `key` if its mod revision is `expected_mod` (0: absent).

        Returns (succeeded, txn revision, kv): on success the key's new state
        without its value (create revision, version, lease); on failure the
        key's current state (None when absent, or when not `else_get`).
        """
        cmp = pb.Compare(result=pb.Compare.EQUAL, target=pb.Compare.MOD, key=key, mod_revision=expected_mod)
        success = [pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, lease=lease))]
        if expected_mod:  # an update: learn the create revision without sending the value back
            success.append(pb.RequestOp(request_range=pb.RangeRequest(key=key, keys_only=True)))
        failure = [pb.RequestOp(request_range=pb.RangeRequest(key=key))] if else_get else []
        resp: pb.TxnResponse = await self._call(
            "txn", pb.TxnRequest(compare=[cmp], success=success, failure=failure), idempotent=False)
        rev = resp.header.revision
        if resp.succeeded:
            if expected_mod:
                kvs = resp.responses[1].response_range.kvs
                return True, rev, kvs[0] if kvs else None
            return True, rev, None
        if else_get:
            kvs = resp.responses[0].response_range.kvs
            return False, rev, kvs[0] if kvs else None
        return False, rev, None

    async def compare_and_delete(self, key: bytes, expected_mod: int) -> Tuple[bool, int, Optional[pb.KeyValue]]:
        """Delete `key` if its mod revision is `expected_mod`.

        Returns (succeeded, txn revision, kv): the deleted state on success,
        the current state on failure (None when absent).
        """
        cmp = pb.Compare(result=pb.Compare.EQUAL, target=pb.Compare.MOD, key=key, mod_revision=expected_mod)
        req = pb.TxnRequest(
            compare=[cmp],
            success=[pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, prev_kv=True))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key))],
        )
        resp: pb.TxnResponse = await self._call("txn", req, idempotent=False)
        rev = resp.header.revision
        if resp.succeeded:
            prev = resp.responses[0].response_delete_range.prev_kvs
            return True, rev, prev[0] if prev else None
        kvs = resp.responses[0].response_range.kvs
        return False, rev, kvs[0] if kvs else None

    async def compact(self, revision: int, *, physical: bool = False) -> int:
        resp: pb.CompactionResponse = await self._call(
            "compact", pb.CompactionRequest(revision=revision, physical=physical), idempotent=False)
        return resp.header.revision

    async def compact_rev_key(self, t: int, revision: int) -> Tuple[bool, int, int]:
        """kube-apiserver's compaction election: claim compaction slot `t` (the key's version) for `revision`.

        Returns (won, the key's version now, current revision). Only the
        winner compacts, so N API servers on one cluster compact once per interval.
        """
        cmp = pb.Compare(result=pb.Compare.EQUAL, target=pb.Compare.VERSION, key=COMPACT_REV_KEY, version=t)
        req = pb.TxnRequest(
            compare=[cmp],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=COMPACT_REV_KEY, value=str(revision).encode()))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=COMPACT_REV_KEY))],
        )
        resp: pb.TxnResponse = await self._call("txn", req, idempotent=False)
        if resp.succeeded:
            return True, t + 1, resp.header.revision
        kvs = resp.responses[0].response_range.kvs
        return False, kvs[0].version if kvs else 0, resp.header.revision

    # -- leases and maintenance ------------------------------------------------------------

    async def lease_grant(self, ttl: int) -> Tuple[int, int]:
        """A new lease: (id, granted TTL)."""
        resp: pb.LeaseGrantResponse = await self._call("lease_grant", pb.LeaseGrantRequest(TTL=ttl), idempotent=False)
        if resp.error:
            raise EtcdError(resp.error, "UNKNOWN", self.member.url)
        return resp.ID, resp.TTL

    async def lease_revoke(self, lease_id: int) -> None:
        await self._call("lease_revoke", pb.LeaseRevokeRequest(ID=lease_id), idempotent=True)

    async def status(self, timeout: Optional[float] = None) -> pb.StatusResponse:
        """Maintenance.Status of the current member (its version, leader, db size)."""
        resp: pb.StatusResponse = await self._call("status", pb.StatusRequest(), idempotent=True, timeout=timeout)
        return resp

    # -- watches and lifecycle --------------------------------------------------------------

    def watches(self) -> "WatchSession":
        """The client's one watch stream (opened on first use)."""
        if self._watch is None:
            self._watch = WatchSession(self)
        return self._watch

    async def close(self) -> None:
        self.closed = True
        if self._watch is not None:
            await self._watch.close()
        for m in self._members or []:
            await m.close()


# -- watches ---------------------------------------------------------------------------------

OnResponse = Callable[[Sequence[pb.Event], int], None]


class Subscription:
    """One watch on a `WatchSession`: a key range followed from `next_revision` on.

    Callbacks, from the session's reader task: `on_events(events, header
    revision)` per response (a revision is never split across calls),
    `on_progress(revision)` for progress notifications, `on_canceled(compact
    revision, reason)` once when etcd ends the watch (a compacted start:
    compact revision > 0). `on_disconnect()` / `on_reconnect()` when the
    stream breaks and is re-established (the watch resumes by itself).
    """

    def __init__(
        self,
        session: "WatchSession",
        key: bytes,
        range_end: bytes,
        start_revision: int,
        on_events: OnResponse,
        on_progress: Callable[[int], None],
        on_canceled: Callable[[int, str], None],
        *,
        prev_kv: bool = True,
        progress_notify: bool = True,
    ) -> None:
        self.session = session
        self.key = key
        self.range_end = range_end
        #: Where the watch (re)starts: after the last revision delivered. 0: from now.
        self.next_revision = start_revision
        self.on_events = on_events
        self.on_progress = on_progress
        self.on_canceled = on_canceled
        self.on_disconnect: Callable[[], None] = _nothing
        self.on_reconnect: Callable[[], None] = _nothing
        self.prev_kv = prev_kv
        self.progress_notify = progress_notify
        self.watch_id: Optional[int] = None
        self.canceled = False
        #: Resolved when etcd first confirms the watch (or ends it at creation).
        self.created: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return f"<Subscription {self.key!r} id={self.watch_id} next={self.next_revision} canceled={self.canceled}>"

    def create_request(self) -> pb.WatchRequest:
        return pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=self.key, range_end=self.range_end, start_revision=self.next_revision, prev_kv=self.prev_kv,
            progress_notify=self.progress_notify))

    def cancel(self) -> None:
        """Stop the watch; no callback runs afterwards. Idempotent."""
        if not self.canceled:
            self.canceled = True
            self.session._forget(self)


def _nothing() -> None:
    pass


class WatchSession:
    """Many watches on one Watch stream of one client, resumed across reconnects."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client
        self._subs: List[Subscription] = []
        self._by_id: Dict[int, Subscription] = {}
        # Creates waiting for their `created` response, in the order they were sent.
        self._creating: List[Subscription] = []
        self._queue: "asyncio.Queue[Optional[pb.WatchRequest]]" = asyncio.Queue()
        self._task: Optional["asyncio.Task[None]"] = None
        self._closed = False
        self.connected = False
        self._progress_pending = False
        self._progress_asked = 0.0
        #: Whether this member's progress notifications may be trusted as "every event up to R was sent"
        #: (etcd >= 3.5.13, as kube-apiserver checks; megaplane's store reports 3.5.17).
        self.progress_trusted = False
        self.version = ""
        #: Times the stream was re-established (a metric for tests and benchmarks).
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"<WatchSession watches={len(self._subs)} connected={self.connected} reconnects={self.reconnects}>"

    def subscribe(self, sub: Subscription) -> None:
        self._subs.append(sub)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        elif self.connected:
            self._send_create(sub)

    def request_progress(self) -> None:
        """Ask etcd for a progress notification for every watch on the stream (one outstanding at a time:
        the answer covers whoever asked meanwhile)."""
        now = asyncio.get_running_loop().time()
        if self.connected and (not self._progress_pending or now - self._progress_asked > _PROGRESS_RETRY):
            self._progress_pending = True
            self._progress_asked = now
            self._queue.put_nowait(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))

    def _send_create(self, sub: Subscription) -> None:
        self._creating.append(sub)
        # One create in flight at a time: etcd answers them in order, and so do we match them.
        if len(self._creating) == 1:
            self._queue.put_nowait(sub.create_request())

    def _forget(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        if sub.watch_id is not None and self._by_id.get(sub.watch_id) is sub:
            del self._by_id[sub.watch_id]
            if self.connected:
                self._queue.put_nowait(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=sub.watch_id)))

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def _learn_version(self) -> None:
        try:
            status = await self.client.status(timeout=min(self.client.timeout, 5.0))
        except EtcdError:
            return
        self.version = status.version
        self.progress_trusted = parse_version(status.version) >= (3, 5, 13)

    async def _run(self) -> None:
        backoff = _BACKOFF_START
        loop = asyncio.get_running_loop()
        while not self._closed:
            await self._learn_version()
            member = self.client.member
            self._queue = asyncio.Queue()
            call = member.watch()
            sender = loop.create_task(self._send(call, self._queue))
            try:
                self.connected = True
                self._progress_pending = False
                self._creating = []
                self._by_id = {}
                for sub in list(self._subs):
                    if not sub.canceled:
                        self._send_create(sub)
                got_any = False
                async for resp in call:
                    if not got_any:
                        got_any = True
                        backoff = _BACKOFF_START
                    self._dispatch(resp)
                raise EtcdUnavailable("the watch stream ended", "UNAVAILABLE", member.url)
            except asyncio.CancelledError:
                call.cancel()
                raise
            except (_RpcFailure, EtcdError) as e:
                text = e.details if isinstance(e, _RpcFailure) else e.message
                log.warning("etcd watch stream to %s broke (%s); resuming %d watches", member.url, text,
                            len(self._subs))
                if isinstance(e, _RpcFailure) and e.code == "UNAVAILABLE":
                    self.client.failover(member)
            finally:
                sender.cancel()
            self.connected = False
            for sub in list(self._subs):
                sub.on_disconnect()
            self.reconnects += 1
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _send(self, call: _WatchCall, queue: "asyncio.Queue[Optional[pb.WatchRequest]]") -> None:
        while True:
            req = await queue.get()
            if req is None:
                return
            try:
                await call.write(req)
            except _RpcFailure:
                return  # the reader sees the stream's end and reconnects

    def _dispatch(self, resp: pb.WatchResponse) -> None:
        rev = resp.header.revision
        if rev > self.client.seen_revision:
            self.client.seen_revision = rev
        if resp.created:
            sub = self._creating.pop(0) if self._creating else None
            if self._creating:
                self._queue.put_nowait(self._creating[0].create_request())
            if sub is None:
                return
            if resp.canceled or resp.watch_id < 0:
                # Refused at creation (a compacted start arrives later as a cancel on the new id).
                self._end(sub, resp.compact_revision, resp.cancel_reason or "the watch was refused")
                return
            if sub.canceled:
                self._queue.put_nowait(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=resp.watch_id)))
                return
            sub.watch_id = resp.watch_id
            self._by_id[resp.watch_id] = sub
            if sub.next_revision == 0:
                # From now on: nothing up to the creation's revision is owed.
                sub.next_revision = rev + 1
            if not sub.created.done():
                sub.created.set_result(None)
            sub.on_reconnect()
            return
        if resp.watch_id == -1 and not resp.events:  # a progress request's answer, for every watch on the stream
            self._progress_pending = False
            for sub in list(self._by_id.values()):
                self._progress(sub, rev)
            return
        sub = self._by_id.get(resp.watch_id)
        if sub is None:
            return
        if resp.canceled or resp.compact_revision:
            self._end(sub, resp.compact_revision, resp.cancel_reason)
            return
        if resp.events:
            sub.next_revision = resp.events[-1].kv.mod_revision + 1
            sub.on_events(resp.events, rev)
        else:
            self._progress(sub, rev)

    def _progress(self, sub: Subscription, rev: int) -> None:
        if sub.canceled:
            return
        if self.progress_trusted and rev >= sub.next_revision:
            sub.next_revision = rev + 1
        sub.on_progress(rev)

    def _end(self, sub: Subscription, compact_revision: int, reason: str) -> None:
        if sub.watch_id is not None:
            self._by_id.pop(sub.watch_id, None)
        if sub in self._subs:
            self._subs.remove(sub)
        if not sub.created.done():
            sub.created.set_result(None)
        if not sub.canceled:
            sub.canceled = True
            sub.on_canceled(compact_revision, reason)


def save_snapshot_from_endpoint(endpoint: str, path: str, timeout: float = 300.0) -> Dict[str, object]:
    """Stream Maintenance.Snapshot from `endpoint` into `path` (atomically, fsynced)."""
    tmp = path + ".part"
    with grpc.insecure_channel(grpc_address(endpoint.split(",")[0])) as channel:
        call = channel.unary_stream(
            "/etcdserverpb.Maintenance/Snapshot",
            request_serializer=pb.SnapshotRequest.SerializeToString,
            response_deserializer=pb.SnapshotResponse.FromString,
        )
        size = 0
        revision = 0
        with open(tmp, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # a snapshot holds every Secret: etcdctl writes it 0600 too
            for resp in call(pb.SnapshotRequest(), timeout=timeout):
                if not revision:
                    revision = resp.header.revision
                f.write(resp.blob)
                size += len(resp.blob)
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    return {"revision": revision, "totalSize": size}
