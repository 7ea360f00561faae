"""The C flattening of a statement's rows (lean_data._rows) gives the pure twin's list.

``storage.rows.statement_values`` is the contract; ``STATEMENT_VALUES`` is what the SQLite
sink calls: the C function in the compiled build (lean_data/compiled.py, C_MODULES), the
pure one otherwise. Checked on real bar rows, on generated rows of any values (flags,
NaN, None, text, big ints, hostile objects), on a missing or unhashable series key (the
same exception), and on slices of the list.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_data.models import Resolution, TradeBar
from lean_data.quality.levels import CLEAN
from lean_data.storage import rows as rows_module
from lean_data.storage.rows import STATEMENT_VALUES, bar_row, statement_values

IN_C = STATEMENT_VALUES is not statement_values


def test_the_c_function_is_used_exactly_when_the_package_is_compiled() -> None:
    variant = os.environ.get("LEAN_DATA_VARIANT")
    if variant == "compiled":
        assert IN_C
        assert type(STATEMENT_VALUES).__name__ == "builtin_function_or_method"
    elif variant == "pure":
        assert not IN_C


def same(got: list[Any], want: list[Any]) -> None:
    """Equal value by value, of the same type (NaN: the same object, as it was queued)."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert type(g) is type(w)
        assert g is w or g == w


def real_rows(count: int = 40) -> list[tuple[Any, ...]]:
    """Bar rows as the store queues them (bar_row), of two series, flags both ways, with and
    without a verdict (tests/test_sqlite_rows_c.py uses them too)."""
    out = []
    for i in range(count):
        symbol = "BTC/USDT" if i % 2 else "ETH/USDT"
        t = 60_000_000_000 * i
        bar = TradeBar(
            symbol, t, 1.5 + i, 2.0 + i, 1.0, 1.75, float(i), Resolution.MINUTE,
            ts_recv=t + 5, closed=i % 3 != 0, revision=i % 2, backfilled=i % 5 == 0,
        )  # fmt: skip
        out.append(bar_row(bar, "binance", CLEAN if i % 4 else None, bar.ts_recv))
    return out


IDS = {("binance", "BTC/USDT", "1m"): 1, ("binance", "ETH/USDT", "1m"): 2}


@pytest.mark.parametrize(("start", "end"), [(0, 40), (0, 1), (7, 23), (39, 40), (5, 5)])
def test_real_bar_rows_flatten_as_the_pure_twin_does(start: int, end: int) -> None:
    rows = real_rows()
    same(STATEMENT_VALUES(rows, start, end, IDS), statement_values(rows, start, end, IDS))
    same(STATEMENT_VALUES(rows, start, end, None), statement_values(rows, start, end, None))
    same(STATEMENT_VALUES(rows, start, end), statement_values(rows, start, end))


def test_flags_become_ints_and_nothing_else_changes() -> None:
    nan = math.nan
    rows = [("f", "s", "1m", True, False, 1, 0, 1.0, nan, None, "", 2**80, -(2**70))]
    flat = STATEMENT_VALUES(rows, 0, 1, {("f", "s", "1m"): 3})
    same(flat, [3, 1, 0, 1, 0, 1.0, nan, None, "", 2**80, -(2**70)])


