"""The engine's inbox: bounded FIFO, producers waiting in order, join."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lean_data.inbox import Batch, Inbox


def drain(inbox: Inbox) -> list[object]:
    out = []
    while (pair := inbox.take()) is not None:
        out.append(pair[1])
    return out


def test_offer_is_fifo_and_refuses_when_full() -> None:
    inbox = Inbox(3)
    assert [inbox.offer("f", i) for i in range(4)] == [True, True, True, False]
    assert len(inbox) == 3
    assert drain(inbox) == [0, 1, 2]
    assert inbox.take() is None


def test_force_goes_beyond_capacity() -> None:
    inbox = Inbox(1)
    assert inbox.offer("f", 1)
    inbox.force("", "marker")
    assert drain(inbox) == [1, "marker"]


def test_a_bad_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="maxsize >= 1"):
        Inbox(0)


async def test_waiting_producers_go_in_arrival_order_and_offer_cannot_overtake() -> None:
    inbox = Inbox(1)
    assert inbox.offer("f", "first")
    order: list[str] = []

    async def producer(name: str) -> None:
        await inbox.put("f", name)
        order.append(name)

    tasks = [asyncio.create_task(producer(n)) for n in ("a", "b", "c")]
    for _ in range(3):
        await asyncio.sleep(0)  # let every producer reach its wait
    assert not inbox.offer("f", "late")  # producers wait: an offer must not jump the line
    taken = []
    while len(taken) < 4:
        if (pair := inbox.take()) is not None:
            taken.append(pair[1])
        else:
            await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert taken == ["first", "a", "b", "c"]
    assert order == ["a", "b", "c"]


async def test_a_cancelled_waiter_hands_its_slot_on() -> None:
    inbox = Inbox(1)
    assert inbox.offer("f", 0)
    first = asyncio.create_task(inbox.put("f", 1))
    second = asyncio.create_task(inbox.put("f", 2))
    await asyncio.sleep(0)
    assert inbox.take() == ("f", 0)  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs: `second` must get the slot
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1.0)
    assert drain(inbox) == [2]


async def test_wait_sleeps_until_an_item_arrives() -> None:
    inbox = Inbox(2)
    waiter = asyncio.create_task(inbox.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    assert inbox.offer("f", 1)
    await asyncio.wait_for(waiter, 1.0)
    assert inbox.take() == ("f", 1)


async def test_join_waits_for_every_item_to_be_done() -> None:
    inbox = Inbox(4)
    await inbox.join()  # nothing put: returns at once
    for i in range(3):
        assert inbox.offer("f", i)
    joined = asyncio.create_task(inbox.join())
    drain(inbox)
    inbox.done(2)
    await asyncio.sleep(0)
    assert not joined.done()
    inbox.done()
    await asyncio.wait_for(joined, 1.0)


async def test_wait_for_a_count_sleeps_until_that_many_or_a_wake() -> None:
    inbox: Inbox[int] = Inbox(100)
    waiter = asyncio.create_task(inbox.wait(3))
    await asyncio.sleep(0)
    for i in range(2):
        assert inbox.offer(0, i)
        await asyncio.sleep(0)
        assert not waiter.done()  # two of three: still asleep
    assert inbox.offer(0, 2)
    await asyncio.wait_for(waiter, 1.0)

    waiter = asyncio.create_task(inbox.wait(50))
    await asyncio.sleep(0)
    inbox.wake()  # a control marker wakes it however few items wait
    await asyncio.wait_for(waiter, 1.0)
    assert drain(inbox) == [0, 1, 2]


# --- batches: one entry per socket read, counted by their items ----------------------------


def test_a_batch_is_one_entry_counted_by_its_items() -> None:
    inbox = Inbox(5)
    assert inbox.offer_many("f", [1, 2, 3])
    assert len(inbox) == 3
    assert inbox.offer("f", 4)
    assert not inbox.offer_many("f", [5, 6])  # 4 + 2 > 5: all or nothing
    assert len(inbox) == 4
    pair = inbox.take()
    assert pair is not None
    assert type(pair[1]) is Batch
    assert list(pair[1].items) == [1, 2, 3]
    assert len(inbox) == 1
    assert drain(inbox) == [4]


def test_one_item_and_no_items_are_not_batches() -> None:
    inbox = Inbox(2)
    assert inbox.offer_many("f", [])
    assert len(inbox) == 0
    assert inbox.offer_many("f", ["only"])
    assert drain(inbox) == ["only"]  # queued as offer() queues it: no Batch to unwrap


def test_a_batch_larger_than_the_capacity_is_taken_alone_not_refused_forever() -> None:
    inbox = Inbox(2)
    assert inbox.offer_many("f", [1, 2, 3, 4])  # empty: it goes in, the bound overshoots once
    assert not inbox.offer("f", 5)
    assert not inbox.offer_many("f", [5, 6])
    assert [batch.items for batch in drain(inbox)] == [[1, 2, 3, 4]]
    assert inbox.offer_many("f", [5, 6])


async def test_put_many_waits_until_the_batch_fits_and_keeps_arrival_order() -> None:
    inbox = Inbox(3)
    assert inbox.offer_many("f", [1, 2])
    put = asyncio.create_task(inbox.put_many("f", [3, 4]))
    single = asyncio.create_task(inbox.put("f", 5))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not put.done()
    assert not single.done()
    assert not inbox.offer("f", "late")  # producers wait: no overtaking
    taken: list[object] = []
    while len(taken) < 3:
        if (pair := inbox.take()) is not None:
            taken.append(pair[1])
        else:
            await asyncio.sleep(0)
    await asyncio.gather(put, single)
    assert [getattr(entry, "items", entry) for entry in taken] == [[1, 2], [3, 4], 5]


async def test_join_counts_a_batch_by_its_items() -> None:
    inbox = Inbox(10)
    inbox.offer_many("f", [1, 2, 3])
    joined = asyncio.create_task(inbox.join())
    pair = inbox.take()
    assert pair is not None
    inbox.done(2)
    await asyncio.sleep(0)
    assert not joined.done()
    inbox.done(1)
    await asyncio.wait_for(joined, 1)


def built(*items: Any) -> tuple[Any, ...]:
    """A tuple made at run time, as the store's rows are (a literal is a constant, untracked)."""
    return items


