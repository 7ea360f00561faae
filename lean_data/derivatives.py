"""Derivatives records: funding rates, open interest, mark prices and liquidations.

The conventions are :mod:`lean_data.models`': ``int`` nanoseconds since the Unix epoch
(UTC) for every time, ``float`` for every rate, price and size, the source's event time
``ts_event`` and the local receive time ``ts_recv`` (0 when unknown, e.g. a file), and
immutable records (frozen slotted dataclasses; a changed record is a new one,
``dataclasses.replace``). An optional number the venue did not give is ``nan``, an
optional time ``0``, so every field keeps one type (the disk cache and storage rely on it).

Unlike bars, quotes and ticks, these records check themselves when built and raise
``TypeError`` / ``ValueError`` naming the record, the field and the value found: they are
not scored by the quality validator, so a wrong value must not get in at all. They are far
fewer than trades (a funding rate every few hours, a mark price a second), so the check
costs nothing that matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import ClassVar, TypeAlias

from lean_data.models import ns_to_datetime

__all__ = [
    "LIQUIDATION_SIDES",
    "DerivativesData",
    "FundingRate",
    "Liquidation",
    "MarkPrice",
    "OpenInterest",
]

_NAN = math.nan

LIQUIDATION_SIDES = ("buy", "sell")
"""A liquidation's side: the side of the order that closed the position (a long is
liquidated by a ``sell``)."""


def _text(record: object, name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        kind = type(record).__name__
        raise ValueError(f"{kind}.{name} must be a non-empty string, got {value!r}")


def _time(record: object, name: str, value: object) -> None:
    """A time in ns: an int (not a bool), never negative (0 = unknown where optional)."""
    kind = type(record).__name__
    if type(value) is not int:
        raise TypeError(
            f"{kind}.{name} must be an int (ns since the epoch), got {type(value).__name__} "
            f"{value!r}"
        )
    if value < 0:
        raise ValueError(f"{kind}.{name} must be >= 0 ns, got {value}")


def _number(record: object, name: str, value: object, *, optional: bool = False) -> float:
    """Return ``value`` as a float: finite, or NaN (unknown) when ``optional``."""
    kind = type(record).__name__
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{kind}.{name} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if math.isnan(number) and optional:
        return number
    if not math.isfinite(number):
        unknown = " (NaN means unknown)" if optional else ""
        raise ValueError(f"{kind}.{name} must be finite{unknown}, got {number!r}")
    if type(value) is not float:
        object.__setattr__(record, name, number)  # an int price is stored as its float
    return number


def _positive(record: object, name: str, value: object, *, optional: bool = False) -> None:
    number = _number(record, name, value, optional=optional)
    if not number > 0 and not (optional and math.isnan(number)):
        raise ValueError(f"{type(record).__name__}.{name} must be > 0, got {number!r}")


@dataclass(frozen=True, slots=True)
class FundingRate:
    """A perpetual swap's funding rate, settled (or announced) at ``ts_event``.

    Attributes:
        symbol: canonical symbol (``XRP/USDT:USDT``).
        ts_event: the funding time, ns since the epoch, UTC (venues stamp it to the ms,
            not always on the hour: kept as given).
        rate: the funding rate as a fraction (``0.0001`` is 0.01 %); may be negative.
        ts_recv: local receive time, ns (0 when unknown, e.g. a file).
        next_funding_time: the next funding time, ns (0 when the source does not say).
        funding_interval: the period between fundings, ns (0 when unknown).
        predicted_rate: the venue's predicted next rate (``nan`` when it gives none).
    """

    symbol: str
    ts_event: int
    rate: float
    ts_recv: int = 0
    next_funding_time: int = 0
    funding_interval: int = 0
    predicted_rate: float = _NAN

    kind: ClassVar[str] = "funding_rate"

    def __post_init__(self) -> None:
        _text(self, "symbol", self.symbol)
        for name in ("ts_event", "ts_recv", "next_funding_time", "funding_interval"):
            _time(self, name, getattr(self, name))
        _number(self, "rate", self.rate)
        _number(self, "predicted_rate", self.predicted_rate, optional=True)

    def with_ts_recv(self, ts_recv: int) -> FundingRate:
        """Return a copy received at ``ts_recv`` (ns since the epoch)."""
        return replace(self, ts_recv=ts_recv)

    @property
    def time(self) -> datetime:
        """The funding time as a tz-aware UTC ``datetime``."""
        return ns_to_datetime(self.ts_event)


@dataclass(frozen=True, slots=True)
class OpenInterest:
    """The open interest of a contract at ``ts_event``: in contracts, in notional, or both.

    Attributes:
        symbol: canonical symbol.
        ts_event: the time the venue measured it, ns.
        contracts: open contracts (base units for linear swaps); ``nan`` when not given.
        notional: their value in the quote (settle) currency; ``nan`` when not given.
        ts_recv: local receive time, ns (0 when unknown).
    """

    symbol: str
    ts_event: int
    contracts: float = _NAN
    notional: float = _NAN
    ts_recv: int = 0

    kind: ClassVar[str] = "open_interest"

    def __post_init__(self) -> None:
        _text(self, "symbol", self.symbol)
        _time(self, "ts_event", self.ts_event)
        _time(self, "ts_recv", self.ts_recv)
        for name in ("contracts", "notional"):
            number = _number(self, name, getattr(self, name), optional=True)
            if number < 0:
                raise ValueError(f"OpenInterest.{name} must be >= 0, got {number!r}")
        if math.isnan(self.contracts) and math.isnan(self.notional):
            raise ValueError(
                f"OpenInterest of {self.symbol} at {self.ts_event} needs contracts or "
                "notional (both are NaN)"
            )

    def with_ts_recv(self, ts_recv: int) -> OpenInterest:
        """Return a copy received at ``ts_recv`` (ns since the epoch)."""
        return replace(self, ts_recv=ts_recv)

    @property
    def time(self) -> datetime:
        """Event time as a tz-aware UTC ``datetime``."""
        return ns_to_datetime(self.ts_event)


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """A contract's mark price at ``ts_event``, as Binance's ``markPrice@1s`` stream sends it.

    Attributes:
        symbol: canonical symbol.
        ts_event: event time, ns.
        mark_price: the mark price (> 0).
        index_price: the index price (``nan`` when the source does not give it).
        ts_recv: local receive time, ns (0 when unknown).
        funding_rate: the current funding rate the stream carries (``nan`` when none).
        next_funding_time: the next funding time, ns (0 when none).
    """

    symbol: str
    ts_event: int
    mark_price: float
    index_price: float = _NAN
    ts_recv: int = 0
    funding_rate: float = _NAN
    next_funding_time: int = 0

    kind: ClassVar[str] = "mark_price"

    def __post_init__(self) -> None:
        _text(self, "symbol", self.symbol)
        for name in ("ts_event", "ts_recv", "next_funding_time"):
            _time(self, name, getattr(self, name))
        _positive(self, "mark_price", self.mark_price)
        _positive(self, "index_price", self.index_price, optional=True)
        _number(self, "funding_rate", self.funding_rate, optional=True)

    def with_ts_recv(self, ts_recv: int) -> MarkPrice:
        """Return a copy received at ``ts_recv`` (ns since the epoch)."""
        return replace(self, ts_recv=ts_recv)

    @property
    def time(self) -> datetime:
        """Event time as a tz-aware UTC ``datetime``."""
        return ns_to_datetime(self.ts_event)


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A forced liquidation order, as a venue reports it (Binance ``forceOrder``).

    Attributes:
        symbol: canonical symbol.
        ts_event: the order's time, ns.
        side: ``"buy"`` or ``"sell"``: the liquidation order's side (see
            :data:`LIQUIDATION_SIDES`).
        price: the order price (> 0).
        quantity: the order quantity (> 0).
        ts_recv: local receive time, ns (0 when unknown).
        order_status: the venue's status of the order (``"FILLED"``), ``""`` when none.
        average_price: the average fill price (``nan`` when not given).
        filled_quantity: the quantity filled so far (``nan`` when not given).
    """

    symbol: str
    ts_event: int
    side: str
    price: float
    quantity: float
    ts_recv: int = 0
    order_status: str = ""
    average_price: float = _NAN
    filled_quantity: float = _NAN

    kind: ClassVar[str] = "liquidation"

    def __post_init__(self) -> None:
        _text(self, "symbol", self.symbol)
        _time(self, "ts_event", self.ts_event)
        _time(self, "ts_recv", self.ts_recv)
        if self.side not in LIQUIDATION_SIDES:
            raise ValueError(f"Liquidation.side must be 'buy' or 'sell', got {self.side!r}")
        _positive(self, "price", self.price)
        _positive(self, "quantity", self.quantity)
        if not isinstance(self.order_status, str):
            raise TypeError(f"Liquidation.order_status must be a str, got {self.order_status!r}")
        _positive(self, "average_price", self.average_price, optional=True)
        filled = _number(self, "filled_quantity", self.filled_quantity, optional=True)
        if filled < 0:
            raise ValueError(f"Liquidation.filled_quantity must be >= 0, got {filled!r}")

    def with_ts_recv(self, ts_recv: int) -> Liquidation:
        """Return a copy received at ``ts_recv`` (ns since the epoch)."""
        return replace(self, ts_recv=ts_recv)

    @property
    def time(self) -> datetime:
        """Event time as a tz-aware UTC ``datetime``."""
        return ns_to_datetime(self.ts_event)


DerivativesData: TypeAlias = FundingRate | OpenInterest | MarkPrice | Liquidation
"""Any derivatives record."""
