"""What continuity answers about a closed bar: an action, the bar to deliver, a request.

Plain classes rather than dataclasses: compiled with mypyc, a dataclass's generated
``__init__`` cost ~400 ns (``object.__setattr__`` per field for a frozen one) against ~35
for a native constructor, and continuity makes a :class:`Decision` for every bar a
backfill or a restart seed releases. Both are records to read, never to change, compared
and hashed by value.
"""

from __future__ import annotations

import enum

from lean_data.models import Resolution, TradeBar

__all__ = ["Action", "Decision", "Request"]


class Action(enum.Enum):
    """What the engine does with a closed bar."""

    DELIVER = "deliver"
    DUPLICATE = "duplicate"
    PARKED = "parked"
    LATE = "late"
    """Older than the series head and never delivered: deliver it flagged, store it."""
    FETCH = "fetch"
    """Parked, and the engine must resolve the series (fetch history or look up storage)."""


class Request:
    """What the engine must find out before a parked series can go on.

    Attributes:
        symbol, resolution: the series.
        feed: the feed whose bar revealed the gap (history is asked from it).
        start, end: the interval to fetch, [start, end) open times; ``start == end`` when
            only storage must be consulted (``seed``).
        missing: open times the calendar expected in the interval (0 for a sparse source
            or a seed lookup).
        reason: ``"gap"``, ``"seed"`` (first bar of a series: look up storage) or
            ``"warmup"``.
        warmup: bars wanted for a warm-up.
    """

    __slots__ = ("end", "feed", "missing", "reason", "resolution", "start", "symbol", "warmup")

    def __init__(
        self,
        symbol: str,
        resolution: Resolution,
        feed: str,
        start: int,
        end: int,
        missing: int,
        reason: str,
        warmup: int = 0,
    ) -> None:
        self.symbol = symbol
        self.resolution = resolution
        self.feed = feed
        self.start = start
        self.end = end
        self.missing = missing
        self.reason = reason
        self.warmup = warmup

    def _key(self) -> tuple[object, ...]:
        return (
            self.symbol, self.resolution, self.feed, self.start, self.end, self.missing,
            self.reason, self.warmup,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Request(symbol={self.symbol!r}, resolution={self.resolution!r}, "
            f"feed={self.feed!r}, start={self.start}, end={self.end}, missing={self.missing}, "
            f"reason={self.reason!r}, warmup={self.warmup})"
        )


class Decision:
    """The answer for one bar: an action, the bar to deliver (revision set), a request."""

    __slots__ = ("action", "bar", "request")

    def __init__(
        self, action: Action, bar: TradeBar | None = None, request: Request | None = None
    ) -> None:
        self.action = action
        self.bar = bar
        self.request = request

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return (self.action, self.bar, self.request) == (other.action, other.bar, other.request)

    def __hash__(self) -> int:
        return hash((self.action, self.bar, self.request))

    def __repr__(self) -> str:
        return f"Decision(action={self.action}, bar={self.bar!r}, request={self.request!r})"
