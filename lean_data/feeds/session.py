"""One streaming session's tasks: the reader and the staleness watchdog, in a TaskGroup.

The supervisor of a :class:`~lean_data.feeds.streaming.StreamingFeed` owns one
:class:`asyncio.TaskGroup` per session. The session ends with the first of: the reader
returns (the server closed the connection), the reader or the watchdog raises (a lost
connection, a stale subscription), or the feed recycles the session through its ``abort``
future (a subscribe that failed). Whatever ended it, the other task is cancelled and
awaited before :func:`run_session_tasks` returns or raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["cancel_requested", "run_session_tasks"]


async def run_session_tasks(
    reader: Callable[[], Awaitable[None]],
    watchdog: Callable[[], Coroutine[Any, Any, None]],
    abort: asyncio.Future[None],
    *,
    name: str,
) -> None:
    """Run ``reader()`` and ``watchdog()`` until one of them, or ``abort``, ends the session.

    Returns when the reader returned. Raises the error of the reader or the watchdog (the
    first, when both failed together), or the one set on ``abort``; a cancel of the caller
    cancels both and is re-raised.
    """
    failure: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as session:
            session.create_task(_read(reader), name=f"{name}:reader")
            session.create_task(watchdog(), name=f"{name}:watchdog")
            await abort  # raises what the feed set; cancelled when a task ends the session
    except BaseExceptionGroup as group:
        failure = _failure(group)
    if failure is not None:  # raised outside the handler: no group in its context
        raise failure


def cancel_requested() -> bool:
    """Return True when the current task was asked to cancel.

    On Python 3.11, ``asyncio.wait_for`` returns (or raises) the inner result when it
    completes together with an outer cancel, and a task group prefers its tasks' errors to
    the cancel: the cancel is lost. Without this check the supervisor would sleep and
    reconnect while ``disconnect`` waits for it forever.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _SessionEnded(Exception):
    """The reader returned: the server closed the connection (ends the session's group)."""


async def _read(reader: Callable[[], Awaitable[None]]) -> None:
    try:
        await reader()
    except asyncio.CancelledError:
        if cancel_requested():
            raise
        # a future cancelled inside the reader ended it, as if the server closed
    raise _SessionEnded


def _failure(group: BaseExceptionGroup) -> BaseException | None:
    """Return the error that ended a session's group; None when the server closed it."""
    for error in group.exceptions:
        found = _failure(error) if isinstance(error, BaseExceptionGroup) else error
        if found is not None and not isinstance(found, _SessionEnded):
            return found
    return None