def test_offer_row_queues_as_offer_does_and_keeps_rows_out_of_the_collector() -> None:
    import gc
    import os

    from lean_data.inbox import LEAF, leaf

    inbox: Inbox[int] = Inbox(2)
    row = built(1, "binance", 2.5, None, "")
    assert gc.is_tracked(row)
    assert inbox.offer_row(0, row)
    assert inbox.offer_row(1, (2, []))  # a container inside: it stays tracked
    assert not inbox.offer_row(1, row)  # full, as offer refuses
    first, second = inbox.take(), inbox.take()
    assert first is not None
    assert second is not None
    assert first[0] == 0
    assert type(first[1]) is Batch
    assert first[1].items == [row]
    assert first[1].items[0] is row
    assert second[0] == 1
    assert second[1].items == [(2, [])]
    assert gc.is_tracked(second[1].items[0])
    assert len(inbox) == 0
    if LEAF is not leaf:  # the C twin: untracked at once, where CPython waits a collection
        assert not gc.is_tracked(row)
    elif os.environ.get("LEAN_DATA_VARIANT") == "compiled":
        pytest.fail("the compiled build must use lean_data._rows.leaf")


def test_rows_of_one_table_in_a_row_share_one_entry_and_keep_the_queue_order() -> None:
    from lean_data.inbox import RUN_ROWS

    inbox: Inbox[int] = Inbox(10_000)
    for n in range(RUN_ROWS + 1):  # one more than a run holds: a second run
        assert inbox.offer_row(0, built(n))
    assert inbox.offer_row(1, built("other table"))
    assert inbox.offer(-1, "control")  # any other entry closes the run before it
    assert inbox.offer_row(1, built("after"))
    assert len(inbox) == RUN_ROWS + 4
    entries = []
    while (pair := inbox.take()) is not None:
        table, item = pair
        entries.append((table, item.items if type(item) is Batch else item))
    assert entries == [
        (0, [(n,) for n in range(RUN_ROWS)]),
        (0, [(RUN_ROWS,)]),
        (1, [("other table",)]),
        (-1, "control"),
        (1, [("after",)]),
    ]
    assert len(inbox) == 0
    assert inbox.offer_row(1, built("new"))  # the taken run is not joined: a new entry
    pair = inbox.take()
    assert pair is not None
    assert pair[1].items == [("new",)]


