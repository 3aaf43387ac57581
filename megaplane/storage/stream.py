"""`WatchStream`: a push watch read as an async iterator, for consumers that pull (tests, tools).

``async with await WatchStream.open(storage, prefix, from_revision=r) as s:
async for item in s`` yields `WatchEvent`s in revision order and, if
asked (``progress=True``), `Progress` items; the watch's error (ExpiredError
when compacted) is raised from the iteration after every event before it.
"""

from __future__ import annotations

import asyncio
import collections
from types import TracebackType
from typing import Deque, Optional, Union

import msgspec

from .errors import StorageError
from .interface import Watchable, WatchEvent, WatchHandle

__all__ = ["WatchStream", "Progress"]


class Progress(msgspec.Struct, frozen=True):
    """A progress notification: every event up to `revision` came before it."""

    revision: int


Item = Union[WatchEvent, Progress]


class WatchStream:
    """The events of one `Storage.watch`, buffered until iterated (unbounded: a reader must keep up)."""

    def __init__(self) -> None:
        self._items: Deque[Item] = collections.deque()
        self._error: Optional[StorageError] = None
        self._waiter: Optional[asyncio.Future[None]] = None
        self._handle: Optional[WatchHandle] = None

    @classmethod
    async def open(
        cls, storage: Watchable, prefix: bytes, *, from_revision: int = 0, progress: bool = False
    ) -> "WatchStream":
        stream = cls()
        stream._handle = await storage.watch(
            prefix,
            from_revision=from_revision,
            on_events=stream._on_events,
            on_error=stream._on_error,
            on_progress=stream._on_progress if progress else None,
        )
        return stream

    def __repr__(self) -> str:
        return f"<WatchStream buffered={len(self._items)} error={self._error!r} handle={self._handle!r}>"

    @property
    def handle(self) -> WatchHandle:
        assert self._handle is not None, "use WatchStream.open"
        return self._handle

    def request_progress(self) -> None:
        self.handle.request_progress()

    def cancel(self) -> None:
        self.handle.cancel()
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _on_events(self, events: list[WatchEvent]) -> None:
        self._items.extend(events)
        self._wake()

    def _on_progress(self, revision: int) -> None:
        self._items.append(Progress(revision))
        self._wake()

    def _on_error(self, err: StorageError) -> None:
        self._error = err
        self._wake()

    def __aiter__(self) -> "WatchStream":
        return self

    async def __anext__(self) -> Item:
        while not self._items:
            if self._error is not None:
                raise self._error
            if self.handle.done:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    async def __aenter__(self) -> "WatchStream":
        return self

    async def __aexit__(
        self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.cancel()
