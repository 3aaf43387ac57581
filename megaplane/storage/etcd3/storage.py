"""`Etcd3Storage`: the `Storage` contract over the etcd v3 API (a real etcd cluster or `megaplane store`).

The role of k8s.io/apiserver pkg/storage/etcd3/store.go, with its keys,
txns and lease use, so `etcdctl get /registry --prefix --keys-only` looks as
kube-apiserver's would:

- keys are the registry's (``/registry/pods/ns/name``); `--etcd-prefix`
  other than /registry replaces that first segment on the wire;
- create: Txn(MOD(key) == 0; Put[lease]); update / guaranteed update:
  Txn(MOD(key) == rev; Put; else Range(key)); delete: Txn(MOD(key) == rev;
  DeleteRange(prev_kv); else Range(key)); the resourceVersion is the txn's
  header revision;
- list: Range(start .. prefix end, limit, revision), `count` the full count
  from the start key; count: a count-only Range;
- TTLs: leases shared as upstream's lease manager shares them.

etcd assigns the revision, so values are encoded with revision 0 (no
resourceVersion inside, as upstream stores them) and every object returned,
read or watched gets its resourceVersion spliced in (`versioner`).

Writes return once this storage's own watches covering the key have
delivered the write (bounded by `settle_timeout`): the watch cache fed by
them is then current when the API server answers, so a client reads its
own writes through the cache as it does on the embedded store.

With --encryption-provider-config (`transformers`) values are transformed
on their way to etcd and back from every read, conflict and watch event,
keyed (and for aesgcm authenticated) by the etcd key as upstream's
`authenticatedDataString`, so `etcdctl get` shows ``k8s:enc:...``.

etcd errors become storage errors in one place, `_translate`: unreachable
-> UnavailableError, a deadline -> RequestTimeoutError, "required revision
has been compacted" -> ExpiredError (with the compact revision, asked from
etcd), a future revision -> TooLargeResourceVersionError, "request is too
large" -> RequestTooLargeError.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple

from ...etcd.client import (
    DELETE,
    ClientConfig,
    EtcdClient,
    EtcdCompacted,
    EtcdError,
    EtcdFutureRevision,
    EtcdLeaseNotFound,
    EtcdRequestTooLarge,
    EtcdTimeout,
    EtcdUnavailable,
    Event,
    KeyValue,
    Subscription,
)
from ..errors import (
    ConflictError,
    CorruptObjError,
    ExpiredError,
    InternalError,
    InvalidKeyError,
    KeyExistsError,
    KeyNotFoundError,
    RequestTimeoutError,
    RequestTooLargeError,
    StorageError,
    TooLargeResourceVersionError,
    UnavailableError,
)
from ..interface import (
    ADDED,
    DELETED,
    MODIFIED,
    ListResult,
    OnError,
    OnEvents,
    OnProgress,
    Preconditions,
    StoredObject,
    UpdateFunc,
    ValidateDeletion,
    Value,
    WatchEvent,
)
from ..keys import prefix_end
from ..leases import LeaseManager
from ..preconditions import check_preconditions
from ..value import ResourceTransformers, TransformError
from ..versioner import set_resource_version

if TYPE_CHECKING:
    from ..interface import Storage

__all__ = ["Etcd3Storage", "Etcd3Watch", "DEFAULT_PREFIX"]

log = logging.getLogger("megaplane.storage.etcd3")

#: The registry's own key prefix (and kube-apiserver's --etcd-prefix default).
DEFAULT_PREFIX = b"/registry"


def _served(data: bytes, revision: int, key: bytes) -> bytes:
    try:
        return set_resource_version(data, revision)
    except ValueError as e:
        raise CorruptObjError(key, revision, f"the stored value is not a JSON object: {e}") from None


def _encoded(value: Value) -> bytes:
    """The bytes to store: encoders are asked with revision 0 (etcd assigns it; served bytes get it spliced)."""
    return value(0) if callable(value) else value


class _Current:
    """A key's state as read: the raw stored bytes (to spot no-op updates) and the served object."""

    __slots__ = ("raw", "obj")

    def __init__(self, raw: bytes, obj: StoredObject) -> None:
        self.raw = raw
        self.obj = obj


