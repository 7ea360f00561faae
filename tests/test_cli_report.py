"""``lean-data report`` on the demo's real stored data: terminal tables and the HTML page.

The HTML is parsed with :mod:`html.parser` and checked against the store itself (its rows
read with sqlite3): every flagged bar has a marker and a table row, the histograms count
every bar, the timelines show the catalog's gaps. Two feeds replaying the same real file,
one with a hostile close, show their disagreement at that bar.
"""

from __future__ import annotations

import asyncio
import csv
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lean_data.cli import DEMO_DATA, main
from lean_data.cli.run import Progress, Storing, run_replay
from lean_data.cli.svg import Scale, minmax_columns
from lean_data.feeds.replay import ReplayFeed
from lean_data.loaders import iter_file
from lean_data.models import TradeBar
from tests.backends import PostgresBackend

SYMBOLS = ["AAPL", "BTC/USD", "SPY", "BTC/BUSD"]
AAPL_SPLIT = "2014-06-09T08:00:00Z"  # POOR, split_inside_bar, L 92.23
BTC_LOW = "2017-04-15T00:00:00Z"  # Coinbase BTC-USD daily, POOR, low 0.06
COINBASE_MINUTES = DEMO_DATA / "lean/crypto/coinbase/minute/btcusd/20171217_trade.zip"
# The 8 gaps of Coinbase's BTC-USD daily bars (lean-data gaps BTC/USD), by start.
BTC_GAP_STARTS = [
    "2014-12-05T00:00:00Z", "2014-12-07T00:00:00Z", "2014-12-09T00:00:00Z",
    "2014-12-11T00:00:00Z", "2014-12-13T00:00:00Z", "2014-12-19T00:00:00Z",
    "2015-01-09T00:00:00Z", "2015-01-18T00:00:00Z",
]  # fmt: skip


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parents: list[Node]
    text: str = ""
    children: list[Node] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def inside(self, tag: str, cls: str) -> Node | None:
        return next((p for p in self.parents if p.tag == tag and cls in p.classes), None)


