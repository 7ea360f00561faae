"""Row codecs: a model into the row tuple storage writes, and a stored row back into a model.

The column orders are :mod:`lean_data.storage.schema`'s (``BAR_COLUMNS``, ``QUOTE_COLUMNS``,
``TICK_COLUMNS``, and the ``SELECT`` lists for reading back). These functions run once per
stored or read row, so they are written for speed: plain tuples, no per-row lookups that
can be done once (resolutions are memoised by their stored text).

SQLite stores a float NaN as NULL, so every REAL market column reads NULL back as ``nan``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple, NoReturn

from lean_data.inbox import Inbox
from lean_data.models import QuoteBar, Resolution, Tick, TickType, TradeBar
from lean_data.native import twin
from lean_data.quality.levels import DataQualityLevel, Verdict, level_index
from lean_data.slots import (
    BAR,
    BAR_BACKFILLED,
    BAR_CLOSE,
    BAR_CLOSED,
    BAR_HIGH,
    BAR_LOW,
    BAR_OPEN,
    BAR_RESOLUTION,
    BAR_REVISION,
    BAR_SYMBOL,
    BAR_TS_EVENT,
    BAR_TS_RECV,
    BAR_VOLUME,
    TICK,
    TICK_ASK_PRICE,
    TICK_ASK_SIZE,
    TICK_BID_PRICE,
    TICK_BID_SIZE,
    TICK_CONDITION,
    TICK_EXCHANGE,
    TICK_PRICE,
    TICK_SIZE,
    TICK_SUSPICIOUS,
    TICK_SYMBOL,
    TICK_TRADE_ID,
    TICK_TS_EVENT,
    TICK_TS_RECV,
    TICK_TYPE,
)
from lean_data.storage.sanitize import safe_text
from lean_data.storage.schema import BARS, QUOTE_BARS, TICKS, Row


def quality_fields(quality: Verdict | None) -> tuple[Any, ...]:
    """Return (score, level name, comma-joined reasons) for a verdict; NULLs for none.

    Typed as a tuple of any length: compiled, a fixed-length tuple is returned unpacked and
    built again where it is passed on (a new 3-tuple for every stored row), where this
    returns the level's own tuple, made once."""
    if quality is None:
        return _NO_QUALITY
    level = quality.level
    reasons = quality.reasons
    if not reasons:  # most rows: the level's own (score, name, "") made once
        return _LEVEL_FIELDS[level_index(level)]
    # _value_ / _name_ are Enum's documented member attributes; .value/.name are slow
    # descriptors (and compiled, each is an instance-dict lookup: level_index is not)
    return (level._value_, level._name_, ",".join(reasons) if reasons else "")


# typed as tuples of any length: compiled, each is kept as the object (see quality_fields)
_NO_QUALITY: Final[tuple[Any, ...]] = (None, None, "")
# C statics for classes of pure modules, used per item (see lean_data.quality.screen)
_TRADE_BAR: Final = TradeBar
_TICK: Final = Tick
_QUOTE_BAR: Final = QuoteBar
_BAR: Final = BAR  # C statics, not module-dict lookups per use (see quality/screen.py)
_TICK_FIELDS: Final = TICK
_TICK_TYPE: Final = TickType
_LEVEL_FIELDS: Final[tuple[tuple[Any, ...], ...]] = tuple(
    (level._value_, level._name_, "") for level in DataQualityLevel
)


def bar_row(bar: TradeBar, feed: str, quality: Verdict | None, ts_recv: Any) -> Row:
    """Return the ``bars`` row for ``bar`` in :data:`BAR_COLUMNS` order."""
    return _bar_row(_BAR(bar), feed, quality, ts_recv)


def _bar_row(f: tuple[Any, ...], feed: str, quality: Verdict | None, ts_recv: Any) -> Row:
    return _BAR_ROW(f, feed, quality_fields(quality), ts_recv)


