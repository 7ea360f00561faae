"""Item sinks: what else, besides callbacks and storage, receives every accepted item.

A sink (the bus publisher, :class:`lean_data.bus.BusPublisher`, or a user's own) is
attached with :meth:`lean_data.DataEngine.add_sink`. The pipeline hands it every item it
accepted (every item but INVALID ones and in-progress bars: live, backfilled and late bars,
quotes, ticks) with the item's feed and quality verdict, through :meth:`ItemSink.offer`,
which must never wait: a sink keeps its own bounded, counted buffer and its own task, so a
slow or absent destination never stalls the engine. :class:`Sinks` opens them when the
engine starts, closes them (each within ``Config.stop_timeout_s``) after the pipeline has
delivered everything on stop, and reports their statistics in ``get_metrics()["sinks"]``.
A sink that raises is counted and recorded (errors table kind ``sink_error``); it never
costs the item its delivery elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from lean_data.engine.tasks import Spawn
from lean_data.errors import ConfigError
from lean_data.models import MarketData
from lean_data.quality.levels import Verdict

__all__ = ["ItemSink", "Sinks"]

log = logging.getLogger("lean_data.engine")


@runtime_checkable
class ItemSink(Protocol):
    """What the engine needs of a sink (a structural type: no base class to inherit)."""

    name: str
    """Unique among the engine's sinks; the key of its statistics."""

    async def open(self) -> None:
        """Start the sink's own work (connect, create its task); called once."""

    def offer(self, feed: str, item: MarketData, verdict: Verdict) -> None:
        """Take one accepted item without waiting (buffer, count what cannot be kept)."""

    async def close(self) -> None:
        """Hand on what it holds as far as it can, then stop; called once, after open."""

    def statistics(self) -> dict[str, Any]:
        """Counters for ``get_metrics()["sinks"][name]`` (plain numbers and strings)."""


Record = Callable[..., None]


class Sinks:
    """The engine's sinks: who gets every accepted item, opened and closed with the engine.

    Args:
        record: the errors table's ``record(kind, message, feed=..., symbol=...)``.
        count_error: counts one error of a kind in the engine's metrics.
    """

    def __init__(self, record: Record, count_error: Callable[[str], None]) -> None:
        self.sinks: list[ItemSink] = []
        self._record = record
        self._count_error = count_error
        self._opened: set[str] = set()
        self.errors = 0

    def add(self, sink: ItemSink, spawn: Spawn | None) -> None:
        """Register ``sink``; with ``spawn`` (a running engine) open it now, as a task.

        Raises:
            ConfigError: not a sink, or another sink has its name.
        """
        if not isinstance(sink, ItemSink):
            raise ConfigError(
                f"add_sink() takes an object with name, open(), offer(), close() and "
                f"statistics(), got {type(sink).__name__}"
            )
        if any(s.name == sink.name for s in self.sinks):
            raise ConfigError(f"a sink named {sink.name!r} is already attached")
        self.sinks.append(sink)
        if spawn is not None:
            spawn(f"sink:{sink.name}:open", self._open, sink)

    async def open_all(self) -> None:
        """Open every sink not opened yet; one that fails is recorded, the others open."""
        for sink in list(self.sinks):
            await self._open(sink)

    async def _open(self, sink: ItemSink) -> None:
        if sink.name in self._opened:
            return
        self._opened.add(sink.name)
        try:
            await sink.open()
        except Exception as exc:  # the sink's own retries take over; the engine goes on
            self._failed(sink, "open", exc)

    def offer(self, feed: str, item: MarketData, verdict: Verdict) -> None:
        """Hand one accepted item to every sink; a sink's error costs only that sink."""
        for sink in self.sinks:
            try:
                sink.offer(feed, item, verdict)
            except Exception as exc:
                self._failed(sink, "offer", exc, feed=feed, symbol=item.symbol)

    async def close_all(self, timeout_s: float) -> None:
        """Close the opened sinks, each within ``timeout_s`` (what is left is the sink's
        to count: its statistics say what it could not hand on)."""
        for sink in self.sinks:
            if sink.name not in self._opened:
                continue
            try:
                await asyncio.wait_for(sink.close(), timeout_s)
            except TimeoutError:
                self._failed(sink, "close", TimeoutError(f"close() took over {timeout_s}s"))
            except Exception as exc:
                self._failed(sink, "close", exc)

    def statistics(self) -> dict[str, dict[str, Any]]:
        """Each sink's statistics by name (a sink whose statistics() raises: its error)."""
        out: dict[str, dict[str, Any]] = {}
        for sink in self.sinks:
            try:
                out[sink.name] = dict(sink.statistics())
            except Exception as exc:
                out[sink.name] = {"error": repr(exc)}
        return out

    def _failed(
        self, sink: ItemSink, stage: str, exc: BaseException, *, feed: str = "", symbol: str = ""
    ) -> None:
        self.errors += 1
        self._count_error("sink_error")
        if self.errors <= 10 or self.errors % 1000 == 0:
            log.warning("sink %s failed in %s(): %r", sink.name, stage, exc)
        self._record(
            "sink_error", f"sink {sink.name!r} {stage}(): {exc!r}", feed=feed, symbol=symbol
        )
