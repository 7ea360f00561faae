"""Trade rules: which prints set a bar's prices, which count in its volume.

The default :class:`TradeRules` reproduce the minute trade bars that LEAN ships for US
equities (AlgoSeek data): all 4 128 SPY minutes of 2013-10-07 … 11 match on open, high,
low, close and volume exactly, against 3 399 (82.3 %) for a naive aggregation
(``docs/aggregation.md``, ``benchmarks/aggregation_study.py``). In short:

- a print updates open/high/low/close when its sale condition carries a price-setting flag
  (regular, cash, next day, Form T, extended hours, the auction flags) or none of the veto
  flags (intermarket sweep, trade-through exempt, odd lot); a print flagged suspicious
  never sets a price;
- every print counts in volume (suspicious ones included), except the auction prints and
  official open/close reports named below;
- the opening cross (the day's first print flagged *opening prints*) is stamped at the
  start of its minute, so it is the open of that minute's bar; the closing cross (the
  day's first print flagged *closing prints*, or an official close that is also a trade)
  is stamped just before the whole hour it follows, so it is the close of the session's
  last bar (SPY's cross at 16:00:00.3 closes the 15:59 bar, revising it). Only that first
  auction print counts; the remaining fills of the same cross, official open/close reports
  and other venues' crosses (flagged *cross*) count nowhere.

Sale conditions are read as LEAN ``TradeConditionFlags`` written in hex (``"20000020"``,
see :class:`TradeCondition`). A condition that is not a hex number (``""``, a crypto
``"buyer_maker"``, Alpaca's ``"@,F,T"``) carries no flags, so it is an ordinary print; a
single SIP letter that happens to be a hex digit (``"F"``, ``"4"``) decodes to the low
flags (regular, cash, next day, seller), which set prices too. Rules for SIP letter codes
are not implemented: with the default rules every non-LEAN print is an ordinary print.

The aggregators see a print as a *kind*: an int of ``KIND_*`` bits, computed once per
sale condition by :meth:`TradeRules._kind` and cached.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from lean_data.errors import ConfigError
from lean_data.models import NS_PER_HOUR, NS_PER_MINUTE

__all__ = [
    "DEFAULT_PRICE_FLAGS",
    "DEFAULT_VETO_FLAGS",
    "KIND_CLOSE_CROSS",
    "KIND_CROSSES",
    "KIND_OPEN_CROSS",
    "KIND_PRICE",
    "KIND_PRICE_VOLUME",
    "KIND_VOLUME",
    "PrintUse",
    "TradeCondition",
    "TradeRules",
]


class TradeCondition(enum.IntFlag):
    """LEAN's ``TradeConditionFlags``: AlgoSeek sale conditions as bits, hex in tick files."""

    NONE = 0
    REGULAR = 1 << 0
    CASH = 1 << 1
    NEXT_DAY = 1 << 2
    SELLER = 1 << 3
    YELLOW_FLAG = 1 << 4
    INTERMARKET_SWEEP = 1 << 5
    OPENING_PRINTS = 1 << 6
    CLOSING_PRINTS = 1 << 7
    REOPENING_PRINTS = 1 << 8
    DERIVATIVELY_PRICED = 1 << 9
    FORM_T = 1 << 10
    SOLD = 1 << 11
    STOPPED = 1 << 12
    EXTENDED_HOURS = 1 << 13
    OUT_OF_SEQUENCE = 1 << 14
    SPLIT = 1 << 15
    ACQUISITION = 1 << 16
    BUNCHED = 1 << 17
    STOCK_OPTION = 1 << 18
    DISTRIBUTION = 1 << 19
    AVERAGE_PRICE = 1 << 20
    CROSS = 1 << 21
    PRICE_VARIATION = 1 << 22
    RULE_155 = 1 << 23
    OFFICIAL_CLOSE = 1 << 24
    PRIOR_REFERENCE_PRICE = 1 << 25
    OFFICIAL_OPEN = 1 << 26
    CAP_ELECTION = 1 << 27
    AUTO_EXECUTION = 1 << 28
    TRADE_THROUGH_EXEMPT = 1 << 29
    UNDOCUMENTED = 1 << 30
    ODD_LOT = 1 << 31

    @classmethod
    def parse(cls, condition: str) -> TradeCondition:
        """Return the flags of a hex condition string; ``NONE`` when it is not hex."""
        try:
            value = int(condition, 16)
        except ValueError:
            return cls.NONE
        return cls(value & 0xFFFFFFFF) if value >= 0 else cls.NONE


_C = TradeCondition
DEFAULT_PRICE_FLAGS = int(
    _C.REGULAR
    | _C.CASH
    | _C.NEXT_DAY
    | _C.FORM_T
    | _C.EXTENDED_HOURS
    | _C.OPENING_PRINTS
    | _C.CLOSING_PRINTS
    | _C.OFFICIAL_OPEN
    | _C.OFFICIAL_CLOSE
)
"""Flags that let a print set prices even with a veto flag (QuantConnect's "Included" list)."""

DEFAULT_VETO_FLAGS = int(_C.INTERMARKET_SWEEP | _C.TRADE_THROUGH_EXEMPT | _C.ODD_LOT)
"""Flags that keep a print from setting prices unless it has a price flag ("Excluded")."""

