"""Where a feed's items enter the engine: the engine's state and its two queues (compiled).

:class:`Intake` owns the engine's :class:`~lean_data.engine.state.EngineState` (the engine's
``state`` reads and sets it here) and takes what feeds hand over: market data and
derivatives records into the inbox, book records into the books' own queue (so depth never
makes bars wait), counting every item accepted. ``DataEngine.offer`` and
``DataEngine.offer_many`` are its bound methods, so a feed's ``emit`` reaches the inbox
through compiled code only: this is the one call every item of every feed makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from lean_data.engine.state import EngineState
from lean_data.errors import EngineStateError
from lean_data.inbox import Door, Inbox
from lean_data.models import Tick, TradeBar

__all__ = ["Intake"]

_RUNNING: Final = EngineState.RUNNING
# C statics for classes of pure modules, used per item (see lean_data.quality.screen)
_TICK: Final = Tick
_TRADE_BAR: Final = TradeBar


class Intake(Door):
    """The engine's state and the non-waiting entry of its queues.

    Args:
        inbox: the pipeline's inbox.
        books: the books' queue.
        book_types: the classes that go to ``books`` (snapshots and deltas).

    Attributes:
        state: where the engine is in its life (the engine's ``state`` is this one).
        accepted: items taken into either queue since the engine was made.
    """

    def __init__(
        self, inbox: Inbox[str], books: Inbox[str], book_types: frozenset[type[Any]]
    ) -> None:
        self._inbox = inbox
        self._books = books
        self._book_types = book_types
        self.state = EngineState.NEW
        self.accepted = 0

    def offer(self, feed: str, item: Any) -> bool:
        """Take one item into its queue without waiting; False when that queue is full or
        crowded (the inbox's soft mark, :mod:`lean_data.inbox`).

        Raises:
            EngineStateError: the engine is not running.
        """
        if self.state is not _RUNNING:
            raise EngineStateError(f"the engine is {self.state.value}; it accepts no data")
        if self.queue_of(item).offer(feed, item):
            self.accepted += 1
            return True
        return False

    def offer_many(self, feed: str, items: Sequence[Any]) -> bool:
        """Take a feed's items (one socket read's worth) into the inbox as one batch, without
        waiting; all or nothing: False when they do not fit or the inbox is crowded (its soft
        mark), or when book records are among them (``DataEngine.accept_many`` sends those
        to the books' queue one by one).

        Raises:
            EngineStateError: the engine is not running.
        """
        if self.state is not _RUNNING:
            raise EngineStateError(f"the engine is {self.state.value}; it accepts no data")
        book_types = self._book_types
        if isinstance(items, list):  # a read's list: indexed natively, no iterator object
            listed: list[Any] = items
            for item in listed:
                kind = type(item)  # a tick or a bar is no book record: no set lookup
                if kind is not _TICK and kind is not _TRADE_BAR and kind in book_types:
                    return False
        else:
            for item in items:
                if type(item) in book_types:
                    return False
        if self._inbox.offer_many(feed, items):
            self.accepted += len(items)
            return True
        return False

    def queue_of(self, item: Any) -> Inbox[str]:
        """The queue ``item`` goes to (for a producer that must wait for room in it)."""
        return self._inbox if type(item) not in self._book_types else self._books
