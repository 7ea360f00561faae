"""A feed's background tasks live in its own asyncio.TaskGroup (DataFeed.spawn / close)."""

from __future__ import annotations

import asyncio

import pytest

from lean_data.feeds.base import FeedStatus
from tests.helpers import IdleFeed


class TaskFeed(IdleFeed):
    """A feed whose only behaviour is the tasks a test spawns on it."""

    def __init__(self) -> None:
        super().__init__("tasks")
        self.disconnects = 0

    async def disconnect(self) -> None:
        self.disconnects += 1


async def _fail() -> None:
    await asyncio.sleep(0)
    raise ValueError("boom")


async def test_a_failing_task_is_reported_and_its_siblings_and_starter_go_on() -> None:
    feed = TaskFeed()
    sibling_may_end = asyncio.Event()
    sibling = feed.spawn(sibling_may_end.wait(), name="sibling")
    failing = feed.spawn(_fail(), name="failing")
    await asyncio.wait({failing})
    assert feed.errors == 1
    assert feed.last_error == "task_failed: tasks:failing: ValueError('boom')"
    assert not sibling.done()
    assert feed.get_connection_status()["tasks"] == 1
    sibling_may_end.set()
    await sibling
    assert feed.get_connection_status()["tasks"] == 0
    await feed.close()
    assert feed.status is FeedStatus.CLOSED


async def test_close_cancels_every_task_once_and_always_ends_closed() -> None:
    feed = TaskFeed()
    running = feed.spawn(asyncio.Event().wait(), name="running")
    await asyncio.sleep(0)  # running has started; the next one has not
    unstarted = feed.spawn(asyncio.Event().wait(), name="unstarted")
    await feed.close()
    assert running.cancelled()
    assert unstarted.cancelled()  # and its coroutine was closed without a warning
    assert feed.status is FeedStatus.CLOSED
    await feed.close()
    assert feed.disconnects == 1
    assert feed.errors == 0


async def test_close_ends_closed_when_disconnect_fails() -> None:
    class Broken(TaskFeed):
        async def disconnect(self) -> None:
            raise OSError("socket already gone")

    feed = Broken()
    feed.spawn(asyncio.Event().wait(), name="waiting")
    with pytest.raises(OSError, match="already gone"):
        await feed.close()
    assert feed.status is FeedStatus.CLOSED
    assert feed.get_connection_status()["tasks"] == 0
