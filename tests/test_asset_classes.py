"""Asset classes from venue metadata first, explicit arguments next, the name last.

Real data: the FTX BTC-PERP minute bars (tests/fixtures/nautilus_trader, 2021-12-31 23:01 →
2022-02-01, complete) with bars taken out to make holes; the LEAN folders' security types;
the real Binance pairs of the cryptofeed captures as ccxt markets (the market structures are
built by ``tests/test_ccxt_feed.market``, the pairs are real). See tests/fixtures/PROVENANCE.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_data import AssetClass, Config, DataEngine, ReplayFeed, ReplaySource
from lean_data.errors import ConfigError
from lean_data.feeds.ccxt_feed import CcxtDataFeed
from lean_data.loaders import describe_file
from lean_data.series.calendars import AlwaysOpen, ExchangeCalendar
from lean_data.wire.ccxt import market_asset_class

from .conftest import FIXTURES
from .helpers import ListFeed
from .test_ccxt_feed import market

FTX = FIXTURES / "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
ROWS = 5_000  # 2021-12-31 23:01 (Friday) → 2022-01-04 10:20 UTC: New Year, a weekend, 2 days
HOLE_EVERY = 50  # every 50th bar (index 25, 75, ...) is removed: 100 single-bar holes


def holed_csv(path: Path) -> int:
    """Write the first ROWS FTX bars minus the holes to ``path``; return the hole count."""
    lines = FTX.read_text().splitlines()
    header, rows = lines[0], lines[1 : ROWS + 1]
    kept = [row for i, row in enumerate(rows) if i % HOLE_EVERY != HOLE_EVERY // 2]
    path.write_text("\n".join([header, *kept]) + "\n")
    return len(rows) - len(kept)


async def replay_gaps(feed: ReplayFeed) -> tuple[str, dict[str, int], object]:
    (symbol,) = feed.symbols
    async with DataEngine(Config(db_path=None)) as engine:
        engine.add_feed(feed)
        await engine.subscribe_symbol(symbol)
        await feed.wait_finished()
        await engine.wait_idle()
        stats = engine.get_metrics()["continuity"]
        calendar = engine._backfill.calendar_of(symbol)  # which calendar judged it
    return symbol, stats, calendar


@pytest.mark.parametrize(
    ("name", "asset_class"),
    [
        ("btcusdt_holes.csv", None),  # no class in the name: judged 24/7, with a warning
        ("btcusdt.csv", None),  # a Binance pair: crypto (was: a NYSE equity, 0 gaps)
        ("btc-perp.csv", None),  # FTX's own name: crypto (was: an equity)
        ("spy.csv", "crypto"),  # a misleading name, overridden by the argument
        ("btcusdt_holes.csv", AssetClass.CRYPTO),
    ],
)
async def test_btc_minutes_with_holes_report_the_same_gaps_whatever_the_file_name(
    tmp_path: Path, name: str, asset_class: AssetClass | str | None
) -> None:
    holes = holed_csv(tmp_path / name)
    assert holes == ROWS // HOLE_EVERY == 100
    feed = ReplayFeed("files", [tmp_path / name], asset_class=asset_class)
    _, stats, calendar = await replay_gaps(feed)
    assert (stats["gaps"], stats["missing_reported"]) == (holes, holes)
    assert isinstance(calendar, AlwaysOpen)


async def test_an_equity_class_judges_btc_minutes_on_nyse_hours(tmp_path: Path) -> None:
    # the old mistake, made on purpose: most holes fall on New Year, the weekend or at night
    holes = holed_csv(tmp_path / "btcusdt.csv")
    feed = ReplayFeed("files", [tmp_path / "btcusdt.csv"], asset_class="equity")
    _, stats, calendar = await replay_gaps(feed)
    assert isinstance(calendar, ExchangeCalendar)
    assert calendar.code == "XNYS"
    assert 0 < stats["gaps"] < holes // 4


async def test_a_calendar_given_to_the_feed_is_the_one_used(tmp_path: Path) -> None:
    holes = holed_csv(tmp_path / "spy.csv")
    always = AlwaysOpen()
    feed = ReplayFeed("files", [tmp_path / "spy.csv"], calendar=always)
    assert feed.asset_class("SPY") is None
    _, stats, calendar = await replay_gaps(feed)
    assert calendar is always
    assert stats["gaps"] == holes


def test_lean_folders_and_crypto_formats_declare_the_class() -> None:
    lean = FIXTURES / "lean"
    found = {
        path: describe_file(path).asset_class
        for path in [
            lean / "equity/usa/daily/spy.zip",
            lean / "crypto/binance/hour/btcusdt_trade.zip",
            next((lean / "cryptofuture/bybit/minute/btcusdt").glob("*_quote.zip")),
            FIXTURES / "nautilus_trader/ADABTC-1m-2021-11-27.csv",
            FIXTURES / "freqtrade/ETH_BTC-5m.feather",
            FTX,
        ]
    }
    assert list(found.values()) == [AssetClass.EQUITY] + [AssetClass.CRYPTO] * 4 + [None]


def test_replay_feed_answers_explicit_then_feed_wide_then_format() -> None:
    spy = FIXTURES / "lean/equity/usa/daily/spy.zip"
    btc = FIXTURES / "lean/crypto/binance/hour/btcusdt_trade.zip"
    feed = ReplayFeed("files", [spy, btc, FTX])
    assert [feed.asset_class(s) for s in feed.symbols] == [
        AssetClass.EQUITY,  # LEAN equity/ folder
        AssetClass.CRYPTO,  # LEAN crypto/ folder
        None,  # a generic CSV says nothing: the engine reads the name
    ]
    forced = ReplayFeed("files", [spy, ReplaySource(btc, asset_class=AssetClass.FOREX)],
                        asset_class="crypto")  # fmt: skip
    assert [forced.asset_class(s) for s in forced.symbols] == [AssetClass.CRYPTO,
                                                               AssetClass.FOREX]  # fmt: skip
    with pytest.raises(ConfigError, match="expected one of crypto, equity"):
        ReplayFeed("files", [spy], asset_class="stocks")


def test_ccxt_markets_classify_real_binance_pairs() -> None:
    pairs = [("BTC", "BUSD"), ("OMG", "BUSD"), ("ADA", "BTC"), ("NKN", "USDT"), ("RUNE", "EUR")]
    markets = [market(base, quote) for base, quote in pairs]
    swap = market("SUSHI", "USDT") | {"symbol": "SUSHI/USDT:USDT", "type": "swap", "spot": False}
    fiat = market("EUR", "USD")  # Kraken lists EUR/USD: 24/7 on a crypto venue
    feed = CcxtDataFeed("binance", "binance", markets=[*markets, swap, fiat])
    symbols = [m["symbol"] for m in [*markets, swap, fiat]]
    assert {s: feed.asset_class(s) for s in symbols} == dict.fromkeys(symbols, AssetClass.CRYPTO)
    # without a type, the pair decides; an unlisted symbol gets the feed's one class
    untyped = {"symbol": "EUR/USD", "base": "EUR", "quote": "USD"}
    assert market_asset_class(untyped) is AssetClass.FOREX
    assert market_asset_class({"symbol": "X"}) is None
    assert feed.asset_class("DOGE/USDT") is AssetClass.CRYPTO


async def test_the_engine_asks_the_feed_before_the_name() -> None:
    # "SPY" served by a crypto-only feed: the feed's word wins over the ticker's look
    feed = ListFeed("crypto", asset_classes=frozenset({AssetClass.CRYPTO}))
    engine = DataEngine(Config(db_path=None))
    engine.add_feed(feed)
    await engine.subscribe_symbol("SPY", "crypto")
    assert engine._backfill.asset_class_of("SPY") is AssetClass.CRYPTO
    assert isinstance(engine._backfill.calendar_of("SPY"), AlwaysOpen)
    mixed = ListFeed("any")  # serves every class: no answer, the name decides
    assert mixed.asset_class("SPY") is None
