"""Continuity's hot path agrees with its reference path, on real bars (issue 12, item 6).

``Continuity.admit_fast`` is a hand-inlined copy of what ``admit`` does through
``_advance`` / ``_remember`` for the next bar of a running series. Two trackers take the
same input, one through ``admit_fast``, one through ``admit``; after every bar their answers
and their whole state (the remembered ring of slots, series heads, runs, parked bars,
counters) must be the same. The input is real FTX BTC-PERP minute bars
(tests/fixtures/nautilus_trader/btc-perp-20211231-20220201_1m.csv, see PROVENANCE.md),
played by hypothesis with exact repeats, corrections, source revision flags (on earlier bars
and on the next one), NaN volumes,
gaps, bars from another feed, late (out-of-order) bars and resumes, after a run long enough
to fill and wrap the 128-slot ring (the fast path writes slots itself only then).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_data.loaders import load_file
from lean_data.models import TradeBar
from lean_data.series.continuity import Action, Continuity, Decision

from .conftest import FIXTURES

FTX = FIXTURES / "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
BARS = [b for b in load_file(FTX, symbol="BTC-PERP") if isinstance(b, TradeBar)][:1200]
SYMBOL, RESOLUTION = "BTC-PERP", BARS[0].resolution

KINDS = (
    "next", "next", "next", "next_flag", "repeat", "revise", "flag", "nan", "gap", "switch",
    "resume",
)  # fmt: skip
OPS = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(min_value=0, max_value=400)), max_size=120
)


def _answer(decision: Decision | None, bar: TradeBar) -> tuple[Any, ...]:
    """A comparable form of an answer; ``admit_fast``'s None is 'deliver the bar as it is'."""
    if decision is None:
        return (Action.DELIVER, repr(bar), None)
    shown = None if decision.bar is None else repr(decision.bar)  # repr: NaN equals NaN
    return (decision.action, shown, decision.request)


def _state(tracker: Continuity) -> tuple[Any, ...]:
    series = {key: _series_state(s) for key, s in tracker._series.items()}
    late = [(f, repr(b)) for f, b in tracker.late_bars]
    return (tracker.statistics(), list(tracker._runs), series, late)


def _series_state(s: Any) -> tuple[Any, ...]:
    parked = None if s.parked is None else [(f, repr(b)) for f, b in s.parked]
    ring = (list(s.opens), list(s.feeds), bytes(s.values), s.head)
    heads = (s.next_open, s.last_open, s.run_feed, s.run_start)
    return (ring, heads, parked, s.request, s.seeded, s.hold)


class Player:
    """Turns hypothesis' ops into bars (real ones, or real ones changed as a venue would)."""

    def __init__(self) -> None:
        self.cursor = 0  # the next real bar
        self.feed = "ftx"

    def bar(self, kind: str, k: int) -> TradeBar | None:
        if kind in ("next", "next_flag", "nan", "switch", "gap"):
            if kind == "gap":
                self.cursor += 1 + k % 4  # bars the calendar expects, never sent
            if kind == "switch":
                self.feed = "backup" if self.feed == "ftx" else "ftx"
            if self.cursor >= len(BARS):
                return None
            bar = BARS[self.cursor]
            self.cursor += 1
            if kind == "next_flag":  # a correction of a bar this series never had
                return replace(bar, revision=1 + k % 3)
            return replace(bar, volume=math.nan) if kind == "nan" else bar
        seen = BARS[max(0, self.cursor - 1 - k % 160)]  # up to 160 back: beyond the ring too
        if kind == "repeat":
            return replace(seen)
        if kind == "revise":
            return replace(seen, close=seen.close + 0.5 * (1 + k % 3))
        return replace(seen, revision=1 + k % 3)  # "flag": the source says a correction


def _resume(tracker: Continuity, k: int) -> tuple[Any, ...]:
    request = tracker._series[(SYMBOL, RESOLUTION)].request
    if request is None:
        return ()
    if request.reason == "seed":
        tracker.seed(SYMBOL, RESOLUTION, None)
    fill = [b for b in BARS if request.start <= b.ts_event < request.end] if k % 2 else []
    out, again = tracker.resume(
        SYMBOL,
        RESOLUTION,
        fill,
        empty=not fill,
        through=request.end if request.reason == "gap" else None,
        answered=k % 3 != 0,
    )
    return ([(f, repr(b)) for f, b in out], again, tracker.take_resumed_duplicates())


