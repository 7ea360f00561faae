"""Prometheus exposition: the engine's metrics, read at scrape time, plus one histogram.

:class:`EngineCollector` is a ``prometheus_client`` custom collector registered on the
gateway's own :class:`~prometheus_client.CollectorRegistry` (never the global one, so two
engines in a process do not collide). Each scrape calls ``engine.get_metrics()`` once and
turns it into metric families; nothing is counted twice. Series (all prefixed
``lean_data_``; counters end in ``_total``):

=====================================  ==============================================
engine                                 ``engine_running``, ``engine_uptime_seconds``,
                                       ``messages_total``, ``messages_per_second``,
                                       ``accepted_total``, ``processed_total``,
                                       ``invalid_total``, ``outcomes_total{outcome}``,
                                       ``errors_total{kind}``, ``callback_errors_total``,
                                       ``inbox_depth``, ``drops_total{source}``,
                                       ``latency_seconds{stat=avg|p50|p99|max}``,
                                       ``engine_gauge{name}`` (cache hit rate, buffer
                                       use, subscriber queue depth and drops...)
feeds                                  ``feed_connected{feed}`` (0/1),
                                       ``feed_state{feed,state}`` (1 for the current one),
                                       ``feed_messages_total{feed}`` (delivered),
                                       ``feed_emitted_total{feed}``,
                                       ``feed_messages_per_second{feed}``,
                                       ``feed_errors_total{feed,kind}``,
                                       ``feed_latency_seconds{feed,stat}``,
                                       ``feed_last_message_age_seconds{feed}``
quality                                ``quality_items_total{feed,level}``,
                                       ``quality_gaps_total{feed}``,
                                       ``quality_missing_bars_total{feed}``,
                                       ``quality_duplicates_total{feed}``,
                                       ``quality_score_average``
continuity (gaps)                      ``continuity_<counter>_total`` (gaps, duplicates,
                                       revisions, backfilled, late, ...),
                                       ``continuity_parked``, ``continuity_series``
subscribers                            ``subscriber_queue_depth{subscriber}``,
                                       ``subscriber_dropped_total{subscriber}``,
                                       ``subscriber_delivered_total{subscriber}``
storage                                ``storage_queue_depth``, ``storage_rows_written_total``,
                                       ``storage_rows_lost_total``, ``storage_failed``, ...
sinks                                  ``sink_statistic{sink,name}``: every number a sink
                                       reports (the bus publisher's buffered, dropped...)
gateway                                ``gateway_clients``, ``gateway_sent_total``,
                                       ``gateway_dropped_total``, ``gateway_evicted_total``,
                                       ``gateway_refused_total``, ``gateway_queue_depth``...
=====================================  ==============================================

The gateway also owns one real histogram, ``lean_data_gateway_item_latency_seconds{feed}``:
the sink observes, for every item the engine accepts, the time from its ``ts_recv`` (stamped
when the feed received it) to the moment the pipeline hands it to the gateway. The engine's
own latency samples (event time for live feeds) are exposed as the ``latency_seconds``
gauges above (their avg / p50 / p99 / max over the last samples).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lean_data.feeds.base import FeedStatus
from lean_data.gateway.view import EngineView

__all__ = ["LATENCY_BUCKETS", "EngineCollector"]

P = "lean_data_"
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
_STATS = ("avg", "p50", "p99", "max")
_CONTINUITY_GAUGES = ("parked", "series")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _counter(name: str, doc: str, value: Any) -> CounterMetricFamily:
    return CounterMetricFamily(P + name, doc, value=_number(value) or 0.0)


def _gauge(name: str, doc: str, value: Any) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, value=_number(value) or 0.0)


class EngineCollector(Collector):
    """Turn ``engine.get_metrics()`` (and the gateway's counters) into metric families.

    Args:
        engine: the engine (anything with the :class:`EngineView` methods).
        gateway_stats: returns the gateway's statistics (clients, sent, dropped, ...).
    """

    def __init__(self, engine: EngineView, gateway_stats: Callable[[], Mapping[str, Any]]):
        self._engine = engine
        self._gateway_stats = gateway_stats

    def collect(self) -> Iterator[Metric]:
        """Return every family, from one metrics snapshot."""
        snapshot = self._engine.get_metrics()
        yield from self._engine_families(snapshot.get("engine", {}))
        yield from self._feed_families(snapshot.get("feeds", {}))
        yield from self._quality_families()
        yield from self._continuity_families(snapshot.get("continuity", {}))
        yield from self._subscriber_families(snapshot.get("subscribers", []))
        yield from self._storage_families(snapshot.get("storage"))
        yield from self._sink_families(snapshot.get("sinks", {}))
        yield from self._gateway_families(self._gateway_stats())

    def _engine_families(self, engine: Mapping[str, Any]) -> Iterator[Metric]:
        yield _gauge("engine_running", "1 while the engine runs", engine.get("state") == "running")
        yield _gauge("engine_uptime_seconds", "seconds since start", engine.get("uptime_s"))
        yield _counter("messages", "items delivered by the engine", engine.get("messages"))
        yield _gauge(
            "messages_per_second", "delivery rate (last window)", engine.get("messages_per_second")
        )
        yield _counter("accepted", "items taken into the inbox", engine.get("accepted"))
        yield _counter("processed", "items the pipeline handled", engine.get("processed"))
        yield _counter("invalid", "items judged INVALID", engine.get("invalid"))
        yield _counter("callback_errors", "callback exceptions", engine.get("callback_errors"))
        yield _gauge("inbox_depth", "items waiting in the inbox", engine.get("inbox_depth"))
        yield _gauge("engine_degraded", "1 when storage has failed", engine.get("degraded"))
        outcomes = CounterMetricFamily(P + "outcomes", "pipeline outcomes", labels=["outcome"])
        for outcome, count in sorted(engine.get("outcomes", {}).items()):
            outcomes.add_metric([outcome], _number(count) or 0.0)
        yield outcomes
        errors = CounterMetricFamily(P + "errors", "errors by kind", labels=["kind"])
        for kind, count in sorted(engine.get("errors_by_kind", {}).items()):
            errors.add_metric([kind], _number(count) or 0.0)
        yield errors
        drops = CounterMetricFamily(P + "drops", "items dropped by source", labels=["source"])
        for source, count in sorted(engine.get("drops_by_source", {}).items()):
            drops.add_metric([source], _number(count) or 0.0)
        yield drops
        latency = GaugeMetricFamily(
            P + "latency_seconds", "engine latency over recent samples", labels=["stat"]
        )
        summary = engine.get("latency_ms", {})
        for stat in _STATS:
            latency.add_metric([stat], (_number(summary.get(stat)) or 0.0) / 1000)
        yield latency
        gauges = GaugeMetricFamily(
            P + "engine_gauge", "the engine's point-in-time values", labels=["name"]
        )
        for name, value in sorted(engine.get("gauges", {}).items()):
            gauges.add_metric([name], _number(value) or 0.0)
        yield gauges
        quality = engine.get("quality", {})
        yield _gauge("quality_score_average", "mean quality score", quality.get("average"))

    def _feed_families(self, feeds: Mapping[str, Any]) -> Iterator[Metric]:
        connected = GaugeMetricFamily(P + "feed_connected", "1 when connected", labels=["feed"])
        state = GaugeMetricFamily(
            P + "feed_state", "1 for the feed's current state", labels=["feed", "state"]
        )
        messages = CounterMetricFamily(
            P + "feed_messages", "items of the feed the engine delivered", labels=["feed"]
        )
        emitted = CounterMetricFamily(P + "feed_emitted", "items emitted", labels=["feed"])
        rate = GaugeMetricFamily(P + "feed_messages_per_second", "delivery rate", labels=["feed"])
        errors = CounterMetricFamily(
            P + "feed_errors", "feed errors by kind", labels=["feed", "kind"]
        )
        latency = GaugeMetricFamily(
            P + "feed_latency_seconds", "feed latency, recent samples", labels=["feed", "stat"]
        )
        age = GaugeMetricFamily(
            P + "feed_last_message_age_seconds", "seconds since the last item", labels=["feed"]
        )
        now_ns = time.time_ns()
        for name, feed in sorted(feeds.items()):
            connection = feed.get("connection", {})
            status = connection.get("status", "")
            connected.add_metric([name], 1.0 if connection.get("connected") else 0.0)
            for value in FeedStatus:
                state.add_metric([name, value.value], 1.0 if value.value == status else 0.0)
            messages.add_metric([name], _number(feed.get("messages")) or 0.0)
            emitted.add_metric([name], _number(connection.get("messages")) or 0.0)
            rate.add_metric([name], _number(feed.get("messages_per_second")) or 0.0)
            for kind, count in sorted(feed.get("errors_by_kind", {}).items()):
                errors.add_metric([name, kind], _number(count) or 0.0)
            summary = feed.get("latency_ms", {})
            for stat in _STATS:
                latency.add_metric([name, stat], (_number(summary.get(stat)) or 0.0) / 1000)
            last = _number(connection.get("last_message_ns")) or 0.0
            if last:
                age.add_metric([name], max(0.0, (now_ns - last) / 1e9))
        yield from (connected, state, messages, emitted, rate, errors, latency, age)

    def _quality_families(self) -> Iterator[Metric]:
        levels = CounterMetricFamily(
            P + "quality_items", "items judged, by quality level", labels=["feed", "level"]
        )
        named = {
            key: CounterMetricFamily(
                P + f"quality_{key}", f"{key} seen by the judge", labels=["feed"]
            )
            for key in ("gaps", "missing_bars", "duplicates", "out_of_order")
        }
        for feed, symbols in sorted(self._engine.quality.report().items()):
            totals: dict[str, float] = {}
            counts: dict[str, float] = dict.fromkeys(named, 0.0)
            for stats in symbols.values():
                for level, count in stats.get("levels", {}).items():
                    totals[level] = totals.get(level, 0.0) + (_number(count) or 0.0)
                for key in named:
                    counts[key] += _number(stats.get(key)) or 0.0
            for level, count in totals.items():
                levels.add_metric([feed, level], count)
            for key, family in named.items():
                family.add_metric([feed], counts[key])
        yield levels
        yield from named.values()

    def _continuity_families(self, continuity: Mapping[str, Any]) -> Iterator[Metric]:
        for key, value in sorted(continuity.items()):
            if _number(value) is None:
                continue
            if key in _CONTINUITY_GAUGES:
                yield _gauge(f"continuity_{key}", f"continuity {key} now", value)
            else:
                yield _counter(f"continuity_{key}", f"continuity {key} since start", value)

    def _subscriber_families(self, subscribers: list[Mapping[str, Any]]) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            P + "subscriber_queue_depth", "queued items", labels=["subscriber"]
        )
        dropped = CounterMetricFamily(
            P + "subscriber_dropped", "items dropped by policy", labels=["subscriber"]
        )
        delivered = CounterMetricFamily(
            P + "subscriber_delivered", "items delivered", labels=["subscriber"]
        )
        for sub in subscribers:
            name = str(sub.get("name", ""))
            depth.add_metric([name], _number(sub.get("queue_depth")) or 0.0)
            dropped.add_metric([name], _number(sub.get("dropped")) or 0.0)
            delivered.add_metric([name], _number(sub.get("delivered")) or 0.0)
        yield from (depth, dropped, delivered)

    def _storage_families(self, storage: Mapping[str, Any] | None) -> Iterator[Metric]:
        if storage is None:
            return
        yield _gauge(
            "storage_queue_depth", "rows waiting for the writer", storage.get("queue_depth")
        )
        yield _gauge(
            "storage_failed", "1 once storage has failed", storage.get("failed") is not None
        )
        for key in ("rows_written", "batches", "write_failures", "rows_lost", "rows_rejected"):
            yield _counter(f"storage_{key}", f"storage {key}", storage.get(key))

    def _sink_families(self, sinks: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            P + "sink_statistic", "every number a sink reports", labels=["sink", "name"]
        )
        for sink, stats in sorted(sinks.items()):
            for key, value in sorted(stats.items()):
                number = _number(value)
                if number is not None:
                    family.add_metric([sink, key], number)
        yield family

    def _gateway_families(self, stats: Mapping[str, Any]) -> Iterator[Metric]:
        yield _gauge("gateway_clients", "connected websocket clients", stats.get("clients"))
        yield _counter("gateway_items", "items the gateway received", stats.get("items"))
        yield _counter("gateway_sent", "frames sent to clients", stats.get("sent"))
        yield _counter("gateway_dropped", "frames clients lost by policy", stats.get("dropped"))
        yield _counter("gateway_evicted", "clients closed as too slow", stats.get("evicted"))
        yield _counter("gateway_refused", "requests refused (token)", stats.get("refused"))
        yield _gauge("gateway_queue_depth", "frames queued, all clients", stats.get("queue_depth"))
        yield _gauge(
            "gateway_queue_depth_max", "deepest client queue seen", stats.get("queue_depth_max")
        )
