"""What the gateway needs of an engine, as structural types (the gateway never imports it).

:class:`~lean_data.engine.core.DataEngine` satisfies :class:`EngineView`; ``DataEngine.serve``
imports the gateway, so the gateway names the engine only through this protocol, and the
import graph keeps no cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from lean_data.engine.sinks import ItemSink
from lean_data.engine.state import EngineState
from lean_data.feeds.base import DataFeed

__all__ = ["EngineView", "QualityReport"]


class QualityReport(Protocol):
    """The engine's per-series quality counters (a :class:`~lean_data.quality.QualityTracker`)."""

    def report(self, symbol: str | None = None, feed: str | None = None) -> dict[str, Any]:
        """Return ``{feed: {symbol: stats}}`` with ``levels``, ``gaps``, ``missing_bars``..."""


class EngineView(Protocol):
    """The engine methods the gateway uses."""

    @property
    def state(self) -> EngineState:
        """NEW, RUNNING, STOPPING or CLOSED."""

    @property
    def feeds(self) -> Mapping[str, DataFeed]:
        """The registered feeds by name."""

    @property
    def quality(self) -> QualityReport:
        """Per-series quality counters."""

    def subscriptions(self) -> dict[tuple[str, str], int]:
        """(feed, symbol) → reference count of the live subscriptions."""

    def get_metrics(self) -> dict[str, Any]:
        """The engine's metrics snapshot."""

    def add_sink(self, sink: ItemSink) -> None:
        """Hand every accepted item to ``sink`` from now on."""
