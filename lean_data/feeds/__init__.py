"""Data feeds: the base class and the bundled sources."""

from lean_data.feeds.base import DataFeed, FeedSink, FeedStatus
from lean_data.feeds.replay import ReplayFeed, ReplaySource

__all__ = ["DataFeed", "FeedSink", "FeedStatus", "ReplayFeed", "ReplaySource"]
