"""Done-when 1: a collector process and two consumer processes on a real NATS JetStream.

Three OS processes (tests/bus_collector_child.py, tests/bus_consumer_child.py) share
5,000 real FTX BTC-PERP minute bars through the bus:

1. the collector publishes the first 2,500 and is SIGKILLed mid-stream;
2. consumer A (SQLite storage, durable consumer "a") is SIGKILLed after it has seen at
   least 500 bars; consumer B (durable "b") runs throughout;
3. the collector is restarted and replays the whole file: message-id de-duplication
   keeps the stream exact (5,000 messages, in order, each once);
4. consumer A is restarted: it resumes from its durable position, fills what its killed
   run had taken into its inbox but not delivered from the stream (continuity asks the
   feed's history), and ignores the redelivered bars its storage already holds.

B's callbacks see every bar exactly once, in order. A's callbacks see every bar; the
bars both of A's runs saw are exactly those the killed run had delivered but not yet
committed to its storage (its seed on restart), counted and checked.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from lean_data.bus import BusFeed
from tests.test_bus import SYMBOL, bars, bus_context

ROOT = Path(__file__).resolve().parent.parent
COUNT = 5000


async def until(
    condition: Callable[[], Awaitable[bool]],
    message: str,
    timeout: float = 20.0,  # noqa: ASYNC109  # a polling deadline, reported with the message
) -> None:
    """Poll an async condition (a server's or a file's state) until true; fail after timeout."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {message}")
        await asyncio.sleep(0.01)


CHILDREN: list[asyncio.subprocess.Process] = []


async def child(module: str, *args: object, log: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as errors:  # the child keeps its own copy of the descriptor
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *map(str, args),
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=errors,
        )  # fmt: skip
    CHILDREN.append(proc)
    return proc


@pytest.fixture(autouse=True)
async def no_child_left() -> AsyncIterator[None]:
    """Kill (and reap) whatever child a failing test left running."""
    yield
    while CHILDREN:
        proc = CHILDREN.pop()
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()


def text_of(log: Path) -> str:
    return log.read_text()


async def finished(proc: asyncio.subprocess.Process, log: Path) -> dict[str, Any]:
    """The child's last stdout line as JSON, once it exited 0 (within 30 s)."""
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"child did not finish within 30s; its log:\n{text_of(log)}")
    assert proc.returncode == 0, text_of(log)
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def killed(proc: asyncio.subprocess.Process) -> None:
    proc.kill()  # SIGKILL: no cleanup, no flush, no ack
    await proc.wait()


def seen(path: Path) -> list[tuple[int, int, int]]:
    if not path.exists():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]  # type: ignore[misc]


def committed_last(db: Path) -> int:
    """The open time of the newest bar committed to a consumer's SQLite file (-1: none)."""
    if not db.exists():
        return -1
    conn = sqlite3.connect(db)
    try:
        (last,) = conn.execute(
            "SELECT max(ts_event) FROM bars WHERE feed = 'bus' AND symbol = ?", (SYMBOL,)
        ).fetchone()
    except sqlite3.OperationalError:  # the schema is not there yet
        return -1
    finally:
        conn.close()
    return int(last or -1)


