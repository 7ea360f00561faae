"""While an engine runs (or a standalone SQLite store is open), the GIL switch interval lets
its worker threads in (lean_data.gil); after, the interpreter gets its own interval back."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lean_data import Config, DataEngine, gil
from lean_data.errors import ConfigError, StorageError
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
    sys.setswitchinterval(0.00001)  # already shorter: not lengthened, not "restored"
    async with DataPersistence(tmp_path / "b.db", switch_interval_s=0.00005):
        assert sys.getswitchinterval() == pytest.approx(0.00001)
    assert sys.getswitchinterval() == pytest.approx(0.00001)


async def test_an_interval_changed_meanwhile_is_not_overwritten_at_close(tmp_path: Path) -> None:
    async with DataPersistence(tmp_path / "a.db"):
        sys.setswitchinterval(0.001)  # the application's own choice, made while open
    assert sys.getswitchinterval() == pytest.approx(0.001)


async def test_the_engine_shares_while_it_runs_with_or_without_storage(tmp_path: Path) -> None:
    for db_path in (tmp_path / "e.db", None):
        engine = DataEngine(Config(db_path=db_path))
        assert sys.getswitchinterval() == pytest.approx(0.005)  # not before start
        async with engine:
            assert sys.getswitchinterval() == pytest.approx(gil.INTERVAL_S)
        assert sys.getswitchinterval() == pytest.approx(0.005)


async def test_none_in_the_config_leaves_the_interval_alone(tmp_path: Path) -> None:
    for db_path in (tmp_path / "f.db", None):
        async with DataEngine(Config(db_path=db_path, switch_interval_s=None)):
            assert sys.getswitchinterval() == pytest.approx(0.005)  # its store does not either


async def test_the_interval_is_given_back_when_start_fails(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 512)
    engine = DataEngine(Config(db_path=junk))
    with pytest.raises(StorageError, match="not a database"):
        await engine.start()
    assert sys.getswitchinterval() == pytest.approx(0.005)
    await engine.stop()  # a NEW engine closes without having shared
    assert sys.getswitchinterval() == pytest.approx(0.005)


async def test_a_later_holder_asking_for_less_gets_it_and_the_last_restores() -> None:
    slow = DataEngine(Config(db_path=None, switch_interval_s=0.001))
    fast = DataEngine(Config(db_path=None))
    await slow.start()
    assert sys.getswitchinterval() == pytest.approx(0.001)
    await fast.start()
    assert sys.getswitchinterval() == pytest.approx(gil.INTERVAL_S)
    await fast.stop()
    assert sys.getswitchinterval() == pytest.approx(gil.INTERVAL_S)  # kept until the last
    await slow.stop()
    assert sys.getswitchinterval() == pytest.approx(0.005)  # the interval found at first


async def test_two_engines_share_until_the_last_stops() -> None:
    first, second = DataEngine(Config(db_path=None)), DataEngine(Config(db_path=None))
    await first.start()
    await second.start()
    await first.stop()
    assert sys.getswitchinterval() == pytest.approx(gil.INTERVAL_S)  # the second still runs
    await second.stop()
    assert sys.getswitchinterval() == pytest.approx(0.005)


@pytest.mark.parametrize("bad", [0, -1.0, 2.0, True, "0.001", float("nan")])
def test_a_bad_interval_is_refused_in_one_line(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match=r"Config\.switch_interval_s must be in"):
        Config(db_path=tmp_path / "e.db", switch_interval_s=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="switch_interval_s must be in"):
        DataPersistence(tmp_path / "e.db", switch_interval_s=bad)  # type: ignore[arg-type]
