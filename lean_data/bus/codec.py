"""The bus message format: one item, its feed and its quality verdict, in msgpack.

A message is a msgpack array (floats as float64, so every value, NaN payloads, infinities
and ``-0.0`` included, comes back bit for bit; times are int nanoseconds)::

    [1, kind, feed, [level, [reasons...], message, score], *fields]

- ``1``: the format version; a reader refuses versions it does not know.
- ``kind``: ``"bar"`` (TradeBar), ``"quote"`` (QuoteBar) or ``"tick"`` (Tick).
- the verdict: the :class:`~lean_data.quality.levels.DataQualityLevel` name, the reason
  codes, the message, and the level's score (for readers in other languages; the level
  decides).
- the fields, in the model's declared order, resolutions as int nanoseconds and the
  tick type as its value:

  - bar: symbol, ts_event, open, high, low, close, volume, resolution, ts_recv, closed,
    revision, backfilled
  - quote: symbol, ts_event, bid_open, bid_high, bid_low, bid_close, bid_size, ask_open,
    ask_high, ask_low, ask_close, ask_size, resolution, ts_recv, closed, revision,
    backfilled
  - tick: symbol, ts_event, price, size, tick_type, ts_recv, bid_price, bid_size,
    ask_price, ask_size, exchange, condition, suspicious, trade_id

:func:`decode` checks every field's type and raises one ``ValueError`` naming the first
thing that is wrong; a number where a float is expected is taken (other producers may
write ``100`` for ``100.0``).
"""

from __future__ import annotations

from typing import Any

import msgpack

from lean_data.models import MarketData, QuoteBar, Resolution, Tick, TickType, TradeBar
from lean_data.quality.levels import DataQualityLevel, Verdict

__all__ = ["FORMAT_VERSION", "decode", "encode"]

FORMAT_VERSION = 1

_LEVELS = {level.name: level for level in DataQualityLevel}
_TICK_TYPES = {t.value: t for t in TickType}

# Field layouts after the header: (name, type code). s=str, i=int, f=float, b=bool,
# r=resolution (int ns), t=tick type (str value).
_BAR = (
    ("symbol", "s"), ("ts_event", "i"), ("open", "f"), ("high", "f"), ("low", "f"),
    ("close", "f"), ("volume", "f"), ("resolution", "r"), ("ts_recv", "i"), ("closed", "b"),
    ("revision", "i"), ("backfilled", "b"),
)  # fmt: skip
_QUOTE = (
    ("symbol", "s"), ("ts_event", "i"), ("bid_open", "f"), ("bid_high", "f"),
    ("bid_low", "f"), ("bid_close", "f"), ("bid_size", "f"), ("ask_open", "f"),
    ("ask_high", "f"), ("ask_low", "f"), ("ask_close", "f"), ("ask_size", "f"),
    ("resolution", "r"), ("ts_recv", "i"), ("closed", "b"), ("revision", "i"),
    ("backfilled", "b"),
)  # fmt: skip
_TICK = (
    ("symbol", "s"), ("ts_event", "i"), ("price", "f"), ("size", "f"), ("tick_type", "t"),
    ("ts_recv", "i"), ("bid_price", "f"), ("bid_size", "f"), ("ask_price", "f"),
    ("ask_size", "f"), ("exchange", "s"), ("condition", "s"), ("suspicious", "b"),
    ("trade_id", "s"),
)  # fmt: skip
_LAYOUTS: dict[str, tuple[tuple[str, str], ...]] = {"bar": _BAR, "quote": _QUOTE, "tick": _TICK}
_MODELS: dict[str, Any] = {"bar": TradeBar, "quote": QuoteBar, "tick": Tick}
_HEADER = 4  # version, kind, feed, verdict

_packb = msgpack.Packer(use_bin_type=True, use_single_float=False, autoreset=True).pack


def _verdict_row(verdict: Verdict) -> list[Any]:
    return [verdict.level.name, list(verdict.reasons), verdict.message, verdict.level.value]


