"""lean_data: an asyncio market-data engine for Python trading code.

``import lean_data`` loads only the core (aiohttp, websockets, orjson, aiosqlite): venue
SDKs such as alpaca-py and ccxt, and pandas, are imported only by the feeds that need them.
"""

from lean_data.buffer import DataBuffer
from lean_data.cache import DataCache
from lean_data.config import Config, OverflowPolicy, ValidationConfig
from lean_data.engine import DataEngine, EngineState
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
    SubscriptionError,
)
from lean_data.feeds.base import DataFeed, FeedStatus
from lean_data.feeds.replay import ReplayFeed, ReplaySource
from lean_data.metrics import DataMetrics
from lean_data.models import AssetClass, QuoteBar, Resolution, Tick, TickType, TradeBar
from lean_data.persistence import DataPersistence
from lean_data.quality import DataQualityLevel, Verdict
from lean_data.subscribers import Subscriber
from lean_data.transform import DataTransformer
from lean_data.validation import DataValidator, QualityTracker

__version__ = "0.1.0"

__all__ = [
    "AssetClass",
    "Config",
    "ConfigError",
    "ConnectionLimitError",
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
    "LeanDataError",
    "OverflowPolicy",
    "QualityTracker",
    "QuoteBar",
    "RateLimitError",
    "ReplayFeed",
    "ReplaySource",
    "Resolution",
    "StorageError",
    "Subscriber",
    "SubscriptionError",
    "Tick",
    "TickType",
    "TradeBar",
    "ValidationConfig",
    "Verdict",
    "__version__",
]
