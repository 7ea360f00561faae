"""Shared test helpers: wait for a condition instead of sleeping; locate fixtures; the
storage backends (``backend``: SQLite then PostgreSQL; ``pg``: PostgreSQL only)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.backends import Backend, PostgresBackend, SqliteBackend, pg_schema

FIXTURES = Path(__file__).parent / "fixtures"

WS_TRANSPORT_MODULES = frozenset(
    {
        "test_binance_feed",
        "test_binance_depth_feed",
        "test_binance_derivatives",
        "test_kraken_book_feed",
        "test_feed_limits",
    }
)
"""Feed test modules run once per websocket transport (websockets, then picows)."""


COMPILED_MODULES = frozenset(
    {
        "test_compiled",
        "test_slots",
        # the compiled modules (lean_data/compiled.py): validation, continuity, buffer,
        # aggregation, the Binance parser, the inbox and the pipeline
        "test_validation",
        "test_validation_real",
        "test_hostile",
        "test_storage_hostile",
        "test_persistence",
        "test_schema_migration",
        "test_validation_tracker",
        "test_metrics",
        "test_buffer",
        "test_continuity",
        "test_continuity_paths",
        "test_aggregation",
        "test_wire_binance",
        "test_wire_binance_typed",
        "test_wire_binance_fast",
        "test_storage_rows_c",
        "test_sqlite_rows_c",
        "test_storage_failures",
        "test_gil",
        "test_wire_numbers",
        "test_hot_paths",
        # the engine's compiled inbox and pipeline, and the hand-over into it
        "test_inbox",
        "test_feed_intake",
        "test_engine_books",
        "test_engine_records",
        "test_backfill_deadline",
        "test_backpressure",
        "test_sinks",
        # the engine and feeds that call them
        "test_engine",
        "test_engine_aggregation",
        "test_engine_derived",
        "test_derived",
        "test_gaps_real",
        "test_delivered",
        "test_series_record",
        "test_model_subclasses",
        "test_compiled_parity",
        "test_delivery_contract",
        "test_binance_feed",
        "test_binance_derivatives",
        "test_alpaca_feed",
        "test_feed_limits",
        "test_benchmarks",
        "test_replay",
        "test_restart",
        "test_cli",
    }
)
"""Test modules marked ``compiled``: run again against the compiled build (README)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of :data:`COMPILED_MODULES` ``compiled``."""
    for item in items:
        if item.path.stem in COMPILED_MODULES:
            item.add_marker(pytest.mark.compiled)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test of :data:`WS_TRANSPORT_MODULES` under both websocket transports."""
    if metafunc.module.__name__.rpartition(".")[2] in WS_TRANSPORT_MODULES:
        metafunc.fixturenames.append("ws_transport")
        metafunc.parametrize("ws_transport", ["websockets", "picows"], indirect=True)


@pytest.fixture
def ws_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The transport a feed built with ``transport="auto"`` uses in this test (picows is in
    the dev extra: a missing one fails here rather than skipping half the feed tests)."""
    name: str = request.param
    if name == "picows":
        import picows  # noqa: F401
    monkeypatch.setenv("LEAN_DATA_WS_TRANSPORT", name)
    return name


async def eventually(
    condition: Callable[[], bool],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109  # a polling deadline, reported with the message
    message: str = "",
) -> None:
    """Wait until ``condition()`` is true, yielding to the loop; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s {message}".strip())
        await asyncio.sleep(0)  # yield to the loop, not a timing guess
        await asyncio.sleep(0.001)


@pytest.fixture
def fixtures() -> Path:
    """The directory of real-data fixtures copied from ../shared/data."""
    return FIXTURES


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The test's database: a SQLite file, then a fresh PostgreSQL schema (tests/backends.py)."""
    if request.param == "sqlite":
        yield SqliteBackend(tmp_path / "lean.db")
        return
    async with pg_schema() as database:
        yield database


@pytest.fixture
async def pg() -> AsyncIterator[PostgresBackend]:
    """A fresh PostgreSQL schema for the test, dropped afterwards."""
    async with pg_schema() as database:
        yield database
