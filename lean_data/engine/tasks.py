"""The engine's background tasks, owned by one ``asyncio.TaskGroup`` from start to stop.

Every task the engine starts (the pipeline, subscriber workers, the metrics loop, the bar
clock, backfill answers, feed connects, failover (un)subscribes, storage-failure hooks)
runs in the group. A task body that raises is reported (logged, ``task_failed`` in the
errors table) and ends there: it never cancels its siblings nor tears the engine down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from lean_data.engine.error_log import RecordError
from lean_data.errors import EngineStateError

__all__ = ["EngineTasks", "Spawn"]

log = logging.getLogger("lean_data.engine")

T = TypeVar("T")


class Spawn(Protocol):
    """What components are given to start a task the engine owns (:meth:`EngineTasks.spawn`)."""

    def __call__(
        self, name: str, function: Callable[..., Awaitable[T]], /, *args: Any
    ) -> asyncio.Task[T | None]: ...


class EngineTasks:
    """The task group of one engine run and the tasks alive in it.

    Args:
        record_error: where a failed task is recorded (``task_failed``).
    """

    __slots__ = ("_group", "_record_error", "_tasks")

    def __init__(self, record_error: RecordError) -> None:
        self._record_error = record_error
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def open(self) -> None:
        """Enter the task group (at start)."""
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group = group

    @property
    def group(self) -> asyncio.TaskGroup | None:
        """The open task group (None before start and after stop), for owners of tasks
        that report their own failures (the storage writer)."""
        return self._group

    def spawn(
        self, name: str, function: Callable[..., Awaitable[T]], /, *args: Any
    ) -> asyncio.Task[T | None]:
        """Run ``function(*args)`` as a task of the group; its failure is reported, not raised.

        The coroutine is created inside the task, so a task cancelled before it ran leaves
        no coroutine never awaited. A failed task's result is None.

        Raises:
            EngineStateError: the group is not open (before start or after stop).
        """
        group = self._group
        if group is None:
            raise EngineStateError(f"the engine is not running; cannot start task {name!r}")
        task = group.create_task(self._reported(name, function, args), name=name)
        self._tasks.add(task)
        return task

    async def _reported(
        self, name: str, function: Callable[..., Awaitable[T]], args: tuple[Any, ...]
    ) -> T | None:
        try:
            return await function(*args)
        except Exception as exc:  # reported here: the group must not cancel the siblings
            log.error("engine task %s failed: %r", name, exc, exc_info=exc)
            self._record_error("task_failed", f"{name}: {exc!r}")
            return None
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait until they ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)

    async def close(self, grace_s: float) -> None:
        """Let tasks started meanwhile finish (at most ``grace_s``), then exit the group."""
        group, self._group = self._group, None
        if group is None:
            return
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks), timeout=grace_s)
            for task in late:
                task.cancel()
        await group.__aexit__(None, None, None)
        self._tasks.clear()
