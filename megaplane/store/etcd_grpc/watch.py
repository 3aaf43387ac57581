"""etcdserverpb.Watch: many watches multiplexed on one bidirectional stream.

Per stream, as etcd's serverWatchStream does: a reader takes create /
cancel / progress requests; a sender writes control responses and event
batches. Here the sender is the RPC's own thread (a generator), the reader
a helper thread, and they meet in `WatchStream`: watchers mark themselves
ready (their `on_ready` runs in the writer's thread, under the store lock)
and wake the sender, which takes their events under the lock and encodes
outside it.

Semantics kept from etcd (server/etcdserver/api/v3rpc/watch.go):
- watch ids are per stream and start at 0; a requested id in use, an empty
  range or a negative start revision give a created+canceled response with
  watch id -1 and etcd's cancel reason;
- a watcher whose history was compacted away is cancelled with
  compact_revision set;
- a progress request is answered with watch id -1 and the stream's
  revision once every watcher on the stream is caught up;
- progress_notify watchers get an empty response every
  --experimental-watch-progress-notify-interval when they had no events;
- fragment splits a response larger than --max-request-bytes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Deque, Dict, Iterator, List, Optional, Set

import grpc

from ..errors import CompactedError
from ..watch import Watcher
from . import convert
from .etcdpb import etcd_pb2 as pb

if TYPE_CHECKING:
    from .server import EtcdServer

__all__ = ["WatchService", "WatchStream"]

INVALID_WATCH_ID = -1
EMPTY_RANGE = "mvcc: watcher range is empty"
DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
# Events taken per watcher per response; a revision is never split.
BATCH = 1000


class WatchService:
    def __init__(self, server: "EtcdServer") -> None:
        self.server = server

    def handlers(self) -> dict:
        return {
            "Watch": grpc.stream_stream_rpc_method_handler(
                self.watch, pb.WatchRequest.FromString, pb.WatchResponse.SerializeToString
            )
        }

    def watch(self, requests: Iterator[pb.WatchRequest], context: grpc.ServicerContext) -> Iterator[pb.WatchResponse]:
        stream = WatchStream(self.server, context)
        return stream.run(requests)


class WatchStream:
    """One client's Watch RPC: its watchers, their ids, and what is owed to the client."""

    def __init__(self, server: "EtcdServer", context: grpc.ServicerContext) -> None:
        self.server = server
        self.store = server.store
        self.lock = server.store.lock
        self.context = context
        self.watchers: Dict[int, Watcher] = {}
        self.next_id = 0
        # Guarded by the store lock.
        self.control: Deque[pb.WatchResponse] = deque()
        self.ready: Set[int] = set()
        self.progress_all = False
        # Watch ids with progress_notify, and whether they were quiet since the last tick.
        self.progress: Dict[int, bool] = {}
        self.wake = threading.Event()
        self.closed = False
        context.add_callback(self._close)

    def _close(self) -> None:
        self.closed = True
        self.wake.set()

    # -- reader ------------------------------------------------------------------

    def _read(self, requests: Iterator[pb.WatchRequest]) -> None:
        try:
            for req in requests:
                which = req.WhichOneof("request_union")
                with self.lock:
                    if which == "create_request":
                        self._create(req.create_request)
                    elif which == "cancel_request":
                        self._cancel(req.cancel_request.watch_id)
                    elif which == "progress_request":
                        self.progress_all = True
                self.wake.set()
        except Exception:  # the RPC ended (client went away): the sender notices via the context
            pass

    def _header(self, revision: Optional[int] = None) -> pb.ResponseHeader:
        return self.server.header(self.store.revision if revision is None else revision)

    def _refuse(self, reason: str) -> None:
        self.control.append(
            pb.WatchResponse(
                header=self._header(), watch_id=INVALID_WATCH_ID, created=True, canceled=True, cancel_reason=reason
            )
        )

    def _create(self, c: pb.WatchCreateRequest) -> None:
        key = c.key or b"\x00"  # etcd: \x00 is the smallest key
        range_end = c.range_end
        if c.start_revision < 0:
            self._refuse(CompactedError.message)
            return
        if range_end and range_end != b"\x00" and key >= range_end:
            self._refuse(EMPTY_RANGE)
            return
        watch_id = c.watch_id
        if watch_id:
            if watch_id in self.watchers:
                self._refuse(DUPLICATE_ID)
                return
        else:
            while self.next_id in self.watchers:
                self.next_id += 1
            watch_id = self.next_id
            self.next_id += 1
        filters = set(c.filters)
        w = self.store.watch(
            key,
            range_end,
            c.start_revision,
            prev_kv=c.prev_kv,
            no_put=pb.WatchCreateRequest.NOPUT in filters,
            no_delete=pb.WatchCreateRequest.NODELETE in filters,
            progress_notify=c.progress_notify,
            fragment=c.fragment,
        )
        self.watchers[watch_id] = w

        def on_ready(watch_id: int = watch_id) -> None:
            self.ready.add(watch_id)
            self.wake.set()

        w.on_ready = on_ready
        if c.progress_notify:
            self.progress[watch_id] = True
        self.control.append(pb.WatchResponse(header=self._header(), watch_id=watch_id, created=True))
        if w.has_ready():
            self.ready.add(watch_id)

    def _cancel(self, watch_id: int) -> None:
        w = self.watchers.pop(watch_id, None)
        if w is None:
            return  # etcd sends nothing for an unknown id
        w.cancel()
        self.ready.discard(watch_id)
        self.progress.pop(watch_id, None)
        self.control.append(pb.WatchResponse(header=self._header(), watch_id=watch_id, canceled=True))

    # -- sender --------------------------------------------------------------------

    def run(self, requests: Iterator[pb.WatchRequest]) -> Iterator[pb.WatchResponse]:
        reader = threading.Thread(target=self._read, args=(requests,), name="megaplane-watch-reader", daemon=True)
        reader.start()
        interval = self.server.progress_notify_interval
        next_tick = time.monotonic() + interval
        try:
            while not self.closed:
                timeout = max(0.0, next_tick - time.monotonic())
                self.wake.wait(timeout)
                self.wake.clear()
                if self.closed:
                    break
                tick = time.monotonic() >= next_tick
                if tick:
                    next_tick = time.monotonic() + interval
                for resp in self._drain(tick):
                    yield resp
        finally:
            with self.lock:
                for w in self.watchers.values():
                    w.cancel()
                self.watchers.clear()

    def _drain(self, tick: bool) -> List[pb.WatchResponse]:
        """Everything owed to the client now: control responses, then events."""
        batches = []
        out: List[pb.WatchResponse] = []
        with self.lock:
            while self.control:
                out.append(self.control.popleft())
            ready, self.ready = self.ready, set()
            for watch_id in sorted(ready):
                w = self.watchers.get(watch_id)
                if w is None:
                    continue
                events = w.take(BATCH)
                if events:
                    batches.append((watch_id, w, events, self.store.publish_revision))
                    if watch_id in self.progress:
                        self.progress[watch_id] = False
                if w.canceled and w.compact_revision:
                    del self.watchers[watch_id]
                    self.progress.pop(watch_id, None)
                    batches.append((watch_id, w, None, self.store.revision))
                elif w.has_ready():
                    # More than one batch (or catching up): come back after sending this one.
                    self.ready.add(watch_id)
                    self.wake.set()
            if self.progress_all and all(w.progress_revision() is not None for w in self.watchers.values()):
                self.progress_all = False
                out.append(pb.WatchResponse(header=self._header(self.store.publish_revision), watch_id=INVALID_WATCH_ID))
            if tick:
                for watch_id, quiet in list(self.progress.items()):
                    w = self.watchers.get(watch_id)
                    rev = w.progress_revision() if w is not None else None
                    if quiet and rev is not None:
                        out.append(pb.WatchResponse(header=self._header(rev), watch_id=watch_id))
                    self.progress[watch_id] = True
        for watch_id, w, events, rev in batches:
            if events is None:
                # etcd leaves cancel_reason empty here; clients read compact_revision.
                out.append(
                    pb.WatchResponse(
                        header=self._header(rev), watch_id=watch_id, canceled=True, compact_revision=w.compact_revision
                    )
                )
                continue
            resp = pb.WatchResponse(
                header=self._header(rev), watch_id=watch_id, events=convert.events_pb(events, w.prev_kv)
            )
            if w.fragment and resp.ByteSize() >= self.server.max_request_bytes and len(events) > 1:
                out.extend(self._fragments(resp))
            else:
                out.append(resp)
        return out

    def _fragments(self, resp: pb.WatchResponse) -> List[pb.WatchResponse]:
        """Split one response into pieces under --max-request-bytes (etcd's sendFragments)."""
        limit = self.server.max_request_bytes
        out: List[pb.WatchResponse] = []
        events = list(resp.events)
        i = 0
        while i < len(events):
            cur = pb.WatchResponse(header=resp.header, watch_id=resp.watch_id, fragment=True)
            while i < len(events):
                cur.events.append(events[i])
                if len(cur.events) > 1 and cur.ByteSize() >= limit:
                    del cur.events[-1]
                    break
                i += 1
            if i == len(events):
                cur.fragment = False
            out.append(cur)
        return out
