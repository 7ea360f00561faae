"""Per-venue book integrity rules as pure "sequencers": for each message, may it be applied?

A sequencer holds only the venue's sequence state (no book, no clock, no I/O). The
:class:`~lean_data.depth.keeper.BookKeeper` asks it about every delta **before** applying
it (:meth:`Sequencer.check`) and, for venues that send a checksum, **after**
(:meth:`Sequencer.verify`). Each answer is a :class:`Decision`:

- ``APPLY``: in sequence, apply it;
- ``SKIP``: already covered by the snapshot or an earlier message (stale), drop it;
- ``BUFFER``: no snapshot to apply it to yet, keep it for the re-sync;
- ``GAP``: an update is missing or out of order; ``message`` says which id was expected
  and which came;
- ``CHECKSUM_MISMATCH``: the venue's checksum of the book after the message differs from
  ours;
- ``REJECT``: the message left the book impossible (crossed, a negative size), decided by
  the keeper.

The rules, with ``last`` the last update id applied and ``L`` the snapshot's id:

========================  ======================================  ==========================
venue                     first delta after the snapshot          every later delta
========================  ======================================  ==========================
Binance spot / US         drop ``u <= L``; need ``U <= L+1 <= u`` ``U == last + 1``
Binance USD-M / COIN-M    drop ``u < L``; need ``U <= L <= u``    ``pu == last``
Bybit v5                  ``u == L + 1`` (snapshot ``u`` is L)    ``u == last + 1``
Kraken v1                 (no ids)                                CRC32 of the top 10 == ``c``
========================  ======================================  ==========================

Later deltas with ``u <= last`` are stale (SKIP); anything else is a GAP.
"""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass
from typing import ClassVar

from lean_data.book import OrderBookDelta, OrderBookSnapshot
from lean_data.depth.book import OrderBook
from lean_data.quality.levels import DataQualityLevel, Verdict

__all__ = [
    "Action",
    "BinanceFuturesSequencer",
    "BinanceSpotSequencer",
    "BybitSequencer",
    "Decision",
    "KrakenChecksumSequencer",
    "Sequencer",
    "kraken_checksum",
]


class Action(enum.Enum):
    """What to do with one book message."""

    APPLY = "apply"
    SKIP = "skip"
    BUFFER = "buffer"
    GAP = "gap"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    REJECT = "reject"


_LEVELS = {
    Action.APPLY: DataQualityLevel.EXCELLENT,
    Action.SKIP: DataQualityLevel.GOOD,
    Action.BUFFER: DataQualityLevel.FAIR,
    Action.GAP: DataQualityLevel.INVALID,
    Action.CHECKSUM_MISMATCH: DataQualityLevel.INVALID,
    Action.REJECT: DataQualityLevel.INVALID,
}


@dataclass(slots=True, frozen=True)
class Decision:
    """The answer about one message.

    Attributes:
        action: what to do.
        reason: a reason code (``book_gap``, ``book_checksum``, ``book_crossed``,
            ``book_negative_size``, ``book_stale``, ``book_unsynced``), "" for APPLY.
        message: what was expected and what came, for people.
    """

    action: Action
    reason: str = ""
    message: str = ""

    @property
    def verdict(self) -> Verdict:
        """The quality verdict: INVALID for GAP, CHECKSUM_MISMATCH and REJECT."""
        level = _LEVELS[self.action]
        if self.action is Action.APPLY and self.reason:  # applied but flagged (book_locked)
            level = DataQualityLevel.POOR
        return Verdict(level, (self.reason,) if self.reason else (), self.message)

    @property
    def invalidates(self) -> bool:
        """True when the book can no longer be trusted after this message."""
        return _LEVELS[self.action] is DataQualityLevel.INVALID


APPLIED = Decision(Action.APPLY)
_AWAIT = Decision(Action.BUFFER, "book_unsynced", "no snapshot to apply it to yet")


def _stale(message: str) -> Decision:
    return Decision(Action.SKIP, "book_stale", message)


def _gap(message: str) -> Decision:
    return Decision(Action.GAP, "book_gap", message)


class Sequencer:
    """The rules of one venue; this base applies everything (no ids, no checksum).

    Attributes:
        replays_buffer: True when deltas buffered before a snapshot can be placed against
            it by their ids; False when the snapshot supersedes them (Kraken: no ids).
    """

    replays_buffer: ClassVar[bool] = True

    def __init__(self) -> None:
        self.snapshot_sequence: int | None = None  # None: no snapshot yet
        self.last: int | None = None  # last update id applied since the snapshot
        self.max_depth: int | None = None
        """Levels per side the venue keeps the book to (Kraken's subscribed depth: it sends
        no removal for a level pushed out of it); the keeper's book truncates to it."""

    def reset(self, snapshot: OrderBookSnapshot) -> None:
        """Start again from ``snapshot``."""
        self.snapshot_sequence = snapshot.sequence
        self.last = None

    def check(self, delta: OrderBookDelta) -> Decision:
        """Decide before applying ``delta``; records it as applied on APPLY."""
        return APPLIED if self.snapshot_sequence is not None else _AWAIT

    def verify(self, book: OrderBook, delta: OrderBookDelta) -> Decision:
        """Decide after ``delta`` was applied to ``book`` (checksums); APPLY by default."""
        return APPLIED


