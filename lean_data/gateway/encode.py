"""What the gateway sends: one item as a plain dict, then as a JSON or msgpack frame.

Pure functions, no I/O. Every frame is a map with ``type`` (``bar``, ``quote``, ``tick``),
``feed``, ``symbol``, ``ts_event`` / ``ts_recv`` (int ns since the epoch, UTC), the item's
fields under their model names, and the verdict: ``quality`` (the level's name),
``score`` (its value in [0, 1]) and ``reasons`` (a list of reason codes, empty when clean).

Floats that are not finite (a bar's ``volume`` is NaN when the source has none) are sent
as ``null`` in both formats, so every JSON frame is standard JSON (``JSON.parse`` accepts
it) and a msgpack reader sees the same shape.

A JavaScript reader should know that ``ts_event`` in ns exceeds 2**53: ``JSON.parse`` keeps
it to about 0.25 µs, enough for display; read msgpack (int64) where every ns matters.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import orjson
from aiohttp import WSMsgType

from lean_data.models import MarketData, QuoteBar, Tick, TradeBar
from lean_data.quality.levels import Verdict

__all__ = ["FORMATS", "Frame", "encode", "item_fields", "series_key"]

FORMATS = ("json", "msgpack")
"""The wire formats a client may ask for: JSON text frames or msgpack binary frames."""

Frame = tuple[WSMsgType, bytes]
"""A websocket frame ready to send: its opcode (TEXT for JSON, BINARY for msgpack) and bytes,
encoded once per item and format and shared by every client that receives it."""

_isfinite = math.isfinite


def _num(value: float) -> float | None:
    return value if _isfinite(value) else None


def series_key(item: MarketData) -> str:
    """Return the key conflation keeps one item per: kind, symbol and bar resolution."""
    resolution = getattr(item, "resolution", None)
    return f"{item.kind}:{item.symbol}:{resolution}" if resolution else f"tick:{item.symbol}"


def item_fields(feed: str, item: MarketData, verdict: Verdict) -> dict[str, Any]:
    """Return ``item`` with its feed and verdict as the dict a client receives."""
    out: dict[str, Any] = {"type": item.kind, "feed": feed, "symbol": item.symbol}
    out["ts_event"] = item.ts_event
    out["ts_recv"] = item.ts_recv
    if isinstance(item, TradeBar):
        out.update(
            resolution=item.resolution.name,
            open=_num(item.open),
            high=_num(item.high),
            low=_num(item.low),
            close=_num(item.close),
            volume=_num(item.volume),
            closed=item.closed,
            revision=item.revision,
            backfilled=item.backfilled,
        )
    elif isinstance(item, QuoteBar):
        out["resolution"] = item.resolution.name
        for side in ("bid", "ask"):
            for part in ("open", "high", "low", "close", "size"):
                name = f"{side}_{part}"
                out[name] = _num(getattr(item, name))
        out.update(closed=item.closed, revision=item.revision, backfilled=item.backfilled)
    elif isinstance(item, Tick):
        out.update(
            tick_type=item.tick_type.value,
            price=_num(item.price),
            size=_num(item.size),
            bid_price=_num(item.bid_price),
            bid_size=_num(item.bid_size),
            ask_price=_num(item.ask_price),
            ask_size=_num(item.ask_size),
            exchange=item.exchange,
            condition=item.condition,
            trade_id=item.trade_id,
        )
    out["quality"] = verdict.level.name
    out["score"] = verdict.level.value
    out["reasons"] = list(verdict.reasons)
    return out


def encode(message: dict[str, Any], fmt: str) -> Frame:
    """Return ``message`` as a JSON text frame or a msgpack binary frame.

    JSON is written by orjson (UTF-8 bytes, sent as they are in a TEXT frame: no per-client
    re-encoding), which also turns any stray NaN or infinity into ``null``.
    """
    if fmt == "msgpack":
        packed: bytes = msgpack.packb(message, use_bin_type=True)
        return WSMsgType.BINARY, packed
    return WSMsgType.TEXT, orjson.dumps(message)