async def test_a_row_joining_a_run_wakes_a_consumer_waiting_for_that_many() -> None:
    inbox: Inbox[int] = Inbox(100)
    assert inbox.offer_row(0, built(1))
    waiting = asyncio.create_task(inbox.wait(3))
    await asyncio.sleep(0)
    assert inbox.offer_row(0, built(2))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert inbox.offer_row(0, built(3))  # joins the run: three rows now
    await asyncio.wait_for(waiting, 1)


@pytest.mark.parametrize(
    ("items", "untracked"),
    [
        ([1, "a", 2.0, None, b"x", True], True),
        ([1, "leaves"], True),  # a tracked inner tuple of leaves (below): untracked first
        ([1, [2]], False),
        ([1, {}], False),  # an empty dict: CPython keeps such a tuple tracked too
        ([1, "tracked"], False),  # the inner tuple still tracked
    ],
    ids=repr,
)
def test_leaf_untracks_exactly_the_tuples_that_can_hold_no_cycle(
    items: list[Any], untracked: bool
) -> None:
    import gc

    from lean_data.inbox import LEAF, leaf

    if LEAF is leaf:
        pytest.skip("the pure twin returns its argument and leaves tracking to CPython")
    inner = None
    if items[1] in ("leaves", "tracked"):
        inner = items[1] = built(2, "x") if items[1] == "leaves" else built(2, [3])
        assert gc.is_tracked(inner)
    value = tuple(items)  # built at run time: tracked until LEAF
    assert gc.is_tracked(value)
    assert LEAF(value) is value
    assert gc.is_tracked(value) is not untracked
    if inner is not None:
        assert gc.is_tracked(inner) is not untracked
    listed = [1, 2]
    assert LEAF(listed) is listed  # not a tuple: as it is
    assert gc.is_tracked(listed)


# --- the storage writer's take: queued (table, row) pairs moved by table ----------------


def _both_drains() -> list[Any]:
    from lean_data import inbox as module
    from tests.twins import twins

    return twins(module.drain, module.DRAIN, "lean_data._rows.drain")


@pytest.mark.parametrize("twin", _both_drains(), ids=lambda f: f.__module__)
def test_drain_moves_rows_by_table_until_the_limit_or_a_control_entry(twin: Any) -> None:
    from collections import deque

    queue = deque([(0, built("a")), (2, built("b")), (0, built("c")), (-1, "flush"), (1, "d")])
    groups: list[list[Any]] = [[], [], []]

    def take(limit: int) -> Any:
        return twin(queue.popleft, queue.appendleft, Batch, len(queue), groups, limit)

    assert take(2) == (2, None)  # the limit: two rows
    assert groups == [[("a",)], [], [("b",)]]
    assert take(10) == (1, (-1, "flush"))
    assert groups == [[("a",), ("c",)], [], [("b",)]]
    assert list(queue) == [(1, "d")]  # what follows the control entry stays queued
    assert take(0) == (0, None)
    assert take(10) == (1, None)  # `available` calls
    assert groups[1] == ["d"]
    assert not queue


@pytest.mark.parametrize("twin", _both_drains(), ids=lambda f: f.__module__)
def test_drain_takes_a_run_whole_or_its_first_rows_up_to_the_limit(twin: Any) -> None:
    from collections import deque

    run = Batch([built("a"), built("b"), built("c")])
    queue = deque([(0, built("x")), (1, run), (-1, "flush")])
    groups: list[list[Any]] = [[], []]

    def take(limit: int) -> Any:
        return twin(queue.popleft, queue.appendleft, Batch, len(queue), groups, limit)

    assert take(3) == (3, None)  # "x", then two of the run's three rows
    assert groups == [[("x",)], [("a",), ("b",)]]
    assert list(queue) == [(1, run), (-1, "flush")]  # the rest of the run, first in line
    assert run.items == [("c",)]
    assert take(10) == (1, (-1, "flush"))
    assert groups == [[("x",)], [("a",), ("b",), ("c",)]]
    assert not queue
    queue.append((0, Batch([built("y")])))
    assert take(10) == (1, None)  # a whole run
    assert groups[0] == [("x",), ("y",)]


