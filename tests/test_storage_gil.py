"""While SQLite storage is open, the GIL switch interval lets its worker thread in
(lean_data.storage.gil); closed, the interpreter gets its own interval back."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lean_data import Config, DataEngine
from lean_data.errors import ConfigError
from lean_data.storage import gil
from lean_data.storage.sqlite import DataPersistence


@pytest.fixture(autouse=True)
def default_interval() -> Iterator[None]:
    saved = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # CPython's default
    yield
    sys.setswitchinterval(saved)


async def test_an_open_store_shortens_the_interval_and_the_last_close_restores_it(
    tmp_path: Path,
) -> None:
    first = DataPersistence(tmp_path / "a.db")
    second = DataPersistence(tmp_path / "b.db")
    await first.open()
    assert sys.getswitchinterval() == pytest.approx(gil.INTERVAL_S)
    await second.open()
    await first.close()
    assert sys.getswitchinterval() == pytest.approx(gil.INTERVAL_S)  # b is still open
    await second.close()
    assert sys.getswitchinterval() == pytest.approx(0.005)


async def test_none_leaves_the_interval_alone_and_a_shorter_one_is_kept(tmp_path: Path) -> None:
    async with DataPersistence(tmp_path / "a.db", switch_interval_s=None):
        assert sys.getswitchinterval() == pytest.approx(0.005)
    sys.setswitchinterval(0.000002)  # already shorter: not lengthened, not "restored"
    async with DataPersistence(tmp_path / "b.db"):
        assert sys.getswitchinterval() == pytest.approx(0.000002)
    assert sys.getswitchinterval() == pytest.approx(0.000002)


async def test_an_interval_changed_meanwhile_is_not_overwritten_at_close(tmp_path: Path) -> None:
    async with DataPersistence(tmp_path / "a.db"):
        sys.setswitchinterval(0.001)  # the application's own choice, made while open
    assert sys.getswitchinterval() == pytest.approx(0.001)


async def test_the_engine_shares_while_it_stores_and_the_config_can_turn_it_off(
    tmp_path: Path,
) -> None:
    async with DataEngine(Config(db_path=tmp_path / "e.db")):
        assert sys.getswitchinterval() == pytest.approx(gil.INTERVAL_S)
    assert sys.getswitchinterval() == pytest.approx(0.005)
    async with DataEngine(Config(db_path=tmp_path / "f.db", storage_switch_interval_s=None)):
        assert sys.getswitchinterval() == pytest.approx(0.005)


@pytest.mark.parametrize("bad", [0, -1.0, 2.0, True, "0.001", float("nan")])
def test_a_bad_interval_is_refused_in_one_line(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match="storage_switch_interval_s must be in"):
        Config(db_path=tmp_path / "e.db", storage_switch_interval_s=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="switch_interval_s must be in"):
        DataPersistence(tmp_path / "e.db", switch_interval_s=bad)  # type: ignore[arg-type]