class Etcd3Storage:
    """`Storage` over one etcd cluster (one `EtcdClient`), on the caller's event loop."""

    def __init__(
        self,
        client: EtcdClient,
        *,
        prefix: bytes = DEFAULT_PREFIX,
        settle_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        transformers: Optional[ResourceTransformers] = None,
    ) -> None:
        self.client = client
        #: --encryption-provider-config's transformers (None: values stored as written).
        self.transformers = transformers
        prefix = prefix.rstrip(b"/")
        # Keys arrive as /registry/...; on the wire they start with --etcd-prefix instead.
        self._rewrite = prefix != DEFAULT_PREFIX
        self._wire_prefix = prefix
        self.leases = LeaseManager(clock=clock)
        self._lease_lock = asyncio.Lock()
        self.settle_timeout = settle_timeout
        #: Live watches, for settling writes (see the module docstring).
        self._watches: List[Etcd3Watch] = []
        #: The compaction floor this storage last learnt of (from its own compactions and errors).
        self.compact_revision = 0

    @classmethod
    def connect(cls, config: ClientConfig, *, prefix: bytes = DEFAULT_PREFIX) -> "Etcd3Storage":
        """A storage on a new client of the cluster at `config.endpoints` (channels connect lazily)."""
        return cls(EtcdClient(config), prefix=prefix)

    def __repr__(self) -> str:
        return f"<Etcd3Storage {self.client!r} prefix={self._wire_prefix!r} watches={len(self._watches)}>"

    async def close(self) -> None:
        for w in list(self._watches):
            w.cancel()
        await self.client.close()

    # -- keys -----------------------------------------------------------------------------

    def _wire(self, key: bytes) -> bytes:
        if not key:
            raise InvalidKeyError(key, 0, "an empty key")
        if self._rewrite and key.startswith(DEFAULT_PREFIX):
            return self._wire_prefix + key[len(DEFAULT_PREFIX):]
        return key

    def _local(self, key: bytes) -> bytes:
        if self._rewrite and key.startswith(self._wire_prefix):
            return DEFAULT_PREFIX + key[len(self._wire_prefix):]
        return key

    def _plain(self, key: bytes, value: bytes, wire: bytes) -> bytes:
        """A stored value as written (decrypted); `key` is the registry's key, `wire` etcd's."""
        tf = self.transformers
        if tf is None:
            return value
        try:
            return tf.from_storage(key, value, wire)
        except TransformError as e:
            raise InternalError(key, 0, f"unable to transform key {wire.decode(errors='replace')!r}: {e}") from None

    def _object(self, kv: KeyValue, key: Optional[bytes] = None) -> StoredObject:
        k = key if key is not None else self._local(kv.key)
        rev = kv.mod_revision
        return StoredObject(k, _served(self._plain(k, kv.value, kv.key), rev, k), rev, kv.create_revision, kv.lease)

    # -- errors ---------------------------------------------------------------------------

    async def _translate(self, err: EtcdError, key: bytes, revision: int = 0) -> StorageError:
        """The storage error for an etcd error: the one place they are translated."""
        where = f"etcd {err.endpoint}: {err.message}" if err.endpoint else err.message
        if isinstance(err, EtcdCompacted):
            return ExpiredError(key, revision, await self._compacted_floor())
        if isinstance(err, EtcdFutureRevision):
            try:
                current = await self.current_revision()
            except StorageError:
                current = self.client.seen_revision
            return TooLargeResourceVersionError(key, revision, current)
        if isinstance(err, EtcdRequestTooLarge):
            return RequestTooLargeError(key)
        if isinstance(err, EtcdTimeout):
            return RequestTimeoutError(key, revision, where)
        if isinstance(err, EtcdUnavailable):
            return UnavailableError(key, revision, where)
        return InternalError(key, revision, where)

    async def _compacted_floor(self) -> int:
        """etcd's compaction floor: a watch from revision 1 is cancelled carrying it (etcd has no other call)."""
        floor: "asyncio.Future[int]" = asyncio.get_running_loop().create_future()

        def canceled(compact_revision: int, reason: str) -> None:
            if not floor.done():
                floor.set_result(compact_revision)

        def nothing(*_: object) -> None:
            if not floor.done():
                floor.set_result(self.compact_revision)

        probe = Subscription(self.client.watches(), self._wire_prefix + b"/\0compaction-probe", b"", 1,
                             nothing, nothing, canceled, prev_kv=False, progress_notify=False)
        self.client.watches().subscribe(probe)
        try:
            found = await asyncio.wait_for(floor, min(self.client.timeout, 5.0))
        except asyncio.TimeoutError:
            found = self.compact_revision
        finally:
            probe.cancel()
        if found > self.compact_revision:
            self.compact_revision = found
        return self.compact_revision

    # -- reads ----------------------------------------------------------------------------

    async def current_revision(self, key: bytes = b"") -> int:
        try:
            # One key, not a prefix: a ranged read makes etcd count every key under it (1.9 ms at 10K keys,
            # 0.7 ms for the point read), and any read's header carries the current revision.
            resp = await self.client.range(self._wire_prefix + b"/", keys_only=True)
        except EtcdError as e:
            raise await self._translate(e, b"") from None
        return resp.header.revision

    async def _read(self, key: bytes, revision: int = 0) -> Optional[_Current]:
        try:
            resp = await self.client.range(self._wire(key), revision=revision)
        except EtcdError as e:
            raise await self._translate(e, key, revision) from None
        if not resp.kvs:
            return None
        kv = resp.kvs[0]
        return _Current(self._plain(key, kv.value, kv.key), self._object(kv, key))

    async def get(self, key: bytes, *, revision: int = 0) -> StoredObject:
        cur = await self._read(key, revision if revision > 0 else 0)
        if cur is None:
            raise KeyNotFoundError(key)
        return cur.obj

    async def list(
        self, prefix: bytes, *, revision: int = 0, limit: int = 0, start_key: bytes = b""
    ) -> ListResult:
        if not prefix:
            raise InvalidKeyError(prefix, 0, "an empty prefix")
        start = start_key if start_key > prefix else prefix
        try:
            resp = await self.client.range(self._wire(start), self._wire(prefix_end(prefix)),
                                           revision=revision, limit=limit)
        except EtcdError as e:
            raise await self._translate(e, prefix, revision) from None
        items = [self._object(kv) for kv in resp.kvs]
        rev = revision or resp.header.revision
        if resp.more and items:
            return ListResult(items, rev, True, resp.count - len(items), items[-1].key + b"\0")
        return ListResult(items, rev, False, 0, b"")

    async def count(self, prefix: bytes) -> int:
        if not prefix:
            raise InvalidKeyError(prefix, 0, "an empty prefix")
        try:
            resp = await self.client.range(self._wire(prefix), self._wire(prefix_end(prefix)), count_only=True)
        except EtcdError as e:
            raise await self._translate(e, prefix) from None
        return resp.count

    # -- writes ---------------------------------------------------------------------------

    async def _lease(self, ttl: int) -> int:
        lease = self.leases.reusable(ttl)
        if lease:
            return lease
        async with self._lease_lock:
            lease = self.leases.lease_id if self.leases.expires_at > self.leases.clock() + ttl else 0
            if lease:
                return lease
            granted = self.leases.grant_ttl(ttl)
            try:
                lease, _ = await self.client.lease_grant(granted)
            except EtcdError as e:
                raise await self._translate(e, b"") from None
            self.leases.granted(lease, granted)
            return lease

    async def _cas_put(
        self, key: bytes, expected: int, data: bytes, ttl: int
    ) -> Tuple[bool, int, Optional[KeyValue], int]:
        """One compare-and-put (expected 0: absent): (succeeded, revision, kv, lease). A vanished lease is replaced once."""
        wire = self._wire(key)
        if self.transformers is not None:
            data = self.transformers.to_storage(key, data, wire)
        lease = await self._lease(ttl) if ttl > 0 else 0
        try:
            try:
                ok, rev, kv = await self.client.compare_and_put(wire, expected, data, lease=lease)
            except EtcdLeaseNotFound:
                if not lease:
                    raise
                self.leases.forget(lease)
                lease = await self._lease(ttl)
                ok, rev, kv = await self.client.compare_and_put(wire, expected, data, lease=lease)
        except EtcdError as e:
            raise await self._translate(e, key) from None
        if ok:
            await self._settle(key, rev)
        return ok, rev, kv, lease

    async def create(self, key: bytes, value: Value, *, ttl: int = 0) -> StoredObject:
        data = _encoded(value)
        ok, rev, _, lease = await self._cas_put(key, 0, data, ttl)
        if not ok:
            raise KeyExistsError(key)
        return StoredObject(key, _served(data, rev, key), rev, rev, lease)

    async def update(
        self, key: bytes, value: Value, *, expected_revision: int, ttl: int = 0
    ) -> StoredObject:
        if expected_revision <= 0:
            raise ValueError(f"update needs the expected mod revision, got {expected_revision}")
        data = _encoded(value)
        ok, rev, kv, lease = await self._cas_put(key, expected_revision, data, ttl)
        if not ok:
            if kv is None:
                raise KeyNotFoundError(key)
            raise ConflictError(key, expected_revision, self._object(kv, key))
        create_rev = kv.create_revision if kv is not None else 0
        return StoredObject(key, _served(data, rev, key), rev, create_rev, lease)

    async def guaranteed_update(
        self,
        key: bytes,
        try_update: UpdateFunc,
        *,
        preconditions: Optional[Preconditions] = None,
        ignore_not_found: bool = False,
        cached_existing: Optional[StoredObject] = None,
        ttl: int = 0,
    ) -> StoredObject:
        # Upstream's loop: try the suggestion first; whatever fails on it is retried on a fresh read.
        current: Optional[_Current]
        if cached_existing is not None and cached_existing.key == key:
            current = _Current(b"", cached_existing)
            suggested = True
        else:
            current = await self._read(key)
            suggested = False
        while True:
            obj = current.obj if current is not None else None
            try:
                if obj is None:
                    if not ignore_not_found:
                        raise KeyNotFoundError(key)
                else:
                    check_preconditions(preconditions, obj)
                value = try_update(obj)
            except Exception:
                if suggested:
                    fresh = await self._read(key)
                    suggested = False
                    if not _same(fresh, current):
                        current = fresh
                        continue
                raise
            if value is None:
                if suggested:  # a no-op on a guess: only a fresh read can say nothing changed
                    fresh = await self._read(key)
                    suggested = False
                    if not _same(fresh, current):
                        current = fresh
                        continue
                if obj is None:
                    raise KeyNotFoundError(key)
                return obj
            data = _encoded(value)
            if current is not None and obj is not None and (data == obj.data or (current.raw and data == current.raw)):
                # Nothing to write; on a guess, only a fresh read can say the object is really this one.
                if suggested:
                    fresh = await self._read(key)
                    suggested = False
                    if not _same(fresh, current):
                        current = fresh
                        continue
                return current.obj
            ok, rev, kv, lease = await self._cas_put(key, obj.revision if obj is not None else 0, data, ttl)
            if ok:
                if obj is None:
                    return StoredObject(key, _served(data, rev, key), rev, rev, lease)
                create_rev = kv.create_revision if kv is not None else obj.create_revision
                return StoredObject(key, _served(data, rev, key), rev, create_rev, lease)
            # Lost the race (or the guess was stale): retry on what won, read by the failed txn.
            suggested = False
            current = None if kv is None else _Current(self._plain(key, kv.value, kv.key), self._object(kv, key))

    async def delete(
        self,
        key: bytes,
        *,
        preconditions: Optional[Preconditions] = None,
        expected_revision: Optional[int] = None,
        validate_deletion: Optional[ValidateDeletion] = None,
        cached_existing: Optional[StoredObject] = None,
    ) -> StoredObject:
        wire = self._wire(key)
        current: Optional[StoredObject]
        if cached_existing is not None and cached_existing.key == key:
            current, suggested = cached_existing, True
        else:
            got = await self._read(key)
            current, suggested = (got.obj if got is not None else None), False
        while True:
            try:
                if current is None:
                    raise KeyNotFoundError(key)
                if expected_revision is not None and current.revision != expected_revision:
                    raise ConflictError(key, expected_revision, current)
                check_preconditions(preconditions, current)
                if validate_deletion is not None:
                    validate_deletion(current)
            except Exception:
                if suggested:
                    fresh = await self._read(key)
                    suggested = False
                    fresh_obj = fresh.obj if fresh is not None else None
                    if (fresh_obj.revision if fresh_obj else 0) != (current.revision if current else 0):
                        current = fresh_obj
                        continue
                raise
            try:
                ok, rev, kv = await self.client.compare_and_delete(wire, current.revision)
            except EtcdError as e:
                raise await self._translate(e, key) from None
            if not ok:
                suggested = False
                current = None if kv is None else self._object(kv, key)
                continue
            await self._settle(key, rev)
            last = self._plain(key, kv.value, kv.key) if kv is not None else b""
            # The last state at the delete's revision, as upstream's Delete decodes it.
            return StoredObject(key, _served(last, rev, key) if last else current.data, rev,
                                current.create_revision)

    async def compact(self, revision: int) -> None:
        try:
            await self.client.compact(revision)
        except EtcdError as e:
            raise await self._translate(e, b"", revision) from None
        if revision > self.compact_revision:
            self.compact_revision = revision

    # -- settling writes into this storage's watches ------------------------------------

    async def _settle(self, key: bytes, revision: int) -> None:
        """Wait (bounded) until every live watch of this storage covering `key` has delivered `revision`."""
        waits: List["asyncio.Future[None]"] = []
        for w in self._watches:
            if w.live and w.covers(key):
                fut = w.delivered_future(revision)
                if fut is not None:
                    waits.append(fut)
        if not waits:
            return
        # One timer for the bound, the futures awaited as they are (no gather/wait_for wrappers: this runs per write).
        timer = asyncio.get_running_loop().call_later(self.settle_timeout, _give_up, waits, revision)
        try:
            for fut in waits:
                await fut
        finally:
            timer.cancel()

    # -- watches --------------------------------------------------------------------------

    async def watch(
        self,
        prefix: bytes,
        *,
        from_revision: int,
        on_events: OnEvents,
        on_error: OnError,
        on_progress: Optional[OnProgress] = None,
    ) -> "Etcd3Watch":
        if not prefix:
            raise InvalidKeyError(prefix, 0, "an empty prefix")
        handle = Etcd3Watch(self, prefix, max(from_revision, 0), on_events, on_error, on_progress)
        self._watches.append(handle)
        handle.start()
        if from_revision <= 0:
            # "From now on" is the revision etcd creates the watch at: every write after this returns is seen.
            try:
                await asyncio.wait_for(asyncio.shield(handle.created), self.client.timeout)
            except asyncio.TimeoutError:
                handle.cancel()
                raise UnavailableError(prefix, 0, "etcd did not confirm the watch in time") from None
        return handle


