"""The SQLite binding in C (lean_data._sqlite_rows) stores what sqlite3 stores, or declines.

``lean_data._sqlite_rows.write`` inserts queued rows (tuples) on a sqlite3 connection with
the parameters ``storage.rows.statement_values`` gives, binding and stepping without the GIL;
the SQLite sink uses it when it is built (the compiled variant on a machine with SQLite's
headers, as CI's) and otherwise has sqlite3 bind the same statements. The contract checked
here: the same rows, values and storage types as sqlite3's execute of the same INSERT (real
bar rows, generated values of every kind); a series not in ``ids`` raises before anything
is written; False and nothing written for what it does not bind exactly as sqlite3 does;
the exception sqlite3 raises, with the same code and name, for what SQLite refuses.
"""

from __future__ import annotations

import math
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_data.storage import schema as sch
from lean_data.storage import sqlite_sink
from lean_data.storage.rows import statement_values
from lean_data.storage.sqlite_errors import ROW_ERRORS, failure_kind
from tests.test_storage_rows_c import real_rows

VARIANT = os.environ.get("LEAN_DATA_VARIANT")


def test_the_c_binding_is_used_exactly_when_the_package_is_compiled() -> None:
    if VARIANT == "compiled":  # CI's machine has SQLite's headers: the module must be there
        from lean_data import _sqlite_rows

        assert _sqlite_rows.usable(), "sqlite3 and lean_data._sqlite_rows load two SQLites"
        assert sqlite_sink._WRITE is _sqlite_rows.write
    elif VARIANT == "pure":
        assert sqlite_sink._WRITE is None


c_module = pytest.importorskip("lean_data._sqlite_rows", reason="a pure build has no C")
write = c_module.write

TABLE = "CREATE TABLE t (a, b, c)"  # no declared types: every value keeps its own
INSERT_ONE = "INSERT INTO t VALUES (?, ?, ?)"


def insert(connection: sqlite3.Connection, rows: list[tuple[Any, ...]], block: int = 4) -> bool:
    block_sql = "INSERT INTO t VALUES " + ", ".join(["(?, ?, ?)"] * block)
    return bool(write(connection, rows, None, block_sql, block, INSERT_ONE))


def stored(
    connection: sqlite3.Connection, table: str = "t", order: str = "rowid"
) -> list[tuple[Any, ...]]:
    columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
    typed = ", ".join(f"{c}, typeof({c})" for c in columns)
    return connection.execute(f"SELECT {typed} FROM {table} ORDER BY {order}").fetchall()


def fresh(path: Path | str = ":memory:") -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    connection.execute(TABLE)
    return connection


def same_rows(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            assert type(u) is type(v)
            assert u == v or (isinstance(u, float) and math.isnan(u) and math.isnan(v))


values_st = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),  # stored as 1 and 0, as statement_values gives them
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",))),  # NUL and astral too
    st.binary(max_size=40),
    st.none(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(values_st, values_st, values_st), max_size=11))
def test_any_storable_values_are_stored_as_sqlite3_stores_them(rows: list[tuple[Any, ...]]) -> None:
    ours, theirs = fresh(), fresh()
    assert insert(ours, rows)  # 4-row blocks and one-row statements for the rest
    if rows:
        flat = statement_values(rows, 0, len(rows))
        theirs.execute("INSERT INTO t VALUES " + ", ".join(["(?, ?, ?)"] * len(rows)), flat)
    same_rows(stored(ours), stored(theirs))


def test_real_bar_rows_upserted_in_blocks_equal_sqlite3s_multi_row_statement() -> None:
    rows = real_rows(70)
    rows += rows[:5]  # the same bars again: the upsert updates them, in order
    ids = {("binance", "BTC/USDT", "1m"): 1, ("binance", "ETH/USDT", "1m"): 2}
    values = statement_values(rows, 0, len(rows), ids)
    databases = []
    for _ in range(2):
        connection = sqlite3.connect(":memory:")
        for statement in sch.DDL:
            connection.execute(statement)
        connection.executemany(
            "INSERT INTO bar_series (id, feed, symbol, resolution) VALUES (?, ?, ?, ?)",
            [(n, *key) for key, n in ids.items()],
        )
        databases.append(connection)
    ours, theirs = databases
    block = sch.write_sql(sch.BARS, 32)
    assert write(ours, rows, dict(ids), block, 32, sch.WRITE_SQL[sch.BARS])
    theirs.execute(sch.write_sql(sch.BARS, len(rows)), values)
    key = "series_id, ts_event"
    same_rows(stored(ours, "bar_rows", key), stored(theirs, "bar_rows", key))
    assert len(stored(ours, "bar_rows", key)) == 70


def test_a_series_not_in_ids_raises_key_error_before_anything_is_written() -> None:
    rows = real_rows(70)
    connection = sqlite3.connect(":memory:")
    for statement in sch.DDL:
        connection.execute(statement)
    block, one = sch.write_sql(sch.BARS, 32), sch.WRITE_SQL[sch.BARS]
    only_eth = {("binance", "ETH/USDT", "1m"): 2}
    with pytest.raises(KeyError) as ours:
        write(connection, rows, only_eth, block, 32, one)
    assert ours.value.args == (("binance", "BTC/USDT", "1m"),)  # as dict[key] raises it
    unhashable = [(["binance"], "BTC/USDT", "1m", *rows[0][3:])]
    with pytest.raises(TypeError, match="unhashable"):
        write(connection, unhashable, only_eth, block, 32, one)
    assert not connection.in_transaction
    assert connection.execute("SELECT COUNT(*) FROM bar_rows").fetchone() == (0,)
    not_an_id = {("binance", "BTC/USDT", "1m"): "1", ("binance", "ETH/USDT", "1m"): 2}
    assert not write(connection, rows, not_an_id, block, 32, one)  # sqlite3 binds it


