"""etcdserverpb.Watch: many watches multiplexed on one bidirectional stream.

Each stream keeps its watchers and what it owes the client. A watcher's
`on_ready` runs in the write path (on the event loop) and only marks it
ready; one drain per loop iteration takes the events of every ready
watcher and sends them, so a burst of writes becomes one response per
watcher, not one per write. While the client is not reading (its HTTP/2
window is full) the drain leaves events in the store, where a watcher that
falls too far behind is moved to catch up from history or, if history is
gone, cancelled with its compact revision.

Semantics kept from etcd (server/etcdserver/api/v3rpc/watch.go):
- watch ids are per stream and start at 0; a requested id in use, an empty
  range or a negative start revision give a created+canceled response with
  watch id -1 and etcd's cancel reason; cancelling an unknown id is silent;
- a watcher whose history was compacted away is cancelled with
  compact_revision set (and no cancel reason, as etcd);
- a progress request is answered with watch id -1 and the stream's
  revision once every watcher on the stream is caught up;
- progress_notify watchers get an empty response every
  --experimental-watch-progress-notify-interval when they had no events;
- fragment splits a response larger than --max-request-bytes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Deque, Dict, List, Optional, Set

from megaplane.store.errors import CompactedError
from megaplane.store.watch import Watcher

from .. import convert
from ..grpc import Method, ServerCall
from ..pb import etcd_pb2 as pb
from .member import Member
from .views import WatchView

__all__ = ["WatchService", "WatchStream", "WatchSettings"]

INVALID_WATCH_ID = -1
EMPTY_RANGE = "mvcc: watcher range is empty"
DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
# Events taken per watcher per response; a revision is never split.
BATCH = 1000


class WatchSettings:
    """The server flags a watch stream reads."""

    __slots__ = ("progress_notify_interval", "max_request_bytes")

    def __init__(self, progress_notify_interval: float, max_request_bytes: int) -> None:
        #: --experimental-watch-progress-notify-interval, seconds.
        self.progress_notify_interval = progress_notify_interval
        #: --max-request-bytes: responses larger than this are fragmented when the watcher asked.
        self.max_request_bytes = max_request_bytes


class WatchService:
    def __init__(self, member: Member, store: WatchView, settings: WatchSettings) -> None:
        self.member = member
        self.store = store
        self.settings = settings

    def methods(self) -> Dict[str, Method]:
        return {
            "/etcdserverpb.Watch/Watch": Method(
                "bidi", self.watch, pb.WatchRequest.FromString, pb.WatchResponse.SerializeToString
            )
        }

    def watch(self, call: ServerCall) -> None:
        WatchStream(self.member, self.store, self.settings, call)


class WatchStream:
    """One client's Watch RPC: its watchers, their ids, and what is owed to the client."""

    def __init__(self, member: Member, store: WatchView, settings: WatchSettings, call: ServerCall) -> None:
        self.member = member
        self.store = store
        self.settings = settings
        self.call = call
        self.loop = asyncio.get_event_loop()
        self.watchers: Dict[int, Watcher] = {}
        self.next_id = 0
        self.control: Deque[pb.WatchResponse] = deque()
        self.ready: Set[int] = set()
        self.progress_all = False
        # Watch ids with progress_notify -> quiet since the last tick.
        self.progress: Dict[int, bool] = {}
        self.ticker: Optional[asyncio.TimerHandle] = None
        self.scheduled = False
        self.closed = False
        call.on_message = self.on_message
        call.on_cancel = self.close
        call.on_writable = self.schedule

    def close(self) -> None:
        self.closed = True
        for w in self.watchers.values():
            w.cancel()
        self.watchers.clear()
        if self.ticker is not None:
            self.ticker.cancel()

    def schedule(self) -> None:
        if not self.scheduled and not self.closed:
            self.scheduled = True
            self.loop.call_soon(self.drain)

    # -- requests --------------------------------------------------------------------

    def on_message(self, req: pb.WatchRequest) -> None:
        which = req.WhichOneof("request_union")
        if which == "create_request":
            self._create(req.create_request)
        elif which == "cancel_request":
            self._cancel(req.cancel_request.watch_id)
        elif which == "progress_request":
            self.progress_all = True
        self.schedule()

    def _header(self, revision: Optional[int] = None) -> pb.ResponseHeader:
        return self.member.header(self.store.revision if revision is None else revision)

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
            self.schedule()

        w.on_ready = on_ready
        if c.progress_notify:
            self.progress[watch_id] = True
            if self.ticker is None:
                self.ticker = self.loop.call_later(self.settings.progress_notify_interval, self._tick)
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

    def _tick(self) -> None:
        """Progress notifications for quiet progress_notify watchers (etcd's progress ticker)."""
        self.ticker = None
        if self.closed or not self.progress:
            return
        for watch_id, quiet in list(self.progress.items()):
            w = self.watchers.get(watch_id)
            rev = w.progress_revision() if w is not None else None
            if quiet and rev is not None:
                self.control.append(pb.WatchResponse(header=self._header(rev), watch_id=watch_id))
            self.progress[watch_id] = True
        self.ticker = self.loop.call_later(self.settings.progress_notify_interval, self._tick)
        self.schedule()

    # -- responses ---------------------------------------------------------------------

    def drain(self) -> None:
        """Send everything owed now: control responses, then events, then progress."""
        self.scheduled = False
        if self.closed or self.call.done:
            return
        call = self.call
        while self.control:
            call.send(self.control.popleft())
        if self.ready and call.writable():
            ready, self.ready = self.ready, set()
            for watch_id in sorted(ready):
                w = self.watchers.get(watch_id)
                if w is None:
                    continue
                events = w.take(BATCH)
                if events:
                    self._send_events(watch_id, w, events)
                    if watch_id in self.progress:
                        self.progress[watch_id] = False
                if w.canceled and w.compact_revision:
                    # etcd leaves cancel_reason empty here; clients read compact_revision.
                    del self.watchers[watch_id]
                    self.progress.pop(watch_id, None)
                    call.send(
                        pb.WatchResponse(
                            header=self._header(), watch_id=watch_id, canceled=True, compact_revision=w.compact_revision
                        )
                    )
                elif w.has_ready():
                    self.ready.add(watch_id)  # more than one batch, or catching up
            if self.ready:
                self.schedule()
        if self.progress_all and all(w.progress_revision() is not None for w in self.watchers.values()):
            self.progress_all = False
            call.send(pb.WatchResponse(header=self._header(self.store.publish_revision), watch_id=INVALID_WATCH_ID))

    def _send_events(self, watch_id: int, w: Watcher, events: List) -> None:
        resp = pb.WatchResponse(
            header=self._header(self.store.publish_revision),
            watch_id=watch_id,
            events=convert.events_pb(events, w.prev_kv),
        )
        if w.fragment and len(events) > 1 and resp.ByteSize() >= self.settings.max_request_bytes:
            for piece in self._fragments(resp):
                self.call.send(piece)
        else:
            self.call.send(resp)

    def _fragments(self, resp: pb.WatchResponse) -> List[pb.WatchResponse]:
        """Split one response into pieces under --max-request-bytes (etcd's sendFragments)."""
        limit = self.settings.max_request_bytes
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
