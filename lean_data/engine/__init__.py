"""The engine: :class:`DataEngine` and the components it is made of.

It owns the lifecycle (NEW → RUNNING → STOPPING → CLOSED, :mod:`~lean_data.engine.state`),
the feed registry and symbol routing, the pipeline that takes every item from a feed's
inbox through the quality, series and storage stages to subscribers
(:mod:`~lean_data.engine.pipeline`), gap filling, warm-up and restart
(:mod:`~lean_data.engine.backfill`), failover between feeds (:mod:`~lean_data.engine.failover`),
subscriber queues (:mod:`~lean_data.engine.subscribers`) and the counters users read
(:mod:`~lean_data.engine.metrics`). It is the highest stage of the library: it imports the
stages below it, none of them imports it.
"""

from lean_data.engine.core import DataEngine
from lean_data.engine.state import EngineState

__all__ = ["DataEngine", "EngineState"]
