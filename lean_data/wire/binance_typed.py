"""Typed schemas of Binance combined-stream frames, decoded and shape-checked in C (msgspec).

The fast path of :func:`lean_data.wire.binance.parse_message`: one
``msgspec.json.Decoder`` call turns a well-formed ``{"stream": ..., "data": {...}}`` frame
of a ``kline``, ``aggTrade``, ``bookTicker``, ``trade`` or ``depthUpdate`` event into the
structs below, or raises. The schemas are closed on purpose (``forbid_unknown_fields``):
every key Binance sends is declared with its JSON type, so the decoder reads and checks
every value (UTF-8 strings, integers within int64, booleans) and never skips one. A frame
with an extra key, a value of another type, an integer beyond int64, another event, a
reply or anything malformed raises :class:`msgspec.DecodeError` (or
:class:`msgspec.ValidationError`), and the caller decodes it again on the checked dict
path, which owns every error message. Skipping unknown keys would be faster by a little
but would accept frames the checked path rejects (``1e400`` or invalid UTF-8 in an
ignored key).

Prices and sizes stay the venue's decimal strings here; the caller converts them with
:func:`lean_data.wire.numbers.decimal_float`, which reads them as the checked path's
``float()`` does, in C.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import UNSET, DecodeError, Meta, Struct, UnsetType, field
from msgspec.json import Decoder

__all__ = [
    "AggTradeEvent",
    "BookTickerEvent",
    "DepthUpdateEvent",
    "Envelope",
    "KlineBody",
    "KlineEvent",
    "SpotBookTicker",
    "SpotBookTickerEnvelope",
    "TradeEvent",
    "decode_envelope",
    "decode_spot_book_envelope",
]

# orjson (the checked path) gives int only within [-2**63, 2**64 - 1] and float beyond;
# msgspec would give int. Bounding at int64 keeps the typed path on the safe side.
Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
OptInt = Int | UnsetType
OptStr = str | UnsetType
OptBool = bool | UnsetType
Levels = list[tuple[str, str]]


class KlineBody(Struct, forbid_unknown_fields=True, gc=False):
    """The ``k`` object of a kline event (the fields the bar uses, then the rest)."""

    t: Int
    o: str
    h: str
    low: str = field(name="l")
    c: str
    v: str
    x: bool
    s: str
    i: str
    T: OptInt = UNSET
    f: OptInt = UNSET
    L: OptInt = UNSET
    n: OptInt = UNSET
    q: OptStr = UNSET
    V: OptStr = UNSET
    Q: OptStr = UNSET
    B: OptStr = UNSET


class KlineEvent(Struct, tag_field="e", tag="kline", forbid_unknown_fields=True, gc=False):
    """``{"e": "kline", "k": {...}}`` (spot, US, futures)."""

    event: ClassVar[str] = "kline"

    k: KlineBody
    E: OptInt = UNSET
    s: OptStr = UNSET


class AggTradeEvent(Struct, tag_field="e", tag="aggTrade", forbid_unknown_fields=True, gc=False):
    """``{"e": "aggTrade", ...}``; ``M`` is spot only."""

    event: ClassVar[str] = "aggTrade"

    a: Int
    T: Int
    p: str
    q: str
    m: bool
    s: str
    E: OptInt = UNSET
    f: OptInt = UNSET
    last: OptInt = field(name="l", default=UNSET)
    M: OptBool = UNSET


class BookTickerEvent(
    Struct, tag_field="e", tag="bookTicker", forbid_unknown_fields=True, gc=False
):
    """Futures ``{"e": "bookTicker", ...}``; ``ps`` (pair) is coin-margined only."""

    event: ClassVar[str] = "bookTicker"

    s: str
    b: str
    B: str
    a: str
    A: str
    T: OptInt = UNSET
    E: OptInt = UNSET
    u: OptInt = UNSET
    ps: OptStr = UNSET


class TradeEvent(Struct, tag_field="e", tag="trade", forbid_unknown_fields=True, gc=False):
    """``{"e": "trade", ...}``: recognised so it is reported as unknown cheaply."""

    event: ClassVar[str] = "trade"

    E: OptInt = UNSET
    s: OptStr = UNSET
    t: OptInt = UNSET
    p: OptStr = UNSET
    q: OptStr = UNSET
    b: OptInt = UNSET
    a: OptInt = UNSET
    T: OptInt = UNSET
    m: OptBool = UNSET
    M: OptBool = UNSET


class DepthUpdateEvent(
    Struct, tag_field="e", tag="depthUpdate", forbid_unknown_fields=True, gc=False
):
    """``{"e": "depthUpdate", ...}``: recognised so it is reported as unknown cheaply."""

    event: ClassVar[str] = "depthUpdate"

    E: OptInt = UNSET
    T: OptInt = UNSET
    s: OptStr = UNSET
    ps: OptStr = UNSET
    U: OptInt = UNSET
    u: OptInt = UNSET
    pu: OptInt = UNSET
    b: Levels | UnsetType = UNSET
    a: Levels | UnsetType = UNSET


Event = KlineEvent | AggTradeEvent | BookTickerEvent | TradeEvent | DepthUpdateEvent


class Envelope(Struct, forbid_unknown_fields=True, gc=False):
    """A combined-stream frame whose payload names its event."""

    stream: str
    data: Event


class SpotBookTicker(Struct, forbid_unknown_fields=True, gc=False):
    """A spot ``bookTicker`` payload: no ``e`` and no event time."""

    event: ClassVar[str] = ""  # it names no event; only its stream says bookTicker

    s: str
    b: str
    B: str
    a: str
    A: str
    u: OptInt = UNSET
    T: OptInt = UNSET
    E: OptInt = UNSET


class SpotBookTickerEnvelope(Struct, forbid_unknown_fields=True, gc=False):
    """A combined-stream frame of a spot ``bookTicker`` payload."""

    stream: str
    data: SpotBookTicker


decode_envelope = Decoder(Envelope).decode
"""Decode a combined-stream frame of the events that name themselves (msgspec's C decoder:
msgspec.DecodeError, or its subclass ValidationError for well-formed JSON of another shape)."""
decode_spot_book_envelope = Decoder(SpotBookTickerEnvelope).decode
"""Decode a combined-stream frame of a spot bookTicker (it names no event)."""


TYPED_MISS = (DecodeError, ValueError, RecursionError)
"""What the decoders (RecursionError: nested deeper than msgspec goes) and the float
conversions raise for a frame the checked path must decode again
(:func:`lean_data.wire.binance.decode_frame`)."""