def bar_row_of(f: tuple[Any, ...], feed: str, quality: tuple[Any, Any, Any], ts_recv: Any) -> Row:
    """Return the ``bars`` row of a trade bar's fields (``f``, as :data:`BAR` reads them) and
    its :func:`quality_fields` (``quality``). With the compiled package its C twin
    (``lean_data._rows.bar_row``) builds it already untracked by the garbage collector when
    it holds only plain values (as :data:`lean_data.inbox.LEAF` would leave it).

    Raises:
        AttributeError: the bar's resolution has no ``name`` (an INVALID bar kept).
    """
    # untyped, as an INVALID bar kept (store_invalid) may hold any value, which the compiled
    # build would refuse at a typed read
    score, level, reasons = quality
    resolution: Any = f[BAR_RESOLUTION]
    return (
        feed,
        f[BAR_SYMBOL],
        resolution.name,
        f[BAR_TS_EVENT],
        f[BAR_OPEN],
        f[BAR_HIGH],
        f[BAR_LOW],
        f[BAR_CLOSE],
        f[BAR_VOLUME],
        f[BAR_CLOSED],
        f[BAR_REVISION],
        f[BAR_BACKFILLED],
        score,
        level,
        reasons,
        ts_recv,
    )


_BAR_ROW: Final = twin("lean_data._rows", "bar_row", bar_row_of)


def quote_row(quote: QuoteBar, feed: str, quality: Verdict | None, ts_recv: Any) -> Row:
    """Return the ``quote_bars`` row for ``quote`` in :data:`QUOTE_COLUMNS` order."""
    score, level, reasons = quality_fields(quality)
    q: Any = quote  # untyped reads, as in bar_row
    return (
        feed,
        q.symbol,
        q.resolution.name,
        q.ts_event,
        q.bid_open,
        q.bid_high,
        q.bid_low,
        q.bid_close,
        q.bid_size,
        q.ask_open,
        q.ask_high,
        q.ask_low,
        q.ask_close,
        q.ask_size,
        q.closed,
        q.revision,
        q.backfilled,
        score,
        level,
        reasons,
        ts_recv,
    )


def tick_row(tick: Tick, feed: str, quality: Verdict | None, ts_recv: Any) -> Row:
    """Return the ``ticks`` row for ``tick`` in :data:`TICK_COLUMNS` order."""
    return _tick_row(_TICK_FIELDS(tick), feed, quality, ts_recv)


def _tick_row(f: tuple[Any, ...], feed: str, quality: Verdict | None, ts_recv: Any) -> Row:
    # a tick's fields read in one call, untyped, as in _bar_row
    score, level, reasons = quality_fields(quality)
    tick_type: Any = f[TICK_TYPE]
    # a member's _value_ (Enum's documented attribute; .value is a slow descriptor); any
    # other value (an INVALID tick kept) is asked for .value, as it always was
    value = tick_type._value_ if type(tick_type) is _TICK_TYPE else tick_type.value
    return (
        feed,
        f[TICK_SYMBOL],
        f[TICK_TS_EVENT],
        value,
        f[TICK_PRICE],
        f[TICK_SIZE],
        f[TICK_BID_PRICE],
        f[TICK_BID_SIZE],
        f[TICK_ASK_PRICE],
        f[TICK_ASK_SIZE],
        f[TICK_EXCHANGE],
        f[TICK_CONDITION],
        f[TICK_SUSPICIOUS],
        f[TICK_TRADE_ID],
        score,
        level,
        reasons,
        ts_recv,
    )


# One NaN object for every NULL read back, in both builds (typed Any: compiled, a float would
# be unboxed and boxed again, a new object each time): bars read back compare equal, as a
# NaN compares equal to itself only as the same object.
_NAN: Final[Any] = math.nan
_RESOLUTIONS: Final[dict[str, Resolution]] = {}


def resolution_from_text(text: str) -> Resolution:
    """Return the resolution stored as ``text`` (``str(resolution)``), memoised."""
    found = _RESOLUTIONS.get(text)
    if found is None:
        if text.endswith("ns") and text[:-2].isdigit():
            found = Resolution(int(text[:-2]))  # sub-second periods; parse() lacks "ns"
        else:
            found = Resolution.parse(text)
        _RESOLUTIONS[text] = found
    return found


def _f(value: Any) -> Any:
    return _NAN if value is None else value


def bar_from_row(r: Sequence[Any]) -> TradeBar:
    """Return the TradeBar for a ``SELECT["bars"]`` row (NULL prices read back as nan)."""
    return TradeBar(
        *(r[0], r[1], _f(r[2]), _f(r[3]), _f(r[4]), _f(r[5]), _f(r[6])),
        resolution_from_text(r[7]),
        *(r[8], bool(r[9]), r[10], bool(r[11])),
    )