class Page(HTMLParser):
    """Every element of a page with its attributes, ancestors and text."""

    VOID = frozenset({"meta", "br", "img", "link", "input", "hr"})

    def __init__(self, text: str) -> None:
        super().__init__()
        self.nodes: list[Node] = []
        self.stack: list[Node] = []
        self.feed(text)
        self.close()
        assert self.stack == [], [n.tag for n in self.stack]  # every element closed

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, list(self.stack))
        self.nodes.append(node)
        if self.stack:
            self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, list(self.stack))
        self.nodes.append(node)
        if self.stack:
            self.stack[-1].children.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, tag
        assert self.stack[-1].tag == tag, (tag, [n.tag for n in self.stack])
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        for node in self.stack:
            node.text += data

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.nodes
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--output", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def report(demo_dir: Path) -> tuple[str, Page]:
    """The terminal report and the parsed HTML page of the four demo symbols."""
    html = demo_dir / "out.html"
    code = main(["report", *SYMBOLS, "--output", str(demo_dir), "--html", str(html)])
    assert code == 0
    return html.read_text(encoding="utf-8"), Page(html.read_text(encoding="utf-8"))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _stored(demo_dir: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(demo_dir / "lean_data.db") as conn:
        return list(conn.execute(sql))


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_page_has_every_chart_of_every_stored_series(
    demo_dir: Path, report: tuple[str, Page]
) -> None:
    _, page = report
    series = {
        (symbol, feed, res)
        for feed, symbol, res in _stored(
            demo_dir, "select distinct feed, symbol, resolution from bars"
        )
    }
    assert {s for s, _, _ in series} == set(SYMBOLS)
    for kind in ("price-chart", "coverage-timeline", "quality-histogram"):
        charts = page.find("svg", kind)
        found = {
            (c.attrs["data-symbol"], c.attrs["data-feed"], c.attrs["data-resolution"])
            for c in charts
        }
        assert found == series, kind
        assert len(charts) == len(series)
    for chart in page.find("svg", "price-chart"):
        lines = [n for n in page.find("path", "close-line") if chart in n.parents]
        assert lines
        assert all(n.attrs["d"].startswith("M") for n in lines)
        axis = [n.text for n in page.find("text") if chart in n.parents]
        assert any(label[:4].isdigit() and label[4] == "-" for label in axis)  # ISO dates


def test_every_flagged_bar_has_a_marker_and_a_row(demo_dir: Path, report: tuple[str, Page]) -> None:
    _, page = report
    stored = {
        (symbol, _iso(int(ts)), level, reasons)
        for symbol, ts, level, reasons in _stored(
            demo_dir,
            "select symbol, ts_event, quality_level, reasons from bars "
            "where quality_level in ('FAIR', 'POOR', 'INVALID')",
        )
    }
    assert (("AAPL", AAPL_SPLIT, "POOR", "split_inside_bar")) in stored
    assert (("BTC/USD", BTC_LOW, "POOR", "extreme_range")) in stored
    markers = {
        (n.inside("svg", "price-chart").attrs["data-symbol"], n.attrs["data-time"],
         n.attrs["data-level"], n.attrs["data-reasons"])
        for n in page.find(cls="flag")
    }  # fmt: skip
    assert markers == stored
    rows = {
        (n.inside("table", "flagged-bars").attrs["data-symbol"], n.attrs["data-time"],
         n.attrs["data-level"])
        for n in page.find("tr", "flagged")
    }  # fmt: skip
    assert rows == {(s, t, level) for s, t, level, _ in stored}


def test_the_split_bar_and_the_bad_low_are_marked_with_their_values(
    report: tuple[str, Page],
) -> None:
    _, page = report
    (split,) = page.find("circle", "flag-POOR", data_time=AAPL_SPLIT)
    assert split.inside("svg", "price-chart").attrs["data-symbol"] == "AAPL"
    assert split.children[0].tag == "title"
    assert split.text == (
        f"{AAPL_SPLIT} POOR (split_inside_bar) replay 1m\nO 645.57 H 645.57 L 92.23 C 92.42 V 600"
    )
    (low,) = page.find("circle", "flag-POOR", data_time=BTC_LOW)
    chart = low.inside("svg", "price-chart")
    assert chart is not None
    assert (chart.attrs["data-symbol"], chart.attrs["data-resolution"]) == ("BTC/USD", "1d")
    assert low.text == (
        f"{BTC_LOW} POOR (extreme_range) replay 1d\nO 1173.13 H 1190.99 L 0.06 C 1178.85 "
        "V 3877.79720638"
    )
    (row,) = page.find("tr", "flagged", data_time=BTC_LOW)
    cells = [c.text for c in row.children]
    assert cells == [
        BTC_LOW, "replay", "1d", "POOR", "extreme_range",
        "1173.13", "1190.99", "0.06", "1178.85", "3877.79720638",
    ]  # fmt: skip
    fair = page.find("polygon", "flag-FAIR")  # each level its own shape
    assert {n.attrs["data-time"] for n in fair} == {"2015-01-14T00:00:00Z", "2022-12-13T13:30:00Z"}


def test_the_histograms_count_every_stored_bar_by_level(
    demo_dir: Path, report: tuple[str, Page]
) -> None:
    _, page = report
    stored = Counter(
        {
            (symbol, res, level or "UNSCORED"): int(n)
            for symbol, res, level, n in _stored(
                demo_dir,
                "select symbol, resolution, quality_level, count(*) from bars group by 1, 2, 3",
            )
        }
    )
    drawn: Counter[tuple[str, str, str]] = Counter()
    for rect in page.find("rect", "bucket"):
        chart = rect.inside("svg", "quality-histogram")
        assert chart is not None
        key = (chart.attrs["data-symbol"], chart.attrs["data-resolution"], rect.attrs["data-level"])
        drawn[key] += int(rect.attrs["data-count"])
    assert drawn == stored


def test_the_timeline_shows_the_catalogs_gaps(report: tuple[str, Page]) -> None:
    _, page = report
    (timeline,) = page.find("svg", "coverage-timeline", data_symbol="BTC/USD", data_resolution="1d")
    gaps = [n for n in page.find("rect", "gap") if timeline in n.parents]
    assert [n.attrs["data-start"] for n in gaps] == BTC_GAP_STARTS
    stored = [n for n in page.find("rect", "stored") if timeline in n.parents]
    assert stored[0].attrs["data-start"] == "2014-12-01T00:00:00Z"
    assert stored[-1].attrs["data-end"] == "2018-08-14T00:00:00Z"  # the last bar's close
    assert len(stored) == len(gaps) + 1  # runs of bars between the gaps


def test_the_page_loads_nothing_from_anywhere(report: tuple[str, Page]) -> None:
    text, page = report
    assert page.find("script") == page.find("link") == page.find("img") == []
    for node in page.nodes:
        assert "src" not in node.attrs
        assert node.attrs.get("href", "#").startswith("#"), node.attrs
    assert "url(" not in text
    assert "@import" not in text
    assert {n.attrs["data-symbol"] for n in page.find("p", "one-feed")} == set(SYMBOLS)


def test_the_terminal_report_lists_series_levels_and_flagged_bars(
    demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "report", "AAPL", "BTC/USD", "--output", str(demo_dir))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "AAPL"
    assert lines[1].split() == [
        "feed", "res", "rows", "first", "bar", "(UTC)", "last", "bar", "(UTC)", "coverage",
        "gaps", "EXCELLENT", "GOOD", "FAIR", "POOR", "INVALID", "UNSCORED",
    ]  # fmt: skip
    ((first, last),) = _stored(
        demo_dir, "select min(ts_event), max(ts_event) from bars where symbol = 'AAPL'"
    )
    assert lines[2].split() == [
        "replay", "1m", "2,303", _iso(int(first)), _iso(int(last)),
        "100.00%", "0", "2,302", "0", "0", "1", "0", "0",
    ]  # fmt: skip
    assert lines[3] == "  feeds: one (replay): nothing to compare"
    assert lines[4] == "  flagged bars (level below GOOD): 1"
    assert lines[6].split() == [
        AAPL_SPLIT, "replay", "1m", "POOR", "split_inside_bar", "645.57", "645.57", "92.23",
        "92.42", "600",
    ]  # fmt: skip
    btc = lines[lines.index("BTC/USD") :]
    assert btc[3].split()[:8] == ["replay", "1d", "1,318", "2014-12-01T00:00:00Z",
                                  "2018-08-13T00:00:00Z", "97.49%", "8", "1,316"]  # fmt: skip
    flagged = [line.split()[:4] for line in btc if line.startswith("    20")]
    assert flagged == [
        ["2015-01-14T00:00:00Z", "replay", "1d", "FAIR"],
        [BTC_LOW, "replay", "1d", "POOR"],
    ]
    assert "HTML report" not in out


def test_downsampling_keeps_extremes_and_flagged_bars(demo_dir: Path) -> None:
    rows = _stored(
        demo_dir,
        "select ts_event, close from bars where symbol = 'SPY' and resolution = '1m' "
        "order by ts_event",
    )
    times = [int(t) for t, _ in rows]
    closes = [float(c) for _, c in rows]
    keep = times[1234]
    x = Scale(times[0], times[-1], 0, 100)
    points = minmax_columns(times, closes, x, [keep])
    assert len(points) <= 4 * 101 + 1 < len(times)
    values = [v for _, v in points]
    assert (min(values), max(values)) == (min(closes), max(closes))
    assert (x(keep), closes[1234]) in points
    assert [p for p, _ in points] == sorted(p for p, _ in points)  # in time order
    wide = Scale(times[0], times[-1], 0, 5000)  # room for every bar: none dropped
    assert minmax_columns(times, closes, wide) == [
        (wide(t), c) for t, c in zip(times, closes, strict=True)
    ]


def _mirror_csv(path: Path, hostile_at: int) -> tuple[float, float]:
    """The Coinbase minute bars as a CSV with one close changed; (real, hostile) close."""
    bars = [b for b in iter_file(COINBASE_MINUTES) if isinstance(b, TradeBar)]
    real = hostile = 0.0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "open", "high", "low", "close", "volume"])
        for bar in bars:
            close = bar.close
            if bar.ts_event == hostile_at:
                real, hostile = close, bar.high * 1.5  # high and low raised around it
                close = hostile
            high = max(bar.high, close)
            writer.writerow(
                [bar.ts_event, repr(bar.open), repr(high), repr(bar.low), repr(close),
                 repr(bar.volume)]
            )  # fmt: skip
    return real, hostile


