"""The engine: :class:`DataEngine` and the components it is made of.

:mod:`~lean_data.engine.core` holds the ``DataEngine``: its lifecycle (NEW → RUNNING →
STOPPING → CLOSED, :mod:`~lean_data.engine.state`) and public API. It composes components,
each given the collaborators it needs in its constructor: the pipeline that takes every item
from the inbox through the quality, series and storage stages to subscribers
(:mod:`~lean_data.engine.pipeline`, its typed control messages and waiting steps in
:mod:`~lean_data.engine.steps`), gap filling, warm-up, restart and built bars
(:mod:`~lean_data.engine.backfill`), failover between feeds (:mod:`~lean_data.engine.failover`),
feeds, routing and subscriptions (:mod:`~lean_data.engine.registry`), callbacks
(:mod:`~lean_data.engine.subscribers`) and subscriber queues
(:mod:`~lean_data.engine.subscriber`), the task group every background task lives in
(:mod:`~lean_data.engine.tasks`), the engine's side of storage and its errors table
(:mod:`~lean_data.engine.storage_link`, :mod:`~lean_data.engine.error_log`) and the counters
users read (:mod:`~lean_data.engine.metrics`). It is the highest stage of the library: it
imports the stages below it, none of them imports it.
"""

from lean_data.engine.core import DataEngine
from lean_data.engine.state import EngineState

__all__ = ["DataEngine", "EngineState"]