async def test_collector_and_two_consumer_processes_survive_kills(tmp_path: Path) -> None:
    sent = bars(COUNT)
    times = [b.ts_event for b in sent]
    log = tmp_path / "children.log"
    async with bus_context() as bus:
        collector = await child("tests.bus_collector_child", bus.prefix, COUNT, 2500, log=log)
        consumers = {
            name: (tmp_path / f"{name}.db", tmp_path / f"{name}.txt") for name in ("a", "b")
        }
        a_run1, b = [
            await child("tests.bus_consumer_child", bus.prefix, name, db, out, times[-1], log=log)
            for name, (db, out) in consumers.items()
        ]
        a_db, a_out = consumers["a"]

        async def stream_has(n: int) -> bool:
            return await bus.count() >= n

        await until(lambda: stream_has(1500), "the collector published 1,500 bars")
        await killed(collector)  # mid-stream: it had taken 2,500 bars, some unpublished

        async def a_saw_500() -> bool:  # and committed some: its restart is seeded from them
            return len(seen(a_out)) >= 500 and committed_last(a_db) > 0

        await until(a_saw_500, "consumer A saw 500 bars and stored some")
        await killed(a_run1)
        first_run = [t for t, _, _ in seen(a_out)]
        stored = committed_last(a_db)  # what A's restart is seeded from

        published_before = await bus.count()
        assert [x.ts_event for x in await bus.items()] == times[:published_before]  # in order

        collector = await child("tests.bus_collector_child", bus.prefix, COUNT, 0, log=log)
        stats = await finished(collector, log)
        assert (stats["acked"], stats["dropped"]) == (COUNT, 0)
        assert stats["duplicates"] == published_before  # re-sent, stored once
        assert await bus.count() == COUNT
        assert [x.ts_event for x in await bus.items()] == times

        durable = BusFeed("bus", prefix=bus.prefix, durable="a").consumer_name(SYMBOL)
        left = await bus.js.consumer_info(bus.stream, durable)
        a_out2 = tmp_path / "a2.txt"
        a_run2 = await child(
            "tests.bus_consumer_child", bus.prefix, "a", a_db, a_out2, times[-1], log=log
        )
        a_stats = await finished(a_run2, log)
        b_stats = await finished(b, log)

    # B: every bar exactly once, in order, nothing backfilled
    assert seen(consumers["b"][1]) == [(t, 0, 0) for t in times]
    assert b_stats["feed"]["received"] == COUNT

    # A: no loss across the kill; the second run starts right after A's committed storage
    second_run = [t for t, _, _ in seen(a_out2)]
    assert first_run == times[: len(first_run)]
    assert second_run == [t for t in times if t > stored]
    assert set(first_run) | set(second_run) == set(times)
    seen_twice = [t for t in first_run if t > stored]  # delivered, not committed, killed
    assert len(first_run) + len(second_run) - len(seen_twice) == COUNT
    # it resumed from its durable position: only what the consumer had not acked came again
    received = a_stats["feed"]["received"]
    assert left.num_pending <= received <= left.num_pending + left.num_ack_pending < COUNT
    print(
        f"consumer A: first run saw {len(first_run)}, storage had "
        f"{times.index(stored) + 1}, restart received {received} "
        f"(redelivered {a_stats['feed']['redelivered']}), "
        f"backfilled {sum(x[2] for x in seen(a_out2))}, seen twice {len(seen_twice)}; "
        f"outcomes {a_stats['outcomes']}"
    )


async def test_a_consumer_without_storage_killed_mid_stream_loses_nothing(tmp_path: Path) -> None:
    """The feed acks a batch only once the engine processed it (``DataFeed.delivered``),
    so a SIGKILL loses nothing even with no storage to recover from: what the dead
    process had taken but not processed comes again, and at most the one batch in flight
    (``BusFeed.batch``) reaches the callbacks of both runs."""
    sent = bars(COUNT)
    times = [b.ts_event for b in sent]
    log = tmp_path / "children.log"
    async with bus_context() as bus:
        collector = await child("tests.bus_collector_child", bus.prefix, COUNT, 0, log=log)
        await finished(collector, log)
        out1, out2 = tmp_path / "n1.txt", tmp_path / "n2.txt"
        slow = await child(  # 1 ms per bar: its inbox fills while the callback works
            "tests.bus_consumer_child", bus.prefix, "n", "-", out1, times[-1], 0.001, log=log
        )

        async def saw_1000() -> bool:
            return len(seen(out1)) >= 1000

        await until(saw_1000, "the slow consumer saw 1,000 bars")
        await killed(slow)
        first_run = [t for t, _, _ in seen(out1)]
        again = await child(
            "tests.bus_consumer_child", bus.prefix, "n", "-", out2, times[-1], log=log
        )
        stats = await finished(again, log)
    second_run = [t for t, _, _ in seen(out2)]
    assert first_run == times[: len(first_run)]
    assert second_run == times[times.index(second_run[0]) :]  # a suffix, in order
    assert set(first_run) | set(second_run) == set(times)  # nothing lost
    twice = len(set(first_run) & set(second_run))
    assert twice <= BusFeed("x").batch  # only the batch in flight at the kill
    print(
        f"no-storage consumer: first run {len(first_run)}, second run {len(second_run)} "
        f"(received {stats['feed']['received']}), seen by both {twice}"
    )
