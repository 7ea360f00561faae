"""Market depth: the maintained order book and each venue's book-integrity rules.

:class:`OrderBook` (``book``) keeps one symbol's levels sorted with fast top of book, depth
views, mid, microprice, imbalance and the cost of taking size; the sequencers
(``sequencers``) say for each venue message whether it may be applied (Binance spot and
futures update ids, Bybit ``u``, Kraken's CRC32); :class:`BookKeeper` (``keeper``) puts
them together, marks the book invalid on a gap or checksum failure and re-synchronises it
from a snapshot plus the buffered deltas. Pure and synchronous; imports only the core
modules and :mod:`lean_data.quality.levels`. Not wired into feeds or the engine yet.
"""

from lean_data.depth.book import BookState, OrderBook, TakeCost
from lean_data.depth.keeper import BookKeeper, KeeperStatistics
from lean_data.depth.sequencers import (
    Action,
    BinanceFuturesSequencer,
    BinanceSpotSequencer,
    BybitSequencer,
    Decision,
    KrakenChecksumSequencer,
    Sequencer,
    kraken_checksum,
)

__all__ = [
    "Action",
    "BinanceFuturesSequencer",
    "BinanceSpotSequencer",
    "BookKeeper",
    "BookState",
    "BybitSequencer",
    "Decision",
    "KeeperStatistics",
    "KrakenChecksumSequencer",
    "OrderBook",
    "Sequencer",
    "TakeCost",
    "kraken_checksum",
]
