"""Config.from_file and ``--config FILE``: a TOML file, the environment over it, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lean_data.cli import main
from lean_data.config import Config, OverflowPolicy, ValidationConfig
from lean_data.errors import ConfigError

CSV = Path(__file__).parent / "fixtures/nautilus_trader/ADABTC-1m-2021-11-27.csv"

GOOD = """\
# every kind of field
db_path = "bars.db"              # a path
cache_dir = "none"               # "none": no disk tier
database_schema = "market"       # a string
buffer_size = 2_000              # an integer
stop_timeout_s = 5               # a number (an integer is fine)
cache_ttl_s = 2.5
overflow_policy = "drop_oldest"  # a choice
store_invalid = true             # a boolean
book_snapshot_interval_s = 0

[validation]
window = 50
wide_spread_ratio = 0.01
"""


def _write(tmp_path: Path, text: str, name: str = "lean-data.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_lean_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LEAN_DATA_"):
            monkeypatch.delenv(name)


def test_a_file_sets_every_kind_of_field(tmp_path: Path) -> None:
    config = Config.from_file(_write(tmp_path, GOOD))
    assert config.db_path == "bars.db"
    assert config.cache_dir is None
    assert config.database_schema == "market"
    assert config.buffer_size == 2000
    assert config.stop_timeout_s == 5.0
    assert isinstance(config.stop_timeout_s, float)
    assert config.cache_ttl_s == 2.5
    assert config.overflow_policy is OverflowPolicy.DROP_OLDEST
    assert config.store_invalid is True
    assert config.book_snapshot_interval_s == 0.0
    assert config.validation == ValidationConfig(window=50, wide_spread_ratio=0.01)
    assert config.inbox_size == Config().inbox_size  # what the file leaves out: the default


def test_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAN_DATA_BUFFER_SIZE", "300")
    monkeypatch.setenv("LEAN_DATA_STORE_INVALID", "off")
    monkeypatch.setenv("LEAN_DATA_VALIDATION_WINDOW", "7")
    config = Config.from_file(_write(tmp_path, GOOD), retention_days=3.0)
    assert (config.buffer_size, config.store_invalid) == (300, False)
    # a threshold from the environment keeps the file's others
    assert config.validation == ValidationConfig(window=7, wide_spread_ratio=0.01)
    assert config.database_schema == "market"  # not in the environment: the file's
    assert config.retention_days == 3.0  # keyword overrides last


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("buffer_size = 10\n\nbufer_size = 3\n", 3,
         "unknown key 'bufer_size' (not a Config field); did you mean buffer_size?"),
        ("buffer_size = 10\n[validation]\nwindow = 5\n  colour = 1\n", 4,
         "unknown key 'validation.colour' (not a ValidationConfig field)"),
        ("# settings\nstore_invalid = \"yes\"\n", 2,
         'store_invalid = "yes" is not valid: expected a boolean (true or false, unquoted)'),
        ("buffer_size = 1.5\n", 1, "buffer_size = 1.5 is not valid: expected an integer"),
        ("stop_timeout_s = nan\n", 1,
         "stop_timeout_s = nan is not valid: expected a finite number"),
        ("overflow_policy = 'drop'\n", 1, 'overflow_policy = "drop" is not valid: expected one '
         'of "block", "drop_oldest", "conflate"'),
        ("db_path = 3\n", 1, "db_path = 3 is not valid: expected a string"),
        ("[validation]\n\nwindow = \"many\"\n", 3,
         'validation.window = "many" is not valid: expected an integer'),
        ("validation = { window = 1.5 }\n", 1,
         "validation.window = 1.5 is not valid: expected an integer"),
        ("\ninbox_size = 0\n", 2, None),
    ],
)  # fmt: skip
def test_a_bad_key_or_value_is_one_line_naming_key_file_and_line(
    tmp_path: Path, text: str, line: int, message: str | None
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        Config.from_file(path)
    told = str(error.value)
    assert "\n" not in told
    if message is None:  # out of range: today's validation, at the value's line
        message = "Config.inbox_size must be a positive integer, got 0"
    assert told == f"{path}:{line}: {message}"


def test_toml_syntax_and_a_missing_file_are_one_line(tmp_path: Path) -> None:
    broken = _write(tmp_path, "buffer_size = \n")
    with pytest.raises(ConfigError, match=rf"^{broken}: not valid TOML: .*line 1"):
        Config.from_file(broken)
    with pytest.raises(ConfigError, match=r"cannot read the config file: No such file"):
        Config.from_file(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match=r":1: credentials are not read from a config file"):
        Config.from_file(_write(tmp_path, "[credentials]\nalpaca = 'x'\n", "c.toml"))


def test_replay_with_a_bad_config_exits_1_with_one_line(tmp_path: Path) -> None:
    bad = _write(tmp_path, "buffer_size = 100\n\nbufer_size = 3\n", "bad.toml")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "lean_data.cli", "replay", str(CSV), "--output", str(out),
         "--no-progress", "--config", str(bad)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        f"lean-data: error: {bad}:3: unknown key 'bufer_size' (not a Config field); "
        "did you mean buffer_size?\n"
    )
    assert not out.exists()  # checked before any output


def _rows_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["replay", str(CSV), "--no-progress", *args]) == 0
    text = capsys.readouterr().out
    return next(line.strip() for line in text.splitlines() if "rows written" in line)


def test_a_good_config_drives_a_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _write(
        tmp_path,
        "buffer_size = 5\nstop_timeout_s = 5.0\nstorage_batch_rows = 1\n"
        "database_schema = 'from_file'\n",
    )
    # the 10 bars and 3 metrics rows: one commit each, as the file says (default: 3 batches)
    rows = _rows_line(capsys, "--output", str(tmp_path / "a"), "--config", str(good))
    assert rows == "rows written to SQLite 13 in 13 batches"
    assert _rows_line(capsys, "--output", str(tmp_path / "b")) == (
        "rows written to SQLite 13 in 3 batches"
    )
    monkeypatch.setenv("LEAN_DATA_STORAGE_BATCH_ROWS", "1000")  # the environment over the file
    rows = _rows_line(capsys, "--output", str(tmp_path / "c"), "--config", str(good))
    assert rows == "rows written to SQLite 13 in 3 batches"
    assert (tmp_path / "a" / "lean_data.db").is_file()  # --output says where, not db_path


def test_command_line_options_win_over_the_file(tmp_path: Path) -> None:
    from lean_data.cli.commands import build_parser
    from lean_data.cli.run import storing_of

    good = _write(tmp_path, "database_schema = 'from_file'\ndb_path = 'elsewhere.db'\n")
    parser = build_parser()
    args = parser.parse_args(["replay", str(CSV), "--output", str(tmp_path), "--config", str(good)])
    storing = storing_of(args)
    assert storing.database_schema == "from_file"
    assert storing.config().db_path == tmp_path / "lean_data.db"
    args = parser.parse_args(
        ["replay", str(CSV), "--config", str(good), "--database-schema", "lean_data"]
    )
    assert storing_of(args).config().database_schema == "lean_data"