def encode(feed: str, item: MarketData, verdict: Verdict) -> bytes:
    """Return the message carrying ``item`` from ``feed`` with its ``verdict``.

    Raises:
        TypeError: ``item`` is not a TradeBar, QuoteBar or Tick.
    """
    head = [FORMAT_VERSION, item.kind, feed, _verdict_row(verdict)]
    if type(item) is TradeBar:
        packed: bytes = _packb(
            [*head, item.symbol, item.ts_event, item.open, item.high, item.low, item.close,
             item.volume, item.resolution.nanos, item.ts_recv, item.closed, item.revision,
             item.backfilled]
        )  # fmt: skip
        return packed
    if isinstance(item, TradeBar | QuoteBar | Tick):
        fields = []
        for name, code in _LAYOUTS[item.kind]:
            value = getattr(item, name)
            if code == "r":
                value = value.nanos
            elif code == "t":
                value = value.value
            fields.append(value)
        packed = _packb([*head, *fields])
        return packed
    raise TypeError(f"encode() takes a TradeBar, QuoteBar or Tick, got {type(item).__name__}")


def decode(data: bytes) -> tuple[str, MarketData, Verdict]:
    """Return the (feed, item, verdict) a message carries.

    Raises:
        ValueError: the message is not msgpack, has an unknown version or kind, or a field
            is missing, extra or of the wrong type (the error names it).
    """
    try:
        row = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types (ExtraData, FormatError, ...)
        raise ValueError(f"bus message: not msgpack ({type(exc).__name__}: {exc})") from None
    if not isinstance(row, list) or len(row) < _HEADER:
        raise ValueError(
            f"bus message: expected an array [version, kind, feed, verdict, ...], "
            f"got {type(row).__name__}"
        )
    version, kind, feed, verdict_row = row[:_HEADER]
    if version != FORMAT_VERSION or type(version) is not int:
        raise ValueError(f"bus message: format version {version!r} (this reader knows 1)")
    layout = _LAYOUTS.get(kind) if isinstance(kind, str) else None
    if layout is None:
        raise ValueError(f"bus message: kind {kind!r}, expected one of bar, quote, tick")
    if not isinstance(feed, str) or not feed:
        raise ValueError(f"bus message: feed {feed!r}, expected a non-empty string")
    verdict = _verdict(verdict_row)
    values = row[_HEADER:]
    if len(values) != len(layout):
        raise ValueError(f"bus message: a {kind} has {len(layout)} fields, found {len(values)}")
    fields = [
        _field(kind, name, code, value) for (name, code), value in zip(layout, values, strict=True)
    ]
    return feed, _MODELS[kind](*fields), verdict


def _verdict(row: Any) -> Verdict:
    if not isinstance(row, list) or len(row) != 4:
        raise ValueError(
            f"bus message: verdict {row!r}, expected [level, [reasons], message, score]"
        )
    name, reasons, message, score = row
    level = _LEVELS.get(name) if isinstance(name, str) else None
    if level is None:
        raise ValueError(f"bus message: quality level {name!r}, expected one of {list(_LEVELS)}")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise ValueError(f"bus message: verdict reasons {reasons!r}, expected a list of strings")
    if not isinstance(message, str):
        raise ValueError(f"bus message: verdict message {message!r}, expected a string")
    if type(score) not in (float, int):
        raise ValueError(f"bus message: verdict score {score!r}, expected a number")
    return Verdict(level, tuple(reasons), message)


def _field(kind: str, name: str, code: str, value: Any) -> Any:
    kind_of = type(value)
    if code == "f":
        if kind_of is float:
            return value
        if kind_of is int:
            return float(value)
    elif code == "i":
        if kind_of is int:
            return value
    elif code == "s":
        if kind_of is str:
            return value
    elif code == "b":
        if kind_of is bool:
            return value
    elif code == "r":
        if kind_of is int and value >= 0:
            return Resolution(value)
    elif code == "t" and kind_of is str and value in _TICK_TYPES:
        return _TICK_TYPES[value]
    expected = {
        "f": "a float", "i": "an int", "s": "a string", "b": "a bool",
        "r": "a resolution in int ns (>= 0)", "t": f"a tick type {sorted(_TICK_TYPES)}",
    }[code]  # fmt: skip
    raise ValueError(f"bus message: {kind} field {name} is {value!r}, expected {expected}")