async def _replay(feed: ReplayFeed, output: Path) -> None:
    progress = Progress(total=sum(feed.count(s) for s in feed.symbols))
    assert await run_replay(feed, Storing(output), progress, show_progress=False) == 0


async def test_two_feeds_of_one_symbol_show_where_they_disagree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile_at = 1_513_512_000 * 10**9  # 2017-12-17T12:00:00Z
    mirror = tmp_path / "btcusd_mirror.csv"
    real, hostile = _mirror_csv(mirror, hostile_at)
    await _replay(ReplayFeed("coinbase", [COINBASE_MINUTES]), tmp_path)
    feed = ReplayFeed("mirror")
    feed.add_source(mirror, symbol="BTC/USD", resolution="1m", asset_class="crypto")
    await _replay(feed, tmp_path)
    html = tmp_path / "two.html"
    argv = ["report", "BTC/USD", "--output", str(tmp_path), "--html", str(html)]
    code, out, err = await asyncio.to_thread(_run, capsys, *argv)
    assert (code, err) == (0, "")
    bps = abs(hostile - real) / real * 1e4
    assert (
        f"  feeds: coinbase vs mirror (1m): 1,440 shared open times, closes differ at 1; "
        f"largest {bps:,.2f} bps at 2017-12-17T12:00:00Z"
    ) in out.splitlines()
    page = Page(html.read_text(encoding="utf-8"))
    (block,) = page.find("div", "comparison", data_symbol="BTC/USD")
    assert (block.attrs["data-shared"], block.attrs["data-differing"]) == ("1440", "1")
    (row,) = page.find("tr", "difference")
    assert row.attrs["data-time"] == "2017-12-17T12:00:00Z"
    assert float(row.attrs["data-bps"]) == pytest.approx(bps, abs=1e-4)
    assert [c.text for c in row.children][1:3] == [repr(real), repr(hostile)]
    assert {c.attrs["data-feed"] for c in page.find("svg", "price-chart")} == {"coinbase", "mirror"}