class ScoredBar(NamedTuple):
    """A stored trade bar with its feed and the verdict stored with it."""

    feed: str
    bar: TradeBar
    score: float | None  # None: saved without a verdict (history, built bars)
    level: str | None  # a DataQualityLevel name, or None
    reasons: str  # comma-separated reason codes, "" for none


def scored_bar_from_row(r: Sequence[Any]) -> ScoredBar:
    """Return the ScoredBar for a ``SELECT["scored_bars"]`` row."""
    return ScoredBar(r[12], bar_from_row(r), r[13], r[14], r[15] or "")


def quote_from_row(r: Sequence[Any]) -> QuoteBar:
    """Return the QuoteBar for a ``SELECT["quote_bars"]`` row (NULL reads back as nan)."""
    bid = (_f(r[2]), _f(r[3]), _f(r[4]), _f(r[5]), _f(r[6]))
    ask = (_f(r[7]), _f(r[8]), _f(r[9]), _f(r[10]), _f(r[11]))
    return QuoteBar(
        r[0], r[1], *bid, *ask, resolution_from_text(r[12]), r[13], bool(r[14]), r[15], bool(r[16])
    )


def tick_from_row(r: Sequence[Any]) -> Tick:
    """Return the Tick for a ``SELECT["ticks"]`` row (NULL reads back as nan)."""
    return Tick(
        *(r[0], r[1], _f(r[2]), _f(r[3]), TickType(r[4]), r[5]),
        *(_f(r[6]), _f(r[7]), _f(r[8]), _f(r[9])),
        *(r[10], r[11], bool(r[12]), r[13]),
    )


RowBuilder = Callable[[Any, str, Verdict | None, int], Row]
ROW_BUILDERS: Final[dict[type, tuple[int, RowBuilder]]] = {
    TradeBar: (BARS, bar_row),
    QuoteBar: (QUOTE_BARS, quote_row),
    Tick: (TICKS, tick_row),
}


def market_entry(
    item: object,
    feed: str,
    quality: Verdict | None,
    clock: Callable[[], int],
    bar: tuple[Any, ...] | None = None,
    tick: tuple[Any, ...] | None = None,
) -> tuple[int, Row]:
    """Return the table and row a store queues for ``item`` (``clock()`` stamps one that
    has no receive time). ``bar`` are a TradeBar's fields (:data:`BAR`), ``tick`` a Tick's
    (:data:`TICK`), when the caller read them already (the pipeline has): not read again.

    Raises:
        TypeError: ``item`` is not a TradeBar, QuoteBar or Tick (nor a subclass of one).
    """
    fields: Any = item
    kind = type(item)
    # the models by identity, each builder called directly (a compiled call); through
    # ROW_BUILDERS, a dict lookup and a call of a Python object
    if bar is not None or kind is _TRADE_BAR:
        bar = _BAR(item) if bar is None else bar
        return BARS, _bar_row(bar, feed, quality, bar[BAR_TS_RECV] or clock())
    if tick is not None or kind is _TICK:
        tick = _TICK_FIELDS(item) if tick is None else tick
        return TICKS, _tick_row(tick, feed, quality, tick[TICK_TS_RECV] or clock())
    if kind is _QUOTE_BAR:
        return QUOTE_BARS, quote_row(fields, feed, quality, fields.ts_recv or clock())
    table, build = row_builder_for_subclass(item)
    return table, build(item, feed, quality, fields.ts_recv or clock())


class MarketIntake:
    """Where a store's market data enters its write queue: one compiled call per item.

    It holds the store's one ``accepting`` flag (the store reads and sets it through its
    own ``_accepting``), so the pipeline, compiled too, queues a delivered item with a
    native call instead of a keyword call of the store's method; both end here.

    Args:
        queue: the store's write queue.
        clock: wall clock (ns) for an item without a receive time.
        refuse: raises the store's error for a save while it does not accept.
    """

    def __init__(
        self, queue: Inbox[int], clock: Callable[[], int], refuse: Callable[[], NoReturn]
    ) -> None:
        self.accepting = False
        self._queue = queue
        self._clock = clock
        self._refuse = refuse

    def offer(
        self,
        item: object,
        feed: str,
        quality: Verdict | None,
        fields: tuple[Any, ...] | None = None,
        tick: tuple[Any, ...] | None = None,
    ) -> bool:
        """Queue :func:`market_entry`'s table and row without waiting; False when the queue
        is full (nothing queued then). ``fields`` and ``tick`` as :func:`market_entry` takes
        them.

        Raises:
            TypeError: ``item`` is not a TradeBar, QuoteBar or Tick (nor a subclass of one).
            EngineStateError, EngineClosedError, StorageError: the store does not accept
                (``refuse``'s error).
        """
        if not self.accepting:
            self._refuse()
        table, row = market_entry(item, feed, quality, self._clock, fields, tick)
        return self._queue.offer_row(table, row)


