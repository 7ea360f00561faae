"""The engine's lifecycle states (its own module so every engine component can name them)."""

from __future__ import annotations

import enum

__all__ = ["EngineState"]


class EngineState(enum.Enum):
    """The engine's life: NEW → RUNNING → STOPPING → CLOSED (never reopened)."""

    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"
