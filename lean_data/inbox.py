"""The engine's inbox: the bounded FIFO between feeds and the pipeline task.

The storage writer's queue is one too (its consumer waits for a batch's worth of rows at
once, :meth:`Inbox.wait` with a count, so it is not woken for every row).

It does what ``asyncio.Queue`` did for the engine, at a fraction of the cost per item: a
feed's :meth:`Inbox.offer` is a ``deque.append`` and, only when the pipeline is asleep, one
future resolved; the pipeline takes items with :meth:`Inbox.take` in a plain loop and sleeps
on one future when the inbox is empty. ``asyncio.Queue`` pays a coroutine, a waiter check
and an ``Event``-style wake-up per ``put``/``get``/``task_done``, which measured ~0.9 µs per
message on the engine's path.

A batch (:meth:`offer_many`, :meth:`put_many`: the items of one websocket read) is one
entry holding a :class:`Batch`, and costs one append and one take however many items it holds;
capacity and :meth:`join` count its items. A batch fits when the inbox holds nothing or
its items fit beside what is there, so one larger than the capacity is still taken (alone)
instead of waiting forever; the bound overshoots by at most one read's worth.

One consumer (the pipeline task), any number of producers. Producers that find the inbox
full wait in FIFO order (:meth:`put`) and are woken one per freed slot; while any of them
waits, :meth:`offer` refuses too, so a late producer cannot overtake one that waits.

A *soft* mark below the capacity keeps a producer from running far ahead of the consumer
while both can run. From ``soft`` items on, :meth:`offer` and :meth:`offer_many` refuse, and
:meth:`put` and :meth:`put_many` let the loop run once (the consumer takes a turn) before
they add: a feed reading a burst hands over about ``soft`` items, the pipeline takes its
turn, and so on, instead of the feed filling the whole capacity first. Items are then
processed while what the feed decoded is still in the CPU's caches (~0.4 KB an item: a
10,000-item backlog is several MB, beyond them), and wait less. The capacity keeps its
meaning: a consumer that cannot run (it awaits a full subscriber queue or storage) does not
hold producers at ``soft``; they go on adding, one loop turn per add, up to ``maxsize``.
:meth:`join` returns once every item taken was marked :meth:`done` and none is left (the
engine joins its inbox in ``wait_idle``; the storage writer never joins, so it skips ``done``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, TypeVar

from lean_data.native import twin

__all__ = ["DRAIN", "LEAF", "RUN_ROWS", "Batch", "Door", "Inbox", "drain", "leaf"]

K = TypeVar("K")


def leaf(value: Any) -> Any:
    """Return ``value``. The C twin (``lean_data._rows.leaf``) also stops the garbage
    collector tracking a tuple none of whose items is a container it tracks, its inner
    tuples first: such a tuple can be in no reference cycle (CPython untracks it itself, at
    its first collection)."""
    return value


LEAF: Final = twin("lean_data._rows", "leaf", leaf)


def drain(
    popleft: Callable[[], Any],
    appendleft: Callable[[Any], None],
    run: Any,
    available: int,
    groups: list[list[Any]],
    limit: int,
) -> tuple[int, Any]:
    """Pop up to ``limit`` rows of ``(table, row)`` pairs with ``popleft()`` (at most
    ``available`` calls: what the deque holds), appending each row to ``groups[table]``; a
    pair whose row is a ``run`` (:class:`Batch`: consecutive rows of one table,
    :meth:`Inbox.offer_row`) gives all its rows, or when they go beyond ``limit`` its first
    ones, the rest put back at the head with ``appendleft``. A pair whose table is negative
    (a control entry) ends it. Returns the rows moved and that pair, or None. The storage
    writer's take (:meth:`Inbox.take_rows`); the C twin (``lean_data._rows.drain``) makes one
    call of it per batch instead of one compiled take per row.

    Raises:
        TypeError: a pair is not a 2-tuple with an int table, a group is no list, or a
            run holds no list.
        IndexError: a table beyond ``groups``.
    """
    taken = calls = 0
    while taken < limit and calls < available:
        entry = popleft()
        calls += 1
        if type(entry) is not tuple or len(entry) != 2 or not isinstance(entry[0], int):
            raise TypeError("drain() takes (table, row) pairs")
        table: int = entry[0]
        if table < 0:
            return taken, entry
        group = groups[table]
        if type(group) is not list:
            raise TypeError("drain() needs a list of lists")
        row: Any = entry[1]
        if type(row) is not run:
            group.append(row)
            taken += 1
            continue
        rows = row.items
        if type(rows) is not list:
            raise TypeError("drain() needs a run of a list")
        room = limit - taken
        if len(rows) > room:  # the limit within the run: the rest stays first in line
            group.extend(rows[:room])
            del rows[:room]
            appendleft(entry)
            return limit, None
        group.extend(rows)
        taken += len(rows)
    return taken, None


DRAIN: Final = twin("lean_data._rows", "drain", drain)


RUN_ROWS: Final = 256
"""The most rows one run holds (:meth:`Inbox.offer_row`): the entries' overhead is paid
once per run, and a take that ends within a run (its limit) moves at most this many."""


class Batch:
    """The items of one batch entry, in order (:meth:`Inbox.offer_many`; a run of rows,
    :meth:`Inbox.offer_row`); the consumer tells a batch from one item by
    ``type(item) is Batch``.

    Attributes:
        items: the items, in the order they were handed over.
    """

    __slots__ = ("items",)

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)


class Door:
    """Where producers hand a batch of items over without waiting: the engine's
    :class:`~lean_data.engine.intake.Intake` is one. A feed (a stage below the engine) keeps
    its engine's door by this type, so the compiled hand-over calls ``offer_many`` natively
    (through the class's method table) rather than through a bound method's argument
    parsing."""

    def offer_many(self, key: str, items: Sequence[Any]) -> bool:
        """Take ``items`` without waiting, all or nothing; False when they do not fit."""
        raise NotImplementedError


class Inbox(Generic[K]):
    """A bounded FIFO of ``(key, item)`` pairs (the engine's: ``(feed, item)``), one consumer.

    An entry whose item is a :class:`Batch` is a batch (:meth:`offer_many`); everything
    else is one item. ``len()`` and the capacity count items.

    Args:
        maxsize: capacity in items, at least 1.
        soft: the crowded mark in items (see the module's docstring), at most ``maxsize``;
            None: ``maxsize`` (no soft mark).
    """

    __slots__ = (
        "_getter",
        "_idle",
        "_items",
        "_maxsize",
        "_popleft",
        "_push",
        "_putters",
        "_run",
        "_run_key",
        "_size",
        "_soft",
        "_unfinished",
        "_want",
    )

    def __init__(self, maxsize: int, soft: int | None = None) -> None:
        if maxsize < 1:
            raise ValueError(f"an inbox needs maxsize >= 1, got {maxsize}")
        if soft is not None and soft < 1:
            raise ValueError(f"an inbox needs soft >= 1, got {soft}")
        self._maxsize = maxsize
        self._soft = maxsize if soft is None else min(soft, maxsize)
        self._items: deque[tuple[K, Any]] = deque()
        # the deque's own methods, bound once: compiled, items.popleft() is a method lookup
        # by name on every call (a deque is no native class)
        # typed Any: compiled, a pair typed as a tuple is unpacked and built again when it
        # is passed on, an allocation per item (and one the collector tracks, whatever LEAF
        # did)
        self._popleft: Callable[[], Any] = self._items.popleft
        self._push: Callable[[Any], None] = self._items.append
        self._size = 0  # items held: a batch counts its length
        self._getter: asyncio.Future[None] | None = None  # the consumer, asleep
        self._want = 1  # how many items wake the consumer
        self._putters: deque[asyncio.Future[None]] = deque()  # producers asleep on full
        self._idle: list[asyncio.Future[None]] = []  # join() callers
        self._unfinished = 0
        # the open run (offer_row): the items of the Batch entry at the tail, and its key;
        # None once any other entry is queued after it or a take may have popped it
        self._run: list[Any] | None = None
        self._run_key: Any = None

    def __len__(self) -> int:
        return self._size

    @property
    def maxsize(self) -> int:
        """The capacity given at construction."""
        return self._maxsize

    def offer(self, key: K, item: Any) -> bool:
        """Append without waiting; False when the inbox is crowded (it holds ``soft`` items
        or more), full, or producers wait for room: :meth:`put` then adds it."""
        if self._size >= self._soft or self._putters:
            return False
        self._append(key, item, 1)
        return True

    def offer_row(self, key: K, row: Any) -> bool:
        """:meth:`offer` for a row of plain values (the storage writer's queue): False when
        the inbox is crowded or producers wait, as :meth:`offer`. A row of the same key as
        the entry at the tail, a run still open, joins it (up to :data:`RUN_ROWS`) instead
        of taking an entry of its own: consecutive rows cost one entry, and one step of
        :meth:`take_rows`, per run. The order is kept: a run is open only while it is the
        last entry and no take has begun since. The row is kept out of the garbage
        collector's lists (:data:`LEAF`), so a long queue of them costs its collections
        nothing."""
        if self._size >= self._soft or self._putters:
            return False
        run = self._run
        # the key by identity: the storage writer's are small ints (its tables), one object each
        if run is not None and self._run_key is key and len(run) < RUN_ROWS:
            run.append(LEAF(row))
            self._count_in(1)
            return True
        run = [LEAF(row)]
        self._enter((key, Batch(run)), 1)  # closes the run before it, opens this one
        self._run = run
        self._run_key = key
        return True

    def offer_many(self, key: K, items: Sequence[Any]) -> bool:
        """Append ``items`` as one batch without waiting; False when the inbox is crowded,
        they do not fit, or producers wait for room: :meth:`put_many` then adds them. An empty
        list is accepted and not queued; one item is queued as :meth:`offer` queues it."""
        count = len(items)
        if count <= 1:  # one item is an entry of its own: no batch to unwrap
            return True if not count else self.offer(key, items[0])
        if self._size >= self._soft or not self._fits(count) or self._putters:
            return False
        self._append(key, Batch(list(items)), count)
        return True

    def force(self, key: K, item: Any) -> None:
        """Append even beyond capacity (control markers that must never wait)."""
        self._append(key, item, 1)

    async def put(self, key: K, item: Any) -> None:
        """Append, waiting (in arrival order with other waiting producers) for room; when
        the inbox is only crowded, after the loop ran once."""
        if self.offer(key, item):
            return
        await self._room(1)
        self._append(key, item, 1)
        if self._putters and self._size < self._maxsize:
            self._wake_putter()

    async def put_many(self, key: K, items: Sequence[Any]) -> None:
        """Append ``items`` as one batch, waiting (in arrival order with other waiting
        producers) until they fit (:meth:`offer_many`)."""
        if self.offer_many(key, items):
            return
        count = len(items)
        await self._room(count)
        self._append(key, Batch(list(items)) if count > 1 else items[0], count)
        if self._putters and self._size < self._maxsize:
            self._wake_putter()

    def _fits(self, count: int) -> bool:
        size = self._size
        return size == 0 or size + count <= self._maxsize

    async def _room(self, count: int) -> None:
        """Return when ``count`` items may be added: at once when they fit and no producer
        waits, after one turn of the loop (the consumer's, when it can run); else in turn
        with the waiting producers once they fit."""
        if not self._putters and self._fits(count):  # crowded, not full: one turn
            await asyncio.sleep(0)
            if not self._putters and self._fits(count):  # still room after that turn
                return
        await self._wait_room(count)

    async def _wait_room(self, count: int) -> None:
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
            if self._fits(count):
                return
            again = True

    def _append(self, key: K, item: Any, count: int) -> None:
        self._enter((key, item), count)

    def _enter(self, pair: Any, count: int) -> None:  # Any: as _push (see __init__)
        self._push(pair)
        self._run = None  # a run is open only at the tail
        self._count_in(count)

    def _count_in(self, count: int) -> None:
        """Count ``count`` items in; wake the consumer once it has what it waits for."""
        self._unfinished += count
        size = self._size = self._size + count
        if self._getter is not None and size >= self._want:
            self.wake()

    def wake(self) -> None:
        """Wake the consumer now, however few items wait (control markers)."""
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    def take(self) -> tuple[K, Any] | None:
        """Pop the oldest pair (a batch's item is its :class:`Batch`), or None when the inbox
        is empty (never waits)."""
        items = self._items
        if not items:
            return None
        pair = self._popleft()
        item = pair[1]
        if type(item) is Batch:
            self._size -= len(item)
            self._run = None  # it may be the open run: none joins it once taken
        else:
            self._size -= 1
        if self._putters:
            self._wake_putter()
        return pair  # type: ignore[no-any-return]

    def take_rows(self, groups: list[list[Any]], limit: int) -> tuple[int, Any]:
        """Move up to ``limit`` queued rows into ``groups``, by table, without waiting: for
        an inbox of ``(table, row)`` pairs and runs of rows (the storage writer's,
        :meth:`offer_row`), where a negative table is a control entry, which ends the take
        and comes back. A run the limit falls within gives its first rows; the rest stays
        first in line. Returns (rows moved, the control pair or None). The same as
        :meth:`take` per pair, in one call (:data:`DRAIN`)."""
        available = len(self._items)
        if not available or limit <= 0:
            return 0, None
        self._run = None  # the take may pop it: rows after this start a run of their own
        taken, control = DRAIN(
            self._popleft, self._items.appendleft, Batch, available, groups, limit
        )
        freed = taken if control is None else taken + 1
        self._size -= freed
        while freed and self._putters:  # as take() does, once per freed slot
            self._wake_putter()
            freed -= 1
        return taken, control

    async def wait(self, count: int = 1) -> None:
        """Sleep until the inbox holds ``count`` items (at most its capacity) or :meth:`wake`.

        For the one consumer only.
        """
        if self._size >= count:
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