class Hostile:
    """A value that is none of the types sqlite3 binds: passed on unchanged."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("compared")

    __hash__ = None  # type: ignore[assignment]


def test_a_hostile_value_is_passed_on_untouched() -> None:
    value = Hostile()
    flat = STATEMENT_VALUES([("a", "b", value, True)], 0, 1)
    assert flat[2] is value
    assert flat[:2] == ["a", "b"]
    assert flat[3] == 1


def test_a_series_not_in_ids_raises_keyerror_with_its_key() -> None:
    rows = [*real_rows(), ("kraken", "BTC/USD", "1m", 1, 2.0)]
    for flatten in {STATEMENT_VALUES, statement_values}:
        with pytest.raises(KeyError) as raised:
            flatten(rows, 0, len(rows), IDS)
        # CPython's dict raises KeyError((key,)), mypyc's lookup KeyError(key): either names it
        args = raised.value.args
        assert ("kraken", "BTC/USD", "1m") in (args, args[0])


def test_an_unhashable_series_text_raises_typeerror() -> None:
    rows: list[tuple[Any, ...]] = [("binance", ["not", "text"], "1m", 1)]
    for flatten in {STATEMENT_VALUES, statement_values}:
        with pytest.raises(TypeError):
            flatten(rows, 0, 1, IDS)


@pytest.mark.skipif(not IN_C, reason="the C function is built with the compiled package")
def test_the_c_function_refuses_what_is_not_rows_with_one_clear_error() -> None:
    with pytest.raises(TypeError, match="rows must be a list"):
        STATEMENT_VALUES((("a",),), 0, 1)
    with pytest.raises(TypeError, match="a row must be a tuple"):
        STATEMENT_VALUES([["a"]], 0, 1)
    with pytest.raises(TypeError, match="ids must be a dict"):
        STATEMENT_VALUES([("a", "b", "c")], 0, 1, [])
    with pytest.raises(IndexError):
        STATEMENT_VALUES([("a",)], 0, 2)
    with pytest.raises(IndexError):
        STATEMENT_VALUES([("a", "b")], 0, 1, {})  # fewer than the three series texts
    with pytest.raises(TypeError):
        STATEMENT_VALUES([("a",)], 0)


VALUES = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.none(),
    st.text(max_size=5),
    st.binary(max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(VALUES, min_size=3, max_size=20).map(tuple), max_size=30),
    st.data(),
)
def test_any_rows_flatten_as_the_pure_twin_does(
    rows: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, len(rows)))
    end = data.draw(st.integers(start, len(rows)))
    same(STATEMENT_VALUES(rows, start, end), statement_values(rows, start, end))
    ids: dict[Any, int] = {}
    for row in rows:  # every drawn value is hashable
        ids.setdefault(row[:3], len(ids))
    same(STATEMENT_VALUES(rows, start, end, ids), statement_values(rows, start, end, ids))


def test_the_module_exports_the_name_the_sqlite_sink_uses() -> None:
    from lean_data.storage import sqlite_sink

    assert sqlite_sink.STATEMENT_VALUES is rows_module.STATEMENT_VALUES


# --- a trade bar's row: lean_data._rows.bar_row against its pure twin, rows.bar_row_of ----


def _row_builders() -> list[Any]:
    from tests.twins import twins

    return twins(rows_module.bar_row_of, rows_module._BAR_ROW, "lean_data._rows.bar_row")


@pytest.mark.parametrize("build", _row_builders(), ids=lambda f: f.__module__)
@pytest.mark.parametrize("quality", [(0.9, "GOOD", ""), (None, None, ""), (0.5, "FAIR", "a,b")])
def test_a_bar_row_is_the_pure_twins_and_untracked_when_it_holds_plain_values(
    build: Any, quality: tuple[Any, Any, Any]
) -> None:
    import gc

    from lean_data.slots import BAR

    bars = [
        TradeBar(
            f"S{i}", 60_000_000_000 * i, 1.5, 2.0 + i, 1.0, 1.75, float(i), resolution,
            ts_recv=i + 1, closed=i % 2 == 0, revision=i, backfilled=i % 3 == 0,
        )
        for i, resolution in enumerate((Resolution.MINUTE, Resolution.parse("5m")))
    ]  # fmt: skip
    for i, bar in enumerate(bars):
        fields = BAR(bar)
        row = build(fields, "binance", quality, 99 + i)
        assert row == rows_module.bar_row_of(fields, "binance", quality, 99 + i)
        assert row == (*bar_row(bar, "binance", None, 99 + i)[:12], *quality, 99 + i)
        assert row[2] == bar.resolution.name
        if build is not rows_module.bar_row_of:  # the C twin: untracked at once
            assert not gc.is_tracked(row)


@pytest.mark.parametrize("build", _row_builders(), ids=lambda f: f.__module__)
def test_a_kept_invalid_bars_odd_values_stay_tracked_or_raise_as_the_twin_does(
    build: Any,
) -> None:
    import gc

    from lean_data.slots import BAR

    bar = TradeBar("S", 1, 1.0, 1.0, 1.0, 1.0, 1.0, Resolution.MINUTE, ts_recv=1)
    fields = list(BAR(bar))
    fields[2] = [1.0]  # an INVALID bar kept (store_invalid) may hold any value
    row = build(tuple(fields), "binance", (None, None, ""), 5)
    assert row[4] == [1.0]
    assert gc.is_tracked(row)  # a container inside: the collector keeps watching it
    fields[2], fields[7] = 1.0, "not a resolution"
    with pytest.raises(AttributeError):
        build(tuple(fields), "binance", (None, None, ""), 5)
    if build is not rows_module.bar_row_of:
        with pytest.raises(TypeError, match="bar_row"):
            build(tuple(fields[:5]), "binance", (None, None, ""), 5)