async def test_postgresql_gives_the_same_report_as_sqlite(
    tmp_path: Path, pg: PostgresBackend, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    more = ["--database-url", pg.url, "--database-schema", pg.schema]
    demo = ["demo", "--output", str(tmp_path), "--no-progress", *more]
    assert await asyncio.to_thread(main, demo) == 0
    html = tmp_path / "pg.html"
    argv = ["report", *SYMBOLS, *more, "--html", str(html)]
    code, out, err = await asyncio.to_thread(_run, capsys, *argv)
    assert (code, err) == (0, "")
    sqlite_argv = ["report", *SYMBOLS, "--output", str(demo_dir)]
    _, sqlite_out, _ = await asyncio.to_thread(_run, capsys, *sqlite_argv)
    assert out.split("\n\n")[:-1] == sqlite_out.split("\n\n")[:-1]  # all but the store line
    page = Page(html.read_text(encoding="utf-8"))
    assert {n.attrs["data-time"] for n in page.find(cls="flag-POOR")} == {AAPL_SPLIT, BTC_LOW}


def test_an_unknown_symbol_is_one_line_naming_the_stored_ones(
    demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "report", "AAPL", "TSLA", "ETH/USD", "--output", str(demo_dir))
    assert (code, out) == (1, "")
    assert err == (
        f"lean-data: error: TSLA, ETH/USD: no stored bars of these symbols in "
        f"{demo_dir / 'lean_data.db'} (stored: AAPL, BTC/BUSD, BTC/USD, SPY); pass stored "
        "symbols, see lean-data catalog\n"
    )


def test_a_symbol_may_be_written_without_its_separator(
    demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "report", "btc-usd", "--output", str(demo_dir))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "BTC/USD"


def test_no_store_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "report", "AAPL", "--output", str(tmp_path / "none"))
    assert (code, out) == (1, "")
    assert err == (
        f"lean-data: error: {tmp_path / 'none' / 'lean_data.db'}: no database there; run "
        "lean-data demo first, or pass --output DIR (the directory of a run) or "
        "--database-url URL\n"
    )
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("missing/out.html", "no directory {d}/missing; create it or pass another path"),
        (".", "is a directory; pass a file name, e.g. {d}/report.html"),
    ],
)
def test_an_html_path_that_cannot_be_written_is_one_line_before_any_work(
    tmp_path: Path, demo_dir: Path, capsys: pytest.CaptureFixture[str], where: str, problem: str
) -> None:
    target = tmp_path if where == "." else tmp_path / where
    argv = ["report", "AAPL", "--output", str(demo_dir), "--html", str(target)]
    code, out, err = _run(capsys, *argv)
    assert (code, out) == (1, "")  # refused before the report is printed
    assert err == f"lean-data: error: --html {target}: {problem.format(d=tmp_path)}\n"


def test_a_failing_write_is_one_line(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # /dev/full exists and may be opened for writing, and every write to it fails (ENOSPC).
    argv = ["report", "AAPL", "--output", str(demo_dir), "--html", "/dev/full"]
    code, out, err = _run(capsys, *argv)
    assert code == 1
    assert out.startswith("AAPL\n")  # the terminal report was printed before
    assert err == (
        "lean-data: error: --html /dev/full: cannot write it (No space left on device); pass a "
        "path you may write to\n"
    )


def test_an_invalid_item_that_was_not_stored_is_still_in_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hostile volume in real FTX minutes: INVALID, not stored, and named by the report."""
    source = Path(__file__).parent / "fixtures/nautilus_trader/btc-perp-20211231-20220201_1m.csv"
    with source.open(newline="") as f:
        rows = list(csv.reader(f))[:401]
    rows[200][5] = "1e308"
    hostile = tmp_path / "BTC-PERP.csv"
    with hostile.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    run = ["--output", str(tmp_path / "run")]
    replay = ["replay", str(hostile), "--asset-class", "crypto", "--no-progress", *run]
    assert main(replay) == 0
    capsys.readouterr()
    page = tmp_path / "report.html"
    assert main(["report", "BTC-PERP", *run, "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "  INVALID items not stored (errors table, kind invalid_data): 1\n" in out
    assert "replay  volume 1e+308 is beyond 1e+18\n" in out
    assert "  replay  1m    399" in out  # the other 399 bars are stored
    html = page.read_text(encoding="utf-8")
    assert "INVALID items of BTC-PERP not stored: 1" in html
    assert "<td>volume 1e+308 is beyond 1e+18</td>" in html