_OPENING = int(_C.OPENING_PRINTS | _C.OFFICIAL_OPEN)
_CLOSING = int(_C.CLOSING_PRINTS | _C.OFFICIAL_CLOSE)
_REPORTS = int(_C.OFFICIAL_OPEN | _C.OFFICIAL_CLOSE)
_AUCTION = _OPENING | _CLOSING

# Print kinds, as bits: how a print is used. The aggregators cache one per condition string.
KIND_PRICE = 1
"""The print sets open/high/low/close."""
KIND_VOLUME = 2
"""The print counts in volume."""
KIND_OPEN_CROSS = 4
"""The print is a candidate for the day's opening cross."""
KIND_CLOSE_CROSS = 8
"""The print is a candidate for the day's closing cross."""
KIND_PRICE_VOLUME = KIND_PRICE | KIND_VOLUME
KIND_CROSSES = KIND_OPEN_CROSS | KIND_CLOSE_CROSS


@dataclass(frozen=True, slots=True)
class PrintUse:
    """How the rules use one print.

    Attributes:
        price: it updates open/high/low/close.
        volume: it counts in volume.
        cross: ``"open"`` or ``"close"`` when it is a candidate for the day's opening or
            closing cross (only the day's first one is used), else ``None``.
    """

    price: bool
    volume: bool
    cross: Literal["open", "close"] | None = None


@dataclass(frozen=True, slots=True)
class TradeRules:
    """Which prints update open/high/low/close and which count in volume.

    The defaults reproduce LEAN's US-equity minute bars; ``TradeRules.every_trade()``
    is the naive aggregation (every print counts everywhere).

    Attributes:
        price_flags: a print carrying any of these flags sets prices.
        veto_flags: a print carrying any of these flags and no price flag does not set
            prices (it still counts in volume). A print with neither kind of flag, such
            as average-price, sold-out-of-sequence or a print with no condition at all,
            sets prices.
        auctions: handle the opening and closing crosses (module docstring): only the
            day's first auction print counts, re-stamped to the session boundary; the
            other fills, official open/close reports and crosses flagged ``CROSS`` are
            ignored. ``False`` treats auction prints like any other print.
        suspicious_price: a print flagged suspicious sets prices.
        suspicious_volume: a print flagged suspicious counts in volume.
        opening_cross_boundary: the opening cross is stamped at the last multiple of this
            (ns, epoch-aligned) at or before its print: by default the start of its minute,
            so it opens the minute bar even when other prints of that minute came first.
        closing_cross_boundary: the closing cross is stamped 1 ns before the last multiple
            of this at or before its print: by default the whole hour (US sessions close at
            16:00, or 13:00), so NYSE's closing print reported at 16:01:04 still closes the
            15:59 bar. A market closing at hh:30 needs ``30 * NS_PER_MINUTE``.

    Raises:
        ConfigError: a flag set is negative or wider than 32 bits, or a boundary is not a
            positive number of nanoseconds.
    """

    price_flags: int = DEFAULT_PRICE_FLAGS
    veto_flags: int = DEFAULT_VETO_FLAGS
    auctions: bool = True
    suspicious_price: bool = False
    suspicious_volume: bool = True
    opening_cross_boundary: int = NS_PER_MINUTE
    closing_cross_boundary: int = NS_PER_HOUR

    def __post_init__(self) -> None:
        for name in ("price_flags", "veto_flags"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
                raise ConfigError(f"TradeRules.{name} must be 32-bit flags, got {value!r}")
        for name in ("opening_cross_boundary", "closing_cross_boundary"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"TradeRules.{name} must be a positive ns count, got {value!r}")

    @classmethod
    def every_trade(cls) -> TradeRules:
        """Return the naive rules: every print sets prices and counts in volume."""
        return cls(price_flags=0, veto_flags=0, auctions=False, suspicious_price=True)

    def classify(self, condition: str, suspicious: bool = False) -> PrintUse:
        """Return how a print with this sale condition (and suspicious flag) is used."""
        kind = self._kind(condition) & self._suspicious_mask(suspicious)
        cross: Literal["open", "close"] | None = None
        if kind & KIND_OPEN_CROSS:
            cross = "open"
        elif kind & KIND_CLOSE_CROSS:
            cross = "close"
        return PrintUse(bool(kind & KIND_PRICE), bool(kind & KIND_VOLUME), cross)

    def _suspicious_mask(self, suspicious: bool) -> int:
        if not suspicious:
            return -1
        return (
            (KIND_PRICE if self.suspicious_price else 0)
            | (KIND_VOLUME if self.suspicious_volume else 0)
            | KIND_CROSSES
        )

    def _kind(self, condition: str) -> int:
        flags = int(TradeCondition.parse(condition))
        if self.auctions and flags & _AUCTION:
            if flags & _C.CROSS:  # another venue's cross (Nasdaq's for an Arca ETF)
                return 0
            trade_flags = flags & ~(_REPORTS | _C.TRADE_THROUGH_EXEMPT)
            if not trade_flags:  # an official open/close report alone: not a trade
                return 0
            side = KIND_OPEN_CROSS if flags & _OPENING else KIND_CLOSE_CROSS
            return side | KIND_PRICE | (0 if flags & _REPORTS else KIND_VOLUME)
        if flags & self.price_flags or not flags & self.veto_flags:
            return KIND_PRICE_VOLUME
        return KIND_VOLUME
