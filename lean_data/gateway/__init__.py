"""The gateway: the engine's data over WebSocket, Prometheus ``/metrics``, health, a live page.

Start it with ``gateway = await engine.serve(port=8080)`` (or
``await Gateway(engine, host, port).start()``); the engine closes it on stop. See
docs/distribution.md ("The gateway") for the protocol, policies, close codes and series.
"""

from __future__ import annotations

from lean_data.gateway.app import Gateway
from lean_data.gateway.clients import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW
from lean_data.gateway.view import EngineView

__all__ = ["CLOSE_GOING_AWAY", "CLOSE_TOO_SLOW", "EngineView", "Gateway"]
