"""The ``lean-data report --html`` page in a real headless Chromium (chromedriver's HTTP API).

The page of the demo's real data is opened from ``file://`` (nothing served: it must be
self-contained); the test asks the browser whether the charts rendered (SVG boxes with a
size) and whether the two known bad bars' markers are on screen and not covered, then
writes a PNG screenshot to the test's ``tmp_path``
(``<pytest tmp dir>/test_the_report_page_renders_0/report.png``).

Chromium is required, never skipped: CI installs Debian's ``chromium`` and
``chromium-driver`` (.ci/run) and the test fails loudly without them (the helpers are
those of tests/test_gateway_browser.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from lean_data.cli import main
from tests.test_gateway_browser import chromium

SYMBOLS = ["AAPL", "BTC/USD", "SPY", "BTC/BUSD"]
MARKERS = [  # (symbol, bar period, open time) of a POOR bar the demo data holds
    ("AAPL", "1m", "2014-06-09T08:00:00Z"),  # the split inside a pre-market bar: L 92.23
    ("BTC/USD", "1d", "2017-04-15T00:00:00Z"),  # Coinbase's 0.06 low
]

CHARTS_JS = """
const kinds = 'svg.price-chart, svg.coverage-timeline, svg.quality-histogram';
return [...document.querySelectorAll(kinds)].map(svg => {
  const box = svg.getBBox();
  const line = svg.querySelector('path.close-line');
  return {kind: svg.getAttribute('class'), symbol: svg.dataset.symbol,
          width: box.width, height: box.height,
          line: line ? line.getBBox().width : null};
});
"""

MARKER_JS = """
const [symbol, resolution, time] = arguments;
const chart = document.querySelector(
  `svg.price-chart[data-symbol="${symbol}"][data-resolution="${resolution}"]`);
const marker = chart && chart.querySelector(`.flag-POOR[data-time="${time}"]`);
if (!marker) return null;
marker.scrollIntoView({block: 'center'});
const r = marker.getBoundingClientRect();
const style = getComputedStyle(marker);
const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
return {width: r.width, height: r.height, visible: style.visibility,
        display: style.display, fill: style.fill, onTop: hit === marker,
        tip: marker.querySelector('title').textContent};
"""


async def test_the_report_page_renders(tmp_path: Path) -> None:
    demo = ["demo", "--output", str(tmp_path), "--no-progress"]
    assert await asyncio.to_thread(main, demo) == 0
    page = tmp_path / "report.html"
    report = ["report", *SYMBOLS, "--output", str(tmp_path), "--html", str(page)]
    assert await asyncio.to_thread(main, report) == 0
    async with chromium(tmp_path / "profile") as browser:
        await browser.go(page.resolve().as_uri())
        charts = await browser.run(CHARTS_JS)
        assert len(charts) == 3 * 6  # three charts per stored series, six series
        assert {c["symbol"] for c in charts} == set(SYMBOLS)
        for chart in charts:
            assert chart["width"] > 0, chart
            assert chart["height"] > 0, chart
            if chart["kind"] == "price-chart":
                assert chart["line"] > 0, chart  # the close line was drawn
        for symbol, resolution, time in MARKERS:
            body = {"script": MARKER_JS, "args": [symbol, resolution, time]}
            found = await browser.call("POST", "/execute/sync", body)
            assert found is not None, (symbol, time)
            assert found["width"] > 0, found
            assert found["height"] > 0, found
            assert (found["visible"], found["display"]) == ("visible", "inline"), found
            assert found["onTop"], found  # nothing drawn over the marker
            assert found["fill"] == "rgb(220, 38, 38)", found  # POOR's red
            assert found["tip"].startswith(f"{time} POOR"), found
        shot = await browser.screenshot()
    (tmp_path / "report.png").write_bytes(shot)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(shot) > 10_000
