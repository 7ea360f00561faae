"""BookKeeper: one book, its venue's sequencer, and the buffer that re-synchronises it.

For every message the keeper returns a :class:`~lean_data.depth.sequencers.Decision`
(whose ``verdict`` is a :class:`~lean_data.quality.levels.Verdict`):

- a delta in sequence is applied; afterwards the book is checked (a crossed book or a
  negative size is INVALID: ``book_crossed``, ``book_negative_size``; a locked book, bid ==
  ask, keeps a POOR ``book_locked`` verdict and stays valid), then the venue's checksum is
  verified (``book_checksum``);
- a GAP or CHECKSUM_MISMATCH marks the book invalid (``book.valid`` False,
  ``book.invalid_reason`` the message);
- while the book is invalid (or before the first snapshot) deltas are buffered (bounded;
  the oldest is dropped and counted when full) and answered BUFFER;
- a snapshot reloads the book and, where the venue numbers its messages, replays the
  buffer through the sequencer: stale deltas are skipped, the rest applied in order, so the
  book is current again without waiting for new messages.

Pure and synchronous: no clock, no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
from operator import itemgetter

from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.depth.book import BookState, OrderBook
from lean_data.depth.sequencers import APPLIED, Action, Decision, Sequencer

__all__ = ["BookKeeper", "KeeperStatistics"]

_size = itemgetter(1)
_UNSYNCED = Decision(Action.BUFFER, "book_unsynced", "buffered until the book is re-synced")


@dataclass(slots=True, frozen=True)
class KeeperStatistics:
    """Counts since the keeper was made."""

    applied: int
    skipped: int
    buffered: int
    buffer_dropped: int
    gaps: int
    checksum_failures: int
    rejected: int
    locked: int
    snapshots: int


class BookKeeper:
    """Keep ``book`` in sync using ``sequencer``'s rules.

    Args:
        book: the book to maintain.
        sequencer: the venue's rules.
        buffer_size: at most this many deltas are held while the book is invalid.
    """

    __slots__ = ("_buffer", "_counts", "_verifies", "book", "sequencer")

    def __init__(self, book: OrderBook, sequencer: Sequencer, *, buffer_size: int = 10_000):
        if buffer_size < 1:
            raise ValueError(f"buffer_size: expected >= 1, got {buffer_size}")
        self.book = book
        self.sequencer = sequencer
        self._verifies = type(sequencer).verify is not Sequencer.verify  # a checksum venue
        self._buffer: deque[OrderBookDelta] = deque(maxlen=buffer_size)
        self._counts = {field.name: 0 for field in fields(KeeperStatistics)}

    @property
    def buffered(self) -> int:
        """How many deltas wait for the next snapshot."""
        return len(self._buffer)

    def on_snapshot(self, snapshot: OrderBookSnapshot) -> Decision:
        """Load ``snapshot``, then replay the buffered deltas (when the venue numbers them).

        Returns:
            APPLY, or the first decision that left the book invalid again (a crossed
            snapshot, a gap between the snapshot and the buffer).
        """
        self._counts["snapshots"] += 1
        self.book.load(snapshot)
        self.sequencer.reset(snapshot)
        bad = self._after_change(snapshot.bids, snapshot.asks)
        if bad is not None and bad.invalidates:
            self._buffer.clear()
            return self._invalidate(bad)
        pending = list(self._buffer) if self.sequencer.replays_buffer else []
        self._buffer.clear()
        for index, delta in enumerate(pending):
            decision = self._step(delta)
            if decision.invalidates:
                if decision.action is Action.GAP:  # keep it and the rest for the next try
                    self._buffer.extend(pending[index + 1 :])
                return decision
        return APPLIED

    def on_delta(self, delta: OrderBookDelta) -> Decision:
        """Judge ``delta`` and apply it when it is in sequence."""
        if not self.book.valid:
            self._hold(delta)
            return _UNSYNCED
        return self._step(delta)

    def _step(self, delta: OrderBookDelta) -> Decision:
        decision = self.sequencer.check(delta)
        action = decision.action
        if action is Action.APPLY:
            self.book.apply(delta)
            bad = self._after_change(delta.bids, delta.asks)
            if bad is not None and bad.invalidates:
                return self._invalidate(bad)
            if self._verifies:
                after = self.sequencer.verify(self.book, delta)
                if after.action is not Action.APPLY:
                    return self._invalidate(after)
            self._counts["applied"] += 1
            return APPLIED if bad is None else bad  # bad: applied but locked
        if action is Action.SKIP:
            self._counts["skipped"] += 1
        elif action is Action.BUFFER:
            self._hold(delta)
        elif action is Action.GAP:
            self._hold(delta)
            return self._invalidate(decision)
        return decision

    def _after_change(
        self, bids: tuple[tuple[float, float], ...], asks: tuple[tuple[float, float], ...]
    ) -> Decision | None:
        """The REJECT decision when the change left the book impossible, else None."""
        if (bids and min(map(_size, bids)) < 0.0) or (asks and min(map(_size, asks)) < 0.0):
            side, price, size = next(
                (side, price, size)
                for side, levels in (("bid", bids), ("ask", asks))
                for price, size in levels
                if size < 0.0
            )
            return Decision(
                Action.REJECT,
                "book_negative_size",
                f"expected a size >= 0, got {size} at {side} {price}",
            )
        state = self.book.state
        if state is BookState.NORMAL:
            return None
        bid, ask = self.book.best_bid, self.book.best_ask
        assert bid is not None  # a side is empty only when NORMAL
        assert ask is not None
        if state is BookState.LOCKED:
            self._counts["locked"] += 1
            return Decision(Action.APPLY, "book_locked", f"best bid == best ask == {bid.price}")
        return Decision(
            Action.REJECT,
            "book_crossed",
            f"expected best bid < best ask, got bid {bid.price} > ask {ask.price}",
        )

    def _hold(self, delta: OrderBookDelta) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self._counts["buffer_dropped"] += 1
        self._buffer.append(delta)
        self._counts["buffered"] += 1

    def _invalidate(self, decision: Decision) -> Decision:
        key = {
            Action.GAP: "gaps",
            Action.CHECKSUM_MISMATCH: "checksum_failures",
        }.get(decision.action, "rejected")
        self._counts[key] += 1
        self.book.invalidate(f"{decision.reason}: {decision.message}")
        return decision

    def statistics(self) -> KeeperStatistics:
        """A frozen snapshot of the counters."""
        return KeeperStatistics(**self._counts)