def _give_up(waits: List["asyncio.Future[None]"], revision: int) -> None:
    """The settle bound passed: let the write return (its watch will still deliver it, later)."""
    log.debug("a write at %d was not seen by its watches in time", revision)
    for f in waits:
        if not f.done():
            f.set_result(None)


def _same(a: Optional[_Current], b: Optional[_Current]) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.obj.revision == b.obj.revision


class Etcd3Watch:
    """One storage watch: an etcd watch (prev_kv, progress_notify) on the client's shared stream."""

    def __init__(
        self,
        storage: Etcd3Storage,
        prefix: bytes,
        from_revision: int,
        on_events: OnEvents,
        on_error: OnError,
        on_progress: Optional[OnProgress],
    ) -> None:
        self._storage = storage
        self.prefix = prefix
        self._on_events = on_events
        self._on_error = on_error
        self._on_progress = on_progress
        self._delivered = max(from_revision - 1, 0)
        self._done = False
        # (revision, seq, future): writers waiting for this watch to deliver a revision.
        self._waiters: List[Tuple[int, int, "asyncio.Future[None]"]] = []
        self._seq = 0
        session = storage.client.watches()
        self._sub = Subscription(
            session, storage._wire(prefix), storage._wire(prefix_end(prefix)), from_revision,
            self._events, self._progress, self._canceled)
        self._sub.on_disconnect = self._disconnected
        self._sub.on_reconnect = self._connected
        self.live = False

    def __repr__(self) -> str:
        return f"<Etcd3Watch {self.prefix!r} rev={self._delivered} done={self._done} live={self.live}>"

    def start(self) -> None:
        self._sub.session.subscribe(self._sub)

    @property
    def created(self) -> "asyncio.Future[None]":
        return self._sub.created

    @property
    def revision(self) -> int:
        return self._delivered

    @property
    def done(self) -> bool:
        return self._done

    def request_progress(self) -> None:
        if not self._done:
            self._sub.session.request_progress()

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        self._sub.cancel()
        self._release()
        try:
            self._storage._watches.remove(self)
        except ValueError:
            pass

    def covers(self, key: bytes) -> bool:
        return key.startswith(self.prefix)

    def delivered_future(self, revision: int) -> "Optional[asyncio.Future[None]]":
        if self._done or revision <= self._delivered:
            return None
        fut: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (revision, self._seq, fut))
        return fut

    def _release(self, upto: Optional[int] = None) -> None:
        waiters = self._waiters
        while waiters and (upto is None or waiters[0][0] <= upto):
            _, _, fut = heapq.heappop(waiters)
            if not fut.done():
                fut.set_result(None)

    # -- from the session -----------------------------------------------------------------

    def _connected(self) -> None:
        self.live = True

    def _disconnected(self) -> None:
        # Writers must not wait for a watch that is reconnecting; it replays what they wrote later.
        self.live = False
        self._release()

    def _events(self, events: Sequence[Event], header_revision: int) -> None:
        if self._done:
            return
        try:
            batch = self._convert(events)
        except StorageError as err:
            self._end(err)
            return
        if not batch:
            return
        self._delivered = batch[-1].revision
        try:
            self._on_events(batch)
        except Exception:
            log.exception("watch consumer failed; ending its watch")
            self._end(InternalError(self.prefix, 0, "the watch consumer raised"))
            return
        if self._waiters:
            self._release(self._delivered)

    def _progress(self, revision: int) -> None:
        if self._done:
            return
        if revision > self._delivered:
            self._delivered = revision
            if self._waiters:
                self._release(revision)
        if self._on_progress is not None:
            try:
                self._on_progress(revision)
            except Exception:
                log.exception("watch consumer failed on progress; ending its watch")
                self._end(InternalError(self.prefix, 0, "the watch consumer raised"))

    def _canceled(self, compact_revision: int, reason: str) -> None:
        if self._done:
            return
        if compact_revision:
            storage = self._storage
            if compact_revision > storage.compact_revision:
                storage.compact_revision = compact_revision
            self._end(ExpiredError(self.prefix, self._sub.next_revision, compact_revision))
        else:
            self._end(InternalError(self.prefix, 0, f"etcd ended the watch: {reason or 'canceled'}"))

    def _end(self, err: StorageError) -> None:
        self.cancel()
        try:
            self._on_error(err)
        except Exception:
            log.exception("watch consumer failed on its error")

    def _convert(self, events: Sequence[Event]) -> List[WatchEvent]:
        out: List[WatchEvent] = []
        local = self._storage._local
        tf = self._storage.transformers
        plain = self._storage._plain
        for e in events:
            kv = e.kv
            rev = kv.mod_revision
            key = local(kv.key)
            has_prev = e.HasField("prev_kv")
            prev = e.prev_kv
            if e.type == DELETE:
                if not has_prev:
                    raise InternalError(key, rev, "etcd event received with PrevKv=nil")
                last = prev.value if tf is None else plain(key, prev.value, kv.key)
                out.append(WatchEvent(DELETED, key, _served(last, rev, key),
                                      _served(last, prev.mod_revision, key), rev, prev.create_revision))
            elif kv.create_revision == rev:
                value = kv.value if tf is None else plain(key, kv.value, kv.key)
                out.append(WatchEvent(ADDED, key, _served(value, rev, key), None, rev, rev))
            else:
                value = kv.value if tf is None else plain(key, kv.value, kv.key)
                if has_prev:
                    before = prev.value if tf is None else plain(key, prev.value, kv.key)
                    prev_value: Optional[bytes] = _served(before, prev.mod_revision, key)
                else:
                    prev_value = None
                out.append(WatchEvent(MODIFIED, key, _served(value, rev, key), prev_value, rev,
                                      kv.create_revision))
        return out


if TYPE_CHECKING:

    def _conforms(s: Etcd3Storage) -> Storage:  # the explicit interface check
        return s