@settings(max_examples=60, deadline=None)
@given(
    warm=st.integers(min_value=0, max_value=300),
    seeded=st.booleans(),
    ops=OPS,
)
def test_the_fast_path_and_the_reference_path_agree_on_every_answer_and_state(
    warm: int, seeded: bool, ops: list[tuple[str, int]]
) -> None:
    fast = Continuity(seed_from_storage=seeded)
    reference = Continuity(seed_from_storage=seeded)
    player = Player()
    steps = [("next", 0)] * warm + ops
    for kind, k in steps:
        if kind == "resume":
            if fast.parked(SYMBOL, RESOLUTION):
                assert _resume(fast, k) == _resume(reference, k)
                assert _state(fast) == _state(reference)
            continue
        bar = player.bar(kind, k)
        if bar is None:
            break
        feed = player.feed
        assert _answer(fast.admit_fast(feed, bar), bar) == _answer(reference.admit(feed, bar), bar)
        assert _state(fast) == _state(reference)
    assert fast.take_runs() == reference.take_runs()
    assert _state(fast) == _state(reference)


def test_the_fast_path_writes_the_ring_itself_once_it_is_full() -> None:
    """The property above reaches the inlined slot write: a run longer than the ring."""
    fast, reference = Continuity(), Continuity()
    for bar in BARS[:300]:
        assert _answer(fast.admit_fast("ftx", bar), bar) == _answer(
            reference.admit("ftx", bar), bar
        )
    series = fast._series[(SYMBOL, RESOLUTION)]
    assert (len(series.feeds), series.head) == (128, 300 % 128)
    assert _state(fast) == _state(reference)


def test_the_c_slot_writer_writes_what_the_pure_one_writes() -> None:
    """lean_data._rows.remember_bar (the compiled build's) against the pure _remember_bar:
    the same slot bytes and open time for real and odd values, the same refusals, and
    nothing written when a value does not fit."""
    import struct
    from array import array

    from lean_data.series import continuity as module
    from lean_data.slots import BAR

    if module._REMEMBER_BAR is module._remember_bar:
        pytest.skip("the C writer is built with the compiled package")
    base = TradeBar("BTC/USDT", 1_700_000_040_000_000_000, 1.5, 2.0, 0.5, 1.75, 3.0, revision=2)
    for bar in (base, replace(base, volume=math.nan, open=4, revision=0)):
        c_values, c_opens = bytearray(96), array("q", [0, 0])
        py_values, py_opens = bytearray(96), array("q", [0, 0])
        module._REMEMBER_BAR(c_values, c_opens, 1, BAR(bar))
        module._remember_bar(py_values, py_opens, 1, BAR(bar))
        assert (c_values, c_opens) == (py_values, py_opens)
    for bad in (replace(base, revision=2**63), replace(base, close="x")):
        values, opens = bytearray(b"\x01" * 48), array("q", [7])
        with pytest.raises((TypeError, OverflowError)):
            module._REMEMBER_BAR(values, opens, 0, BAR(bad))
        assert (values, opens) == (bytearray(b"\x01" * 48), array("q", [7]))
        with pytest.raises(struct.error):
            module._remember_bar(bytearray(48), array("q", [7]), 0, BAR(bad))
    for size, slot in ((48, 1), (95, 1), (47, 0), (96, -1)):  # the slot is not allocated
        with pytest.raises(IndexError, match="slot not allocated"):
            module._REMEMBER_BAR(bytearray(size), array("q", [7, 7]), slot, BAR(base))
    with pytest.raises(IndexError):
        module._REMEMBER_BAR(bytearray(96), array("q", [7]), 1, BAR(base))
    with pytest.raises(TypeError, match="array"):
        module._REMEMBER_BAR(bytearray(48), array("d", [7.0]), 0, BAR(base))
