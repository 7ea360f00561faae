"""The engine's inbox: the bounded FIFO between feeds and the pipeline task.

The storage writer's queue is one too (its consumer waits for a batch's worth of rows at
once, :meth:`Inbox.wait` with a count, so it is not woken for every row).

It does what ``asyncio.Queue`` did for the engine, at a fraction of the cost per item: a
feed's :meth:`Inbox.offer` is a ``deque.append`` and, only when the pipeline is asleep, one
future resolved; the pipeline takes items with :meth:`Inbox.take` in a plain loop and sleeps
on one future when the inbox is empty. ``asyncio.Queue`` pays a coroutine, a waiter check
and an ``Event``-style wake-up per ``put``/``get``/``task_done``, which measured ~0.9 µs per
message on the engine's path.

One consumer (the pipeline task), any number of producers. Producers that find the inbox
full wait in FIFO order (:meth:`put`) and are woken one per freed slot; while any of them
waits, :meth:`offer` refuses too, so a late producer cannot overtake one that waits.
:meth:`join` returns once every item taken was marked :meth:`done` and none is left (the
engine joins its inbox in ``wait_idle``; the storage writer never joins, so it skips ``done``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Generic, TypeVar

__all__ = ["Inbox"]

K = TypeVar("K")


class Inbox(Generic[K]):
    """A bounded FIFO of ``(key, item)`` pairs (the engine's: ``(feed, item)``), one consumer.

    Args:
        maxsize: capacity, at least 1.
    """

    __slots__ = ("_getter", "_idle", "_items", "_maxsize", "_putters", "_unfinished", "_want")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"an inbox needs maxsize >= 1, got {maxsize}")
        self._maxsize = maxsize
        self._items: deque[tuple[K, Any]] = deque()
        self._getter: asyncio.Future[None] | None = None  # the consumer, asleep
        self._want = 1  # how many items wake the consumer
        self._putters: deque[asyncio.Future[None]] = deque()  # producers asleep on full
        self._idle: list[asyncio.Future[None]] = []  # join() callers
        self._unfinished = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def maxsize(self) -> int:
        """The capacity given at construction."""
        return self._maxsize

    def offer(self, key: K, item: Any) -> bool:
        """Append without waiting; False when the inbox is full or producers wait for room."""
        if len(self._items) >= self._maxsize or self._putters:
            return False
        self._append(key, item)
        return True

    def force(self, key: K, item: Any) -> None:
        """Append even beyond capacity (control markers that must never wait)."""
        self._append(key, item)

    async def put(self, key: K, item: Any) -> None:
        """Append, waiting (in arrival order with other waiting producers) for room."""
        if self.offer(key, item):
            return
        loop = asyncio.get_running_loop()
        again = False
        while True:
            waiter: asyncio.Future[None] = loop.create_future()
            if again:  # woken, but a slot went to someone else: keep our place at the front
                self._putters.appendleft(waiter)
            else:
                self._putters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._putters:
                    self._putters.remove(waiter)
                else:
                    self._wake_putter()  # woken and cancelled: hand the slot on
                raise
            if len(self._items) < self._maxsize:
                break
            again = True
        self._append(key, item)
        if self._putters and len(self._items) < self._maxsize:
            self._wake_putter()

    def _append(self, key: K, item: Any) -> None:
        items = self._items
        items.append((key, item))
        self._unfinished += 1
        if self._getter is not None and len(items) >= self._want:
            self.wake()

    def wake(self) -> None:
        """Wake the consumer now, however few items wait (control markers)."""
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    def take(self) -> tuple[K, Any] | None:
        """Pop the oldest pair, or None when the inbox is empty (never waits)."""
        items = self._items
        if not items:
            return None
        pair = items.popleft()
        if self._putters:
            self._wake_putter()
        return pair

    async def wait(self, count: int = 1) -> None:
        """Sleep until the inbox holds ``count`` items (at most its capacity) or :meth:`wake`.

        For the one consumer only.
        """
        if len(self._items) >= count:
            return
        getter = asyncio.get_running_loop().create_future()
        self._getter = getter
        self._want = max(1, min(count, self._maxsize))
        try:
            await getter
        finally:
            self._getter = None
            self._want = 1

    def done(self, count: int = 1) -> None:
        """Mark ``count`` taken items as fully processed (like ``Queue.task_done``)."""
        self._unfinished -= count
        if self._unfinished <= 0:
            self._unfinished = 0
            waiters, self._idle = self._idle, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def join(self) -> None:
        """Return once every item put so far was taken and marked done."""
        if self._unfinished == 0:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        await waiter

    def _wake_putter(self) -> None:
        putters = self._putters
        while putters:
            waiter = putters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
