"""The `lean-data` command: the demo, and replays of real files (asset class, calendar)."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lean_data.cli import main
from lean_data.compiled import variant
from lean_data.storage.location import describe_url
from tests.backends import PG_URL, PostgresBackend

from .test_asset_classes import holed_csv


def _demo(out: Path, *more: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lean_data.cli",
            "demo",
            "--output",
            str(out),
            "--no-progress",
            *more,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _report(text: str) -> str:
    """The quality report and outcome counts: what must not change on a second run."""
    quality = text[text.index("Data quality per symbol") : text.index("Metrics")]
    outcomes = re.search(r"what became of each item: .*", text)
    assert outcomes is not None, text
    return quality + outcomes.group(0)


def test_demo_runs_offline_and_prints_the_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    text = _demo(out)
    assert "what became of each item: delivered 11,537" in text
    assert _report(_demo(out)) == _report(text)  # day two: the same report, nothing "late"
    db = out / "lean_data.db"
    assert f"SQLite database: {db.resolve()}" in text
    assert "Data quality per symbol" in text
    # The real defects in the bundled data are reported:
    assert "2014-06-09T08:00:00Z" in text  # AAPL 04:00 New York bar with the pre-split open
    assert "2017-04-15T00:00:00Z" in text  # Coinbase BTC-USD daily low of 0.06
    with sqlite3.connect(db) as conn:
        symbols = dict(conn.execute("select symbol, count(*) from bars group by symbol"))
    assert set(symbols) == {"SPY", "AAPL", "BTC/USD", "BTC/BUSD"}
    assert symbols["BTC/BUSD"] == 1440


async def test_the_demo_stores_in_postgresql_when_given_a_database_url(
    tmp_path: Path, pg: PostgresBackend
) -> None:
    url = (
        PG_URL.replace("postgresql://", "postgresql://lean:hidden@", 1)
        if "@" not in PG_URL
        else PG_URL
    )
    more = ("--database-url", url, "--database-schema", pg.schema)
    text = await asyncio.to_thread(_demo, tmp_path / "pg", *more)
    again = await asyncio.to_thread(_demo, tmp_path / "pg", *more)
    assert _report(again) == _report(text)  # day two on PostgreSQL too
    assert "rows written to PostgreSQL" in text
    assert f"PostgreSQL database: {describe_url(url)}, schema {pg.schema}" in text
    assert "lean_data.db" not in text
    counts = dict(await pg.rows("SELECT symbol, count(*) FROM bars GROUP BY symbol"))
    _demo(tmp_path / "sqlite")
    with sqlite3.connect(tmp_path / "sqlite" / "lean_data.db") as conn:
        assert counts == dict(conn.execute("select symbol, count(*) from bars group by symbol"))


def test_an_unreachable_database_is_one_line_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://lean:s3cret@127.0.0.1:9/test"  # port 9: nothing listens
    code = main(["demo", "--output", str(tmp_path / "o"), "--no-progress", "--database-url", url])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("lean-data: error: cannot open PostgreSQL database ")
    assert err.count("\n") == 1
    assert "s3cret" not in err


def replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, int]:
    """Run ``lean-data replay`` in-process; return its output and the gaps it reported.

    Each run writes to a new directory, so each run's database holds that run only.
    """
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    assert main(["replay", *args, "--output", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    match = re.search(r"gaps (\d+) \((\d+) bars missing", text)
    assert match is not None, text
    assert match.group(1) == match.group(2)  # single-bar holes
    return text, int(match.group(1))


def test_replay_reports_the_same_btc_gaps_whatever_the_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the first 5,000 real FTX BTC-PERP minutes (New Year 2022, a weekend), 100 bars removed
    holes = holed_csv(tmp_path / "btcusdt_holes.csv")
    holed_csv(tmp_path / "btcusdt.csv")
    holed_csv(tmp_path / "spy.csv")
    text, named_holes = replay(tmp_path, capsys, str(tmp_path / "btcusdt_holes.csv"))
    assert named_holes == holes == 100
    assert "warning: no asset class for 'BTCUSDT_HOLES'" in text
    text, pair = replay(tmp_path, capsys, str(tmp_path / "btcusdt.csv"))
    assert pair == holes
    assert "warning:" not in text
    _, forced = replay(tmp_path, capsys, str(tmp_path / "spy.csv"), "--asset-class", "crypto")
    _, calendar = replay(tmp_path, capsys, str(tmp_path / "spy.csv"), "--calendar", "24/7")
    _, equity = replay(tmp_path, capsys, str(tmp_path / "spy.csv"))  # judged on NYSE hours
    assert (forced, calendar) == (holes, holes)
    assert 0 < equity < holes // 4


def test_a_calendar_that_cannot_load_is_a_visible_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holes = holed_csv(tmp_path / "spy.csv")
    text, gaps = replay(tmp_path, capsys, str(tmp_path / "spy.csv"), "--calendar", "XXXX")
    assert "warning: no trading calendar 'XXXX': expected an exchange_calendars code" in text
    assert text.index("warning:") < text.index("Replayed")
    assert 0 < gaps < holes // 4  # fell back to SPY's own class: NYSE hours


BIG_CSV = Path(__file__).parent / "fixtures/nautilus_trader/btc-perp-20211231-20220201_1m.csv"
LEAN_ZIP = Path(__file__).parent / "fixtures/lean/equity/usa/tick/spy/20131010_trade.zip"


def fails(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str, status: int = 1) -> str:
    """Run ``lean-data replay ARGS`` in-process expecting an error; return its one line."""
    out = tmp_path / "out"
    try:
        code = main(["replay", *args, "--output", str(out), "--no-progress"])
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code  # type: ignore[assignment]  # always an int here
    captured = capsys.readouterr()
    assert code == status, captured
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert lines[0].startswith("lean-data: error: ")
    assert not out.exists()  # nothing written for bad input
    return lines[0]


def test_a_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = fails(tmp_path, capsys, str(tmp_path / "spy.csv"))
    assert line == f"lean-data: error: {tmp_path / 'spy.csv'}: no such file; check the path"


def test_an_empty_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "spy.csv").write_text("")
    line = fails(tmp_path, capsys, str(tmp_path / "spy.csv"))
    assert f"{tmp_path / 'spy.csv'}:1: the file is empty; check that it was fully" in line


def test_a_binary_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "spy.csv").write_bytes(LEAN_ZIP.read_bytes())  # a real zip named .csv
    line = fails(tmp_path, capsys, str(tmp_path / "spy.csv"))
    assert f"{tmp_path / 'spy.csv'}: unreadable file: 'utf-8' codec can't decode" in line
    assert line.endswith("expected UTF-8 text, or an undamaged .zip/.gz/.feather file")


def test_wrong_csv_columns_name_the_options_that_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spy = tmp_path / "spy.csv"
    spy.write_text("a,b,c\n1,2,3\n")
    line = fails(tmp_path, capsys, str(spy))
    assert f"{spy}:1: unknown CSV layout: line 1 is 'a,b,c'" in line
    assert "pass --format csv and --columns for headerless OHLCV files" in line
    assert "format=" not in line  # no API argument names
    assert "columns=" not in line
    # a header with a column missing: the hint names --columns, and --columns reads it
    rows = BIG_CSV.read_text().splitlines()[:50]
    spy.write_text("\n".join(["when,open,high,low,close,volume", *rows[1:]]) + "\n")
    line = fails(tmp_path, capsys, str(spy), "--format", "csv")
    assert f"{spy}:1: no time column in header" in line
    assert "pass --columns naming them, e.g. --columns time=0,open=1" in line
    out = tmp_path / "read"
    assert main(["replay", str(spy), "--columns", "time=when", "--output", str(out),
                 "--no-progress", "--asset-class", "crypto"]) == 0  # fmt: skip
    assert "Replayed 49 real messages" in capsys.readouterr().out


def test_spacing_hint_names_no_check_spacing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(tmp_path, capsys, str(BIG_CSV), "--resolution", "1h")
    assert "spacing contradicts the resolution (pass --no-check-spacing to load it" in line
    assert "check_spacing=False" not in line


def test_an_option_a_format_does_not_take_is_named_as_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(tmp_path, capsys, str(LEAN_ZIP), "--no-check-spacing")
    assert line == (
        f"lean-data: error: {LEAN_ZIP}: --no-check-spacing does not apply to lean files; drop it"
    )


def test_a_directory_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    line = fails(tmp_path, capsys, str(tmp_path / "data"))
    assert f"{tmp_path / 'data'}: is a directory, not a file; pass the files in it" in line


def test_speed_zero_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(tmp_path, capsys, str(BIG_CSV), "--speed", "0", status=2)
    assert "argument --speed: must be > 0, got '0'" in line


def test_an_existing_file_as_output_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("mine")
    code = main(["replay", str(BIG_CSV), "--output", str(taken), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err == (
        f"lean-data: error: --output {taken}: exists and is not a directory; pass a "
        "directory (it is created if missing)\n"
    )
    assert taken.read_text() == "mine"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no such file"):
        main(["replay", str(tmp_path / "spy.csv"), "--output", str(tmp_path / "o"), "--debug"])
    assert not (tmp_path / "o").exists()


def test_version_and_help_of_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"lean-data 0.1.0 ({variant().describe()})\n"
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = capsys.readouterr().out
    options = re.findall(r"^  (-[-\w]+(?:, --[-\w]+)?)(.*)$", text, flags=re.MULTILINE)
    assert len(options) >= 14, text
    helpless = [name for name, rest in options if name != "-h, --help" and not rest.strip()
                and not re.search(rf"^  {re.escape(name)}.*\n {{10,}}\S", text, re.M)]  # fmt: skip
    assert helpless == [], text


def test_ctrl_c_stops_with_a_one_line_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "lean_data.cli", "replay", str(BIG_CSV), "--output",
               str(out), "--speed", "6000", "--no-progress"]  # fmt: skip  # 100 bars/s
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "lean_data.db").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # a child process: no event loop to wait on
        time.sleep(1.0)  # about 100 bars in
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1, stderr
    match = re.fullmatch(r"lean-data: interrupted: ([\d,]+) of 45,031 items replayed\n", stderr)
    assert match is not None, stderr
    assert 0 < int(match.group(1).replace(",", "")) < 45_031
    assert "Replayed" not in stdout
