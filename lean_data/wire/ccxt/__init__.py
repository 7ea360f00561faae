"""Pure helpers for ccxt / ccxt.pro market data: errors, rows to models, closed candles.

No I/O, no asyncio, no clock reads, and ccxt is never imported (its exceptions are
recognised by class names), so the package imports and works without ccxt installed.

- :mod:`~lean_data.wire.ccxt.errors`: :func:`error_for` maps a ccxt exception to a
  :class:`~lean_data.errors.FeedError` with the right ``retryable`` flag; secrets redacted.
- :mod:`~lean_data.wire.ccxt.rows`: :func:`ohlcv_to_bars`, :func:`parse_ohlcv_row` and
  :func:`trade_to_tick` convert ccxt's unified structures; :func:`timeframe_of` /
  :func:`resolution_of` map bar periods; :func:`market_asset_class` classifies a market.
- :mod:`~lean_data.wire.ccxt.candles`: :class:`CandleCloser` turns the rows of
  ``watch_ohlcv`` (``[ts_ms, o, h, l, c, v]``, in-progress candle included, no closed flag)
  into final bars, each exactly once, with later corrections as revisions.
- :mod:`~lean_data.wire.ccxt.cache`: reading what ccxt.pro caches per symbol (rows and
  trades that arrived while no ``watch_*`` call was pending), and history pages.
- :mod:`~lean_data.wire.ccxt.depth`: :func:`orderbook_to_snapshot` (ccxt.pro's maintained
  book, top N levels), :func:`funding_rate_of`, :func:`funding_history_of`,
  :func:`open_interest_of`.

Every public name is importable from this package.
"""

from lean_data.wire.ccxt.cache import cached_rows, cached_trades, close_rows, new_ticks, page_bars
from lean_data.wire.ccxt.candles import (
    DEFAULT_SKEW_NS,
    MIN_PLAUSIBLE_NS,
    CandleCloser,
    RecentKeys,
    plausible,
)
from lean_data.wire.ccxt.depth import (
    funding_history_of,
    funding_rate_of,
    open_interest_of,
    orderbook_to_snapshot,
)
from lean_data.wire.ccxt.errors import (
    SECRET_KEYS,
    error_for,
    is_ccxt_error,
    redact,
    secrets_of,
    undecodable_json,
)
from lean_data.wire.ccxt.rows import (
    Values,
    market_asset_class,
    ohlcv_to_bars,
    parse_ohlcv_row,
    resolution_of,
    timeframe_of,
    trade_key,
    trade_to_tick,
)

__all__ = [
    "DEFAULT_SKEW_NS",
    "MIN_PLAUSIBLE_NS",
    "SECRET_KEYS",
    "CandleCloser",
    "RecentKeys",
    "Values",
    "cached_rows",
    "cached_trades",
    "close_rows",
    "error_for",
    "funding_history_of",
    "funding_rate_of",
    "is_ccxt_error",
    "market_asset_class",
    "new_ticks",
    "ohlcv_to_bars",
    "open_interest_of",
    "orderbook_to_snapshot",
    "page_bars",
    "parse_ohlcv_row",
    "plausible",
    "redact",
    "resolution_of",
    "secrets_of",
    "timeframe_of",
    "trade_key",
    "trade_to_tick",
    "undecodable_json",
]
