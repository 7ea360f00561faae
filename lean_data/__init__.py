"""lean_data: an asyncio market-data engine for Python trading code."""

from lean_data.config import Config, OverflowPolicy, ValidationConfig
from lean_data.errors import (
    ConfigError,
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
from lean_data.models import AssetClass, QuoteBar, Resolution, Tick, TickType, TradeBar
from lean_data.quality import DataQualityLevel, Verdict

__version__ = "0.1.0"

__all__ = [
    "AssetClass",
    "Config",
    "ConfigError",
    "DataFormatError",
    "DataQualityError",
    "DataQualityLevel",
    "EngineClosedError",
    "EngineStateError",
    "FeedAuthError",
    "FeedConnectError",
    "FeedError",
    "FeedProtocolError",
    "LeanDataError",
    "OverflowPolicy",
    "QuoteBar",
    "RateLimitError",
    "Resolution",
    "StorageError",
    "SubscriptionError",
    "Tick",
    "TickType",
    "TradeBar",
    "ValidationConfig",
    "Verdict",
    "__version__",
]