class BinanceSpotSequencer(Sequencer):
    """Binance spot and Binance.US diff depth (``U``/``u``), synced from REST ``/depth``."""

    def check(self, delta: OrderBookDelta) -> Decision:
        snapshot, last = self.snapshot_sequence, self.last
        if snapshot is None:
            return _AWAIT
        first, final = delta.first_sequence, delta.last_sequence
        if last is None:
            if final <= snapshot:
                return _stale(f"u={final} <= lastUpdateId={snapshot}")
            if first <= snapshot + 1:
                self.last = final
                return APPLIED
            return _gap(
                f"first update after the snapshot must have U <= {snapshot + 1} <= u, "
                f"got U={first}, u={final}"
            )
        if first == last + 1:
            self.last = final
            return APPLIED
        if final <= last:
            return _stale(f"u={final} <= last applied u={last}")
        return _gap(f"expected U={last + 1}, got U={first} (u={final})")


class BinanceFuturesSequencer(Sequencer):
    """Binance USD-M and COIN-M futures diff depth (``U``/``u``/``pu``), synced from REST."""

    def check(self, delta: OrderBookDelta) -> Decision:
        snapshot, last = self.snapshot_sequence, self.last
        if snapshot is None:
            return _AWAIT
        first, final, prev = delta.first_sequence, delta.last_sequence, delta.prev_sequence
        if last is None:
            if final < snapshot:
                return _stale(f"u={final} < lastUpdateId={snapshot}")
            if first <= snapshot:
                self.last = final
                return APPLIED
            return _gap(
                f"first update after the snapshot must have U <= {snapshot} <= u, "
                f"got U={first}, u={final}"
            )
        if prev == last:
            self.last = final
            return APPLIED
        if final <= last:
            return _stale(f"u={final} <= last applied u={last}")
        return _gap(f"expected pu={last}, got pu={prev} (U={first}, u={final})")


class BybitSequencer(Sequencer):
    """Bybit v5 ``orderbook.<depth>.<symbol>``: ``u`` counts messages; a snapshot resets.

    A message with ``u == 1`` is a snapshot after a service restart (the parser turns it
    into an :class:`OrderBookSnapshot`).
    """

    def check(self, delta: OrderBookDelta) -> Decision:
        snapshot = self.snapshot_sequence
        if snapshot is None:
            return _AWAIT
        last = snapshot if self.last is None else self.last
        update = delta.last_sequence
        if update == last + 1:
            self.last = update
            return APPLIED
        if update <= last:
            return _stale(f"u={update} <= last applied u={last}")
        return _gap(f"expected u={last + 1}, got u={update}")


def kraken_checksum(book: OrderBook, price_decimals: int, size_decimals: int) -> int:
    """Kraken v1's CRC32 of the top 10 levels (asks low to high, then bids high to low).

    Each price and volume is written with the pair's fixed decimals, the ``.`` removed and
    leading zeros stripped; the 40 strings are concatenated and CRC32'd (unsigned).
    """
    parts: list[str] = []
    for levels in (book.asks(10), book.bids(10)):
        for price, size in levels:
            parts.append(f"{price:.{price_decimals}f}".replace(".", "").lstrip("0"))
            parts.append(f"{size:.{size_decimals}f}".replace(".", "").lstrip("0"))
    return zlib.crc32("".join(parts).encode("ascii"))


class KrakenChecksumSequencer(Sequencer):
    """Kraken WS v1 ``book``: no ids; the ``c`` CRC32 is checked after every update.

    Args:
        price_decimals: the pair's price decimals (the digits after the point on the wire).
        size_decimals: the volume decimals (8 on Kraken v1).
        depth: the subscribed book depth (10, 25, 100, 500 or 1000): the book is kept to it.
    """

    replays_buffer: ClassVar[bool] = False

    def __init__(self, price_decimals: int, size_decimals: int, depth: int | None = None) -> None:
        super().__init__()
        self.price_decimals = price_decimals
        self.size_decimals = size_decimals
        self.max_depth = depth

    def verify(self, book: OrderBook, delta: OrderBookDelta) -> Decision:
        expected = delta.checksum
        if expected is None:
            return APPLIED
        got = kraken_checksum(book, self.price_decimals, self.size_decimals)
        if got == expected:
            return APPLIED
        return Decision(
            Action.CHECKSUM_MISMATCH,
            "book_checksum",
            f"expected checksum {expected} from the venue, computed {got} from the book",
        )
