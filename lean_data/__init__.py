"""lean_data: an asyncio market-data engine for Python trading code.

``import lean_data`` loads the engine and the standard library it needs; of third-party
packages only mypy_extensions, with the compiled build (figure 7 of the benchmarks). What
only some uses need loads with its first use: the SQLite store (aiosqlite) with the first
engine that stores, the order books with the first engine, the disk cache tier with a
``cache_dir``, orjson with the first JSON written, and these names on first access:
``StreamingFeed`` and ``BackoffPolicy`` (with the websocket transports), ``AlpacaDataFeed``,
``BinanceDataFeed`` and ``CcxtDataFeed`` (venue SDKs such as alpaca-py and ccxt),
``DataPersistence``, ``PostgresStorage`` (asyncpg), ``DataTransformer`` and the Parquet
catalog functions (``export_catalog``, ``import_catalog``, ``read_catalog``,
``catalog_series``; pyarrow only when called).
"""

from typing import TYPE_CHECKING, Any

from lean_data.analytics.frames import Bars
from lean_data.config import Config, OverflowPolicy, ValidationConfig
from lean_data.derivatives import FundingRate, Liquidation, MarkPrice, OpenInterest
from lean_data.engine import DataEngine, EngineState
from lean_data.engine.metrics import DataMetrics
from lean_data.engine.runner import run
from lean_data.engine.streams import Stream
from lean_data.engine.subscribers import Subscriber
from lean_data.errors import (
    ConfigError,
    ConnectionLimitError,
    DataFormatError,
    DataQualityError,
    EngineClosedError,
    EngineStateError,
    FeedAuthError,
    FeedConnectError,
    FeedError,
    FeedProtocolError,
    LeanDataError,
    RateLimitError,
    StorageError,
    StorageFailedError,
    SubscriptionError,
)
from lean_data.feeds.base import DataFeed, FeedStatus
from lean_data.feeds.replay import ReplayFeed, ReplaySource
from lean_data.models import AssetClass, QuoteBar, Resolution, Tick, TickType, TradeBar
from lean_data.quality.levels import DataQualityLevel, Verdict
from lean_data.quality.validator import DataValidator, QualityTracker
from lean_data.secrets import Credentials, Secret
from lean_data.series.buffer import DataBuffer
from lean_data.storage.cache import DataCache

__version__ = "0.1.0"

if TYPE_CHECKING:
    from lean_data.analytics.transform import DataTransformer
    from lean_data.feeds.alpaca import AlpacaDataFeed
    from lean_data.feeds.backoff import BackoffPolicy
    from lean_data.feeds.binance import BinanceDataFeed
    from lean_data.feeds.ccxt_feed import CcxtDataFeed
    from lean_data.feeds.streaming import StreamingFeed
    from lean_data.series.aggregation import (
        TickCountBarAggregator,
        TimeBarAggregator,
        TradeRules,
        VolumeBarAggregator,
    )
    from lean_data.series.resample import BarResampler
    from lean_data.storage.parquet import (
        CatalogExport,
        CatalogSeries,
        catalog_series,
        export_catalog,
        import_catalog,
        read_catalog,
    )
    from lean_data.storage.postgres import PostgresStorage
    from lean_data.storage.sqlite import DataPersistence

_LAZY = {
    "BackoffPolicy": "lean_data.feeds.backoff",
    "StreamingFeed": "lean_data.feeds.streaming",
    "BarResampler": "lean_data.series.resample",
    "DataTransformer": "lean_data.analytics.transform",
    "TickCountBarAggregator": "lean_data.series.aggregation",
    "TimeBarAggregator": "lean_data.series.aggregation",
    "TradeRules": "lean_data.series.aggregation",
    "VolumeBarAggregator": "lean_data.series.aggregation",
    "AlpacaDataFeed": "lean_data.feeds.alpaca",
    "BinanceDataFeed": "lean_data.feeds.binance",
    "CcxtDataFeed": "lean_data.feeds.ccxt_feed",
    "CatalogExport": "lean_data.storage.parquet",
    "CatalogSeries": "lean_data.storage.parquet",
    "catalog_series": "lean_data.storage.parquet",
    "export_catalog": "lean_data.storage.parquet",
    "import_catalog": "lean_data.storage.parquet",
    "read_catalog": "lean_data.storage.parquet",
    "PostgresStorage": "lean_data.storage.postgres",
    "DataPersistence": "lean_data.storage.sqlite",
}


def __getattr__(name: str) -> Any:
    """Import the venue feeds, PostgresStorage and the catalog on first use: ``import
    lean_data`` stays light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lean_data' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AlpacaDataFeed",
    "AssetClass",
    "BackoffPolicy",
    "BarResampler",
    "Bars",
    "BinanceDataFeed",
    "CatalogExport",
    "CatalogSeries",
    "CcxtDataFeed",
    "Config",
    "ConfigError",
    "ConnectionLimitError",
    "Credentials",
    "DataBuffer",
    "DataCache",
    "DataEngine",
    "DataFeed",
    "DataFormatError",
    "DataMetrics",
    "DataPersistence",
    "DataQualityError",
    "DataQualityLevel",
    "DataTransformer",
    "DataValidator",
    "EngineClosedError",
    "EngineState",
    "EngineStateError",
    "FeedAuthError",
    "FeedConnectError",
    "FeedError",
    "FeedProtocolError",
    "FeedStatus",
    "FundingRate",
    "LeanDataError",
    "Liquidation",
    "MarkPrice",
    "OpenInterest",
    "OverflowPolicy",
    "PostgresStorage",
    "QualityTracker",
    "QuoteBar",
    "RateLimitError",
    "ReplayFeed",
    "ReplaySource",
    "Resolution",
    "Secret",
    "StorageError",
    "StorageFailedError",
    "Stream",
    "StreamingFeed",
    "Subscriber",
    "SubscriptionError",
    "Tick",
    "TickCountBarAggregator",
    "TickType",
    "TimeBarAggregator",
    "TradeBar",
    "TradeRules",
    "ValidationConfig",
    "Verdict",
    "VolumeBarAggregator",
    "__version__",
    "catalog_series",
    "export_catalog",
    "import_catalog",
    "read_catalog",
    "run",
]