@pytest.mark.parametrize("twin", _both_drains(), ids=lambda f: f.__module__)
@pytest.mark.parametrize(
    ("entry", "error"),
    [(("row",), TypeError), ((0, "a", "b"), TypeError), (("0", "a"), TypeError),
     ([0, "a"], TypeError), ((5, "a"), IndexError), ((0, Batch(("a",))), TypeError)],
    ids=repr,
)  # fmt: skip
def test_drain_refuses_what_is_not_a_pair_of_a_table_and_a_row(
    twin: Any, entry: Any, error: type[Exception]
) -> None:
    from collections import deque

    queue = deque([(0, "kept"), entry])
    groups: list[list[Any]] = [[]]
    with pytest.raises(error):
        twin(queue.popleft, queue.appendleft, Batch, len(queue), groups, 10)
    assert groups == [["kept"]]
    single = deque([(0, "a")])
    with pytest.raises(TypeError):  # a group that is not a list
        twin(single.popleft, single.appendleft, Batch, 1, [()], 10)


async def test_take_rows_counts_what_it_took_and_wakes_waiting_producers() -> None:
    inbox: Inbox[int] = Inbox(3)
    for row in ("a", "b", "c"):
        assert inbox.offer_row(0, built(row))  # one run
    producers = [asyncio.create_task(inbox.put(1, built(n))) for n in ("d", "e")]
    await asyncio.sleep(0)
    assert not any(p.done() for p in producers)  # full: both wait
    groups: list[list[Any]] = [[], []]
    assert inbox.take_rows(groups, 2) == (2, None)  # within the run: one row stays
    assert len(inbox) == 1
    assert groups[0] == [("a",), ("b",)]
    await asyncio.wait_for(asyncio.gather(*producers), 1.0)  # two slots freed: both put
    assert len(inbox) == 3
    inbox.force(-1, "stop")
    assert inbox.take_rows(groups, 10) == (3, (-1, "stop"))
    assert groups == [[("a",), ("b",), ("c",)], [("d",), ("e",)]]
    assert len(inbox) == 0
    assert inbox.take_rows(groups, 10) == (0, None)


# ------------------------------------------------------------------ the soft (crowded) mark


def test_offer_refuses_from_the_soft_mark_on_though_there_is_room() -> None:
    inbox = Inbox(10, soft=3)
    assert [inbox.offer("f", i) for i in range(4)] == [True, True, True, False]
    assert not inbox.offer_many("f", ["a", "b"])  # crowded: a batch is refused too
    assert inbox.take() is not None  # below the mark again
    assert inbox.offer_many("f", ["a", "b"])  # it may go past the mark, within capacity
    assert len(inbox) == 4


def test_a_soft_mark_is_at_most_the_capacity_and_at_least_one() -> None:
    inbox = Inbox(2, soft=50)
    assert [inbox.offer("f", i) for i in range(3)] == [True, True, False]
    with pytest.raises(ValueError, match="soft >= 1"):
        Inbox(2, soft=0)


async def test_a_crowded_put_lets_the_consumer_take_a_turn_first() -> None:
    inbox = Inbox(10, soft=2)
    inbox.offer("f", 0)
    inbox.offer("f", 1)
    seen: list[int] = []

    async def consumer() -> None:  # what the pipeline does: take what is there
        while (pair := inbox.take()) is not None:
            seen.append(pair[1])

    task = asyncio.get_running_loop().create_task(consumer())
    await inbox.put("f", 2)  # crowded, not full: one loop turn, in which the consumer ran
    await task
    assert seen == [0, 1]
    assert drain(inbox) == [2]


async def test_a_crowded_put_does_not_wait_for_a_consumer_that_cannot_run() -> None:
    # the pipeline awaits something else (a full subscriber queue): producers are not held
    # at the soft mark but go on to the capacity, as without one
    inbox = Inbox(5, soft=2)
    for i in range(5):
        await asyncio.wait_for(inbox.put("f", i), 1.0)
    await asyncio.wait_for(inbox.put_many("f", []), 1.0)
    assert len(inbox) == 5
    putter = asyncio.get_running_loop().create_task(inbox.put_many("f", ["x", "y"]))
    for _ in range(3):
        await asyncio.sleep(0)  # let the producer reach its wait
    assert not putter.done()  # full: this one waits for room, as before
    assert len(inbox._putters) == 1  # waiting in line, not merely not started
    assert drain(inbox) == [0, 1, 2, 3, 4]
    await asyncio.wait_for(putter, 1.0)
    (batch,) = drain(inbox)
    assert isinstance(batch, Batch)
    assert batch.items == ["x", "y"]
