"""The engine's task group: a failing task is reported and ends alone; stop always closes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lean_data import Config, DataEngine, EngineState
from lean_data.engine.tasks import EngineTasks
from lean_data.errors import EngineStateError
from lean_data.storage.sqlite import DataPersistence
from tests.helpers import ListFeed


async def test_a_failing_task_is_recorded_and_its_siblings_run_on() -> None:
    recorded: list[tuple[str, str]] = []

    def record(kind: str, message: str, *, feed: str = "", symbol: str = "") -> None:
        recorded.append((kind, message))

    tasks = EngineTasks(record)
    await tasks.open()
    sibling_done = asyncio.Event()

    async def fail() -> int:
        raise RuntimeError("boom")

    async def sibling() -> str:
        await sibling_done.wait()
        return "still here"

    failing = tasks.spawn("failing", fail)
    other = tasks.spawn("sibling", sibling)
    assert await failing is None
    assert recorded == [("task_failed", "failing: RuntimeError('boom')")]
    assert not other.done()
    sibling_done.set()
    assert await other == "still here"
    await tasks.close(1.0)
    with pytest.raises(EngineStateError, match="not running"):
        tasks.spawn("late", fail)


async def test_tasks_left_at_close_are_cancelled_after_the_grace() -> None:
    tasks = EngineTasks(lambda kind, message, *, feed="", symbol="": None)
    await tasks.open()
    forever = tasks.spawn("forever", asyncio.Event().wait)
    await tasks.close(0.01)
    assert forever.cancelled()


class BrokenFeed(ListFeed):
    """A feed whose connect raises an error no feed should raise (a bug)."""

    async def connect(self) -> bool:
        raise RuntimeError("connect bug")


async def test_a_failing_feed_task_is_in_the_errors_table_and_the_engine_runs_on(
    tmp_path: Path,
) -> None:
    db = tmp_path / "tasks.db"
    engine = DataEngine(Config(db_path=db, metrics_interval_s=0))
    engine.add_feed(BrokenFeed("broken"))
    await engine.start()  # the connect attempt fails inside its task: start goes on
    assert engine.state is EngineState.RUNNING
    await engine.stop()
    assert engine.state is EngineState.CLOSED
    store = DataPersistence(db)
    await store.open()
    try:
        errors = await store.get_errors(kind="task_failed")
    finally:
        await store.close()
    assert [e["message"] for e in errors] == ["connect:broken: RuntimeError('connect bug')"]


class BadCloseFeed(ListFeed):
    """A feed whose disconnect raises (a bug in the feed)."""

    async def disconnect(self) -> None:
        raise RuntimeError("disconnect bug")


async def test_stop_ends_closed_when_a_feed_fails_to_close(tmp_path: Path) -> None:
    engine = DataEngine(Config(db_path=tmp_path / "close.db", metrics_interval_s=0))
    engine.add_feed(BadCloseFeed("bad"))
    await engine.start()
    with pytest.raises(RuntimeError, match="disconnect bug"):
        await engine.stop()  # raised after storage closed: no ResourceWarning
    assert engine.state is EngineState.CLOSED
    await engine.stop()  # idempotent once closed
    assert engine.state is EngineState.CLOSED


async def test_the_storage_writer_runs_in_the_engine_task_group(tmp_path: Path) -> None:
    engine = DataEngine(Config(db_path=tmp_path / "t.db", metrics_interval_s=0))
    await engine.start()
    group = engine._tasks.group
    assert group is not None
    (writer,) = [t for t in asyncio.all_tasks() if t.get_name().startswith("lean_data.storage:")]
    assert writer in group._tasks  # the group waits for it at stop: no orphan writer
    await engine.stop()
    assert writer.done()
    assert not writer.cancelled()  # stopped by close(), its batch committed
    assert engine._tasks.group is None