def take_entries(
    queue: Inbox[int], groups: list[list[Row]], count: int, limit: int
) -> tuple[int, tuple[int, Any] | None]:
    """Move queued rows into ``groups`` (by table) until ``count`` reaches ``limit`` or the
    queue is empty, without waiting; stop at a control entry (a negative table) and return
    it with the new count. The storage writer's take (:meth:`Inbox.take_rows`)."""
    taken, control = queue.take_rows(groups, limit - count)
    return count + taken, control


def statement_values(
    rows: list[Row], start: int, end: int, ids: dict[Any, int] | None = None
) -> list[Any]:
    """Return the values of ``rows[start:end]`` in one list: the parameters of a multi-row
    statement, flags (``True``/``False``) as 1 and 0. With ``ids``, each row's first three
    values (a trade bar's feed, symbol and resolution) become the one series id they map to.

    Raises:
        KeyError: a row's series is not in ``ids``.
        TypeError: a row's series texts are of no hashable type.
    """
    values: list[Any] = []
    if ids is None:
        for i in range(start, end):
            values.extend(rows[i])
    else:
        for i in range(start, end):
            row = rows[i]
            values.append(ids[row[0], row[1], row[2]])
            values.extend(row[3:])
    # sqlite3 binds an exact int, float or str at once and anything else through its
    # adapter lookup: a bool costs ~0.35 µs that way, with the GIL held, where the event
    # loop waits for it. SQLite stores a flag as 1 or 0 either way.
    for k in range(len(values)):
        value = values[k]
        if value is True:
            values[k] = 1
        elif value is False:
            values[k] = 0
    return values


STATEMENT_VALUES: Final = twin("lean_data._rows", "statement_values", statement_values)
"""What a backend calls for a statement's parameters: :func:`statement_values`, in C
when the package was built with its C modules."""


_DERIVATIVE_SAVERS: Final = {
    "FundingRate": "save_funding_rates",
    "OpenInterest": "save_open_interest",
    "MarkPrice": "save_mark_prices",
    "Liquidation": "save_liquidations",
}


def row_builder_for_subclass(item: object) -> tuple[int, RowBuilder]:
    """Return the table and row builder for a subclass of a model (or raise TypeError)."""
    for cls, found in ROW_BUILDERS.items():
        if isinstance(item, cls):
            return found
    saver = _DERIVATIVE_SAVERS.get(type(item).__name__)
    if saver is not None:
        raise TypeError(
            f"a {type(item).__name__} is a derivatives record, not market data: "
            f"store it with {saver}()"
        )
    raise TypeError(f"expected a TradeBar, QuoteBar or Tick, got {type(item).__name__}")


ERROR_KEYS: Final = ("ts_ns", "kind", "feed", "symbol", "message", "detail")
"""Keys of an errors row read back as a dict, in the column order of ``ERRORS_COLUMNS``."""


def error_row(ts: int, kind: str, feed: str, symbol: str, message: str, detail: str) -> Row:
    """Return the ``errors`` row; text that is not valid UTF-8 gets backslash escapes."""
    return (ts, *map(safe_text, (kind, feed, symbol, message, detail)))


def metrics_payload(metrics: Mapping[str, Any]) -> str:
    """Return a metrics snapshot as JSON text (NaN becomes null).

    Values orjson cannot encode are stored as their text; a lone surrogate is escaped and an
    int beyond 64 bits becomes text.
    """
    import orjson  # loaded with the first snapshot stored: import lean_data stays light

    try:
        payload = orjson.dumps(metrics, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # a lone surrogate, an int beyond 64 bits
        payload = orjson.dumps(_jsonable(metrics), default=str, option=orjson.OPT_NON_STR_KEYS)
    return payload.decode()


def _jsonable(value: Any) -> Any:
    """Return ``value`` with text made valid UTF-8 and ints beyond 64 bits made text."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, Mapping):
        return {_jsonable(k) if isinstance(k, str) else k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