@pytest.mark.parametrize(
    "hostile",
    [  # beyond 64 bits: sqlite3 raises OverflowError
        -(2**63) - 1,
        "\udc80",  # a lone surrogate: sqlite3 raises UnicodeEncodeError
        1.5j,
        [1],
        bytearray(b"x"),
        type("F", (float,), {})(1.0),  # a float subclass: adapters first
    ],
    ids=repr,
)
def test_a_value_it_does_not_bind_as_sqlite3_does_is_declined_with_nothing_written(
    hostile: Any,
) -> None:
    connection = fresh()
    rows = [(1, 2.0, "good")] * 5 + [(1, hostile, "x"), (3, 4.0, "after")]
    assert not insert(connection, rows)
    assert not connection.in_transaction
    assert stored(connection) == []


def test_statements_it_cannot_run_as_asked_are_declined() -> None:
    connection = fresh()
    one, two = [(1, 2, 3)], [(1, 2, 3)] * 2
    pair = "INSERT INTO t VALUES (?, ?, ?), (?, ?, ?)"
    assert not write(connection, [(1, 2, 3), (1, 2)], None, pair, 2, INSERT_ONE)  # widths
    assert not write(connection, [(1, 2, 3), [1, 2, 3]], None, pair, 2, INSERT_ONE)  # a list
    assert not write(connection, [[1, 2, 3]], None, pair, 2, INSERT_ONE)
    assert not write(connection, [(1, 2)], {}, pair, 2, INSERT_ONE)  # no series texts
    for bad in ("INSERT INTO t (a, b) VALUES (?, ?)", "SELECT ?, ?, ?", f"{INSERT_ONE}; SELECT 1"):
        assert not write(connection, one, None, pair, 2, bad)  # the one-row statement
        assert not write(connection, two, None, bad, 1, INSERT_ONE)  # the block
    assert not write(connection, two, None, INSERT_ONE, 2, INSERT_ONE)  # a block of one row
    assert not write(sqlite3.Connection, one, None, INSERT_ONE, 1, INSERT_ONE)  # no connection
    assert stored(connection) == []
    assert not connection.in_transaction
    with pytest.raises(sqlite3.OperationalError, match="no such table") as caught:
        write(connection, one, None, pair, 2, "INSERT INTO nowhere VALUES (?, ?, ?)")
    assert caught.value.sqlite_errorname == "SQLITE_ERROR"  # type: ignore[attr-defined]
    connection.close()
    assert not write(connection, one, None, INSERT_ONE, 1, INSERT_ONE)  # closed
    with pytest.raises(sqlite3.ProgrammingError):  # sqlite3 then says it is closed
        connection.execute(INSERT_ONE, one[0])
    with pytest.raises(ValueError, match="must be > 0"):
        write(fresh(), one, None, INSERT_ONE, 0, INSERT_ONE)
    assert write(fresh(), [], None, INSERT_ONE, 1, INSERT_ONE)  # nothing to insert


def test_it_opens_the_transaction_sqlite3_would_and_leaves_it_to_the_caller() -> None:
    connection = fresh()
    assert insert(connection, [(1, 2, 3)] * 6)
    assert connection.in_transaction
    connection.rollback()
    assert stored(connection) == []
    assert insert(connection, [(1, 2, 3)] * 6)
    connection.commit()
    assert len(stored(connection)) == 6


def error_of(run: Any) -> BaseException:
    with pytest.raises(sqlite3.Error) as caught:
        run()
    return caught.value


def test_sqlites_refusal_raises_what_sqlite3_raises() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (a NOT NULL, b, c)")
    rows = [(1, 2, 3)] * 5 + [(None, 2, 3)]
    ours = error_of(lambda: insert(connection, rows))
    connection.rollback()
    block_sql = "INSERT INTO t VALUES " + ", ".join(["(?, ?, ?)"] * 6)
    theirs = error_of(lambda: connection.execute(block_sql, statement_values(rows, 0, 6)))
    assert type(ours) is type(theirs) is sqlite3.IntegrityError
    assert str(ours) == str(theirs) == "NOT NULL constraint failed: t.a"
    assert ours.sqlite_errorcode == theirs.sqlite_errorcode  # type: ignore[attr-defined]
    assert ours.sqlite_errorname == theirs.sqlite_errorname == "SQLITE_CONSTRAINT_NOTNULL"  # type: ignore[attr-defined]
    assert isinstance(ours, ROW_ERRORS)  # the writer's careful retry sets the row aside
    connection.rollback()
    assert stored(connection) == []


def test_a_locked_database_is_an_operational_error_of_kind_locked(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    fresh(path).close()
    holder = sqlite3.connect(path, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    connection = sqlite3.connect(path, timeout=0)
    try:
        ours = error_of(lambda: insert(connection, [(1, 2, 3)]))
        theirs = error_of(lambda: connection.execute(INSERT_ONE, [1, 2, 3]))
        assert type(ours) is type(theirs) is sqlite3.OperationalError
        assert str(ours) == str(theirs)
        assert ours.sqlite_errorname == theirs.sqlite_errorname  # type: ignore[attr-defined]
        assert failure_kind(ours) == "locked"
    finally:
        holder.rollback()
        holder.close()
        connection.close()
