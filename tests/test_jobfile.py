"""The job tables of ``lean-data.toml``: a [replay] table drives ``lean-data replay``, and
every mistake in [feeds.*], [backfill] or [replay] is one line naming file, line and key."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from lean_data.cli import DEMO_DATA, main
from lean_data.cli.jobfile import read_jobfile
from lean_data.config import Config
from lean_data.errors import ConfigError
from tests.backends import PG_URL, PostgresBackend

JOB = """\
buffer_size = 5_000                    # the engine's settings stay Config's

[feeds.local]
type = "alpaca"
data_url = "http://127.0.0.1:9"
source = "iex"

[backfill]
feed = "local"
symbols = ["AAPL", "SPY"]
start = 2014-06-05                     # an unquoted TOML date
end = "2014-06-07T00:00:00Z"
resolution = "1m"

[replay]
files = ["data/lean/equity/usa/minute/*/*_trade.zip"]
calendar = "XNYS"
"""


@pytest.fixture(autouse=True)
def _no_lean_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LEAN_DATA_"):
            monkeypatch.delenv(name)


def _job(tmp_path: Path, text: str = JOB) -> Path:
    """A config file next to a copy of the bundled real LEAN files (its globs are relative)."""
    shutil.copytree(DEMO_DATA / "lean", tmp_path / "data" / "lean", dirs_exist_ok=True)
    path = tmp_path / "lean-data.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_tables_are_read_and_config_skips_them(tmp_path: Path) -> None:
    path = _job(tmp_path)
    job = read_jobfile(path)
    local = job.feeds["local"]
    assert (local.name, local.type) == ("local", "alpaca")
    assert local.options == {"data_url": "http://127.0.0.1:9", "source": "iex"}
    assert local.where == f"{path}:3"
    assert job.backfill is not None
    assert job.backfill.feed == "local"
    assert job.backfill.symbols == ("AAPL", "SPY")
    assert (job.backfill.start, job.backfill.end) == ("2014-06-05", "2014-06-07T00:00:00Z")
    assert job.replay is not None
    assert [p.parent.name for p in job.replay.files] == ["aapl"] * 3 + ["spy"] * 5
    assert all(p.is_file() for p in job.replay.files)
    assert job.replay.calendar == "XNYS"
    assert Config.from_file(path).buffer_size == 5000  # the job tables are not Config keys


def test_a_config_file_drives_a_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _job(tmp_path)
    output = tmp_path / "run"
    assert main(["replay", "--config", str(path), "--output", str(output), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Replayed 6,431 real messages" in printed
    assert "2014-06-09T08:00:00Z POOR  O 645.57 H 645.57 L 92.23" in printed  # the split day
    with sqlite3.connect(output / "lean_data.db") as db:
        counts = db.execute(
            "select symbol, count(*) from bars where resolution = '1m' group by 1 order by 1"
        ).fetchall()
    assert counts == [("AAPL", 2303), ("SPY", 4128)]


def test_files_on_the_command_line_win_over_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _job(tmp_path)
    one = sorted((tmp_path / "data/lean/equity/usa/minute/aapl").glob("*_trade.zip"))[0]
    argv = ["replay", str(one), "--config", str(path), "--output", str(tmp_path / "run")]
    assert main([*argv, "--no-progress"]) == 0
    assert "Replayed 686 real messages" in capsys.readouterr().out  # 2014-06-05 alone


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            '[replay]\nfiles = ["a.csv"]\ncalender = "XNYS"\n',
            3,
            "unknown key replay.'calender' (known: files, asset_class, calendar, format, "
            "symbol, resolution, columns, check_spacing, speed); did you mean replay.calendar?",
        ),
        (
            '[replay]\nfiles = "a.csv"\n',
            2,
            'replay.files = "a.csv" is not valid: expected an array of strings, '
            'e.g. ["data/*.zip"]',
        ),
        (
            '[replay]\nfiles = ["a.csv"]\nspeed = 0\n',
            3,
            "replay.speed = 0 is not valid: expected a number > 0 (1 is real time)",
        ),
        (
            '[replay]\nfiles = ["a.csv"]\nasset_class = "stock"\n',
            3,
            'replay.asset_class = "stock" is not valid: expected one of',
        ),
        (
            '[replay]\nfiles = ["nowhere/*.zip"]\n',
            2,
            "replay.files: 'nowhere/*.zip' matches no file",
        ),
        (
            '\n[backfill]\nsymbols = ["AAPL"]\nresolutoin = "1m"\n',
            4,
            "unknown key backfill.'resolutoin' (known: feed, symbols, start, end, "
            "resolution); did you mean backfill.resolution?",
        ),
        (
            '[backfill]\nsymbols = "AAPL"\n',
            2,
            'backfill.symbols = "AAPL" is not valid: expected an array of strings, '
            'e.g. ["AAPL", "MSFT"]',
        ),
        ("[backfill]\nstart = 20240102\n", 2, "backfill.start = 20240102 is not valid"),
        (
            '[feeds.x]\ntype = "alpacca"\n',
            2,
            "feeds.x.type = \"alpacca\" is not valid: expected one of 'alpaca', 'binance', "
            "'ccxt'; did you mean 'alpaca'?",
        ),
        ('[feeds.x]\nsource = "iex"\n', 1, "feeds.x: no type; add type = one of"),
        ('feeds = "alpaca"\n', 1, 'feeds = "alpaca" is not valid: expected a table'),
    ],
)
def test_a_mistake_is_one_line_naming_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, message: str
) -> None:
    path = tmp_path / "job.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_jobfile(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)
    # and through the command: one line on stderr, exit status 1, nothing written
    output = tmp_path / "run"
    assert main(["replay", "--config", str(path), "--output", str(output)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"lean-data: error: {path}:{line}: ")
    assert not output.exists()


def test_replay_without_files_or_table_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "engine-only.toml"
    path.write_text("buffer_size = 100\n", encoding="utf-8")
    assert main(["replay", "--config", str(path), "--output", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err == (
        f"lean-data: error: no FILE to replay and {path} has no [replay] table; pass the files "
        "(lean-data replay data/*.csv) or a config file with a [replay] table "
        "(docs/cli.md#replay)\n"
    )
    assert main(["replay", "--output", str(tmp_path / "run")]) == 1
    assert "no FILE to replay and no --config" in capsys.readouterr().err


async def test_one_config_file_points_replay_and_catalog_at_postgresql(
    tmp_path: Path, pg: PostgresBackend
) -> None:
    """--config on a command that only reads (catalog, gaps): the file's database is used."""
    path = _job(tmp_path, f'database_url = "{PG_URL}"\ndatabase_schema = "{pg.schema}"\n{JOB}')
    run = ["--config", str(path), "--output", str(tmp_path / "run")]
    assert await asyncio.to_thread(main, ["replay", *run, "--no-progress"]) == 0
    assert not (tmp_path / "run" / "lean_data.db").exists()  # the rows went to PostgreSQL
    counts = dict(await pg.rows("SELECT symbol, count(*) FROM bars GROUP BY symbol"))
    assert counts == {"AAPL": 2303, "SPY": 4128 + 16}  # 16: the report's 1h history read
    listing = await asyncio.to_thread(_captured, ["catalog", *run])
    assert f"schema {pg.schema}" in listing or pg.schema in listing
    assert "replay  AAPL    1m   2014-06-05T08:15:00Z  2014-06-09T23:59:00Z  2,303" in listing
    gaps = await asyncio.to_thread(_captured, ["gaps", "AAPL", *run])
    assert gaps.startswith("replay AAPL 1m: 0 gaps, 0 bars missing (XNYS calendar)")


def _captured(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()
