"""Symbol classification from names, on real symbol lists read from venues' recorded data.

The lists come from the venues' own traffic and files, never typed in: Binance spot, US and
USDT-M futures stream names and ``s`` fields (cryptofeed captures), Kraken's subscribe line,
the ``symbol`` column of Tardis.dev samples (BitMEX, Deribit, Huobi, Binance futures), the
Alpaca crypto REST answers recorded by ccxt, and the security type of each LEAN folder. See
tests/fixtures/PROVENANCE.md. Coinbase products, Binance COIN-M delivery symbols and the
whole LEAN tree are read from the shared corpus (``../shared/data``) when it is present.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from lean_data import AssetClass, DataEngine
from lean_data.config import Config
from lean_data.symbols import classify_symbol

from .conftest import FIXTURES
from .helpers import ListFeed

SHARED = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()
CRYPTOFEED = FIXTURES / "cryptofeed"


def binance_symbols(path: Path) -> set[str]:
    """Symbols of a cryptofeed Binance capture: stream names of the URL and ``s`` fields."""
    text = path.read_text()
    url = text.splitlines()[0].split(" <-> ")[0]
    streams = url.split("streams=")[1].split("/")
    named = {stream.split("@")[0].upper() for stream in streams}
    fields = set(re.findall(r'"s":"([A-Z0-9_]+)"', text))
    assert named == fields  # the URL and the frames agree: nothing parsed wrong
    return named


def subscribed(path: Path, key: str) -> set[str]:
    """The symbols of a capture's first outgoing subscribe frame (``<url> <- <ts>: {...}``)."""
    for line in path.read_text().splitlines():
        if " <- " in line:
            return set(json.loads(line.split(": ", 1)[1])[key])
    raise AssertionError(f"no subscribe frame in {path}")


def tardis_symbols() -> set[str]:
    found = set()
    for path in (FIXTURES / "nautilus_trader/tardis").glob("*.csv"):
        with path.open() as handle:
            found |= {row["symbol"] for row in csv.DictReader(handle)}
    return found


def alpaca_symbols() -> set[str]:
    methods = json.loads((FIXTURES / "ccxt/alpaca_marketdata_subset.json").read_text())["methods"]
    found = set()
    for entries in methods.values():
        for entry in entries:
            for key in ("trades", "orderbooks", "snapshots"):
                found |= set(entry["httpResponse"].get(key, {}))
    return found


def lean_tickers(root: Path) -> dict[str, set[str]]:
    """LEAN tickers by security type (``equity``, ``crypto``, ``cryptofuture``), from paths."""
    found: dict[str, set[str]] = {}
    for path in root.glob("*/*/*/*"):
        kind, resolution, name = path.parts[-4], path.parts[-2], path.name
        if resolution in ("daily", "hour"):
            name = name.removesuffix(".zip").removesuffix("_trade").removesuffix("_quote")
        found.setdefault(kind, set()).add(name.upper())
    return found


def test_binance_spot_us_and_futures_symbols_are_crypto() -> None:
    symbols = {
        name: binance_symbols(CRYPTOFEED / f"{name}.ws.1.0")
        for name in ("BINANCE", "BINANCE_US", "BINANCE_FUTURES")
    }
    assert symbols == {
        "BINANCE": {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"},
        "BINANCE_US": {"CRVUSDT", "COMPUSDT", "OMGBUSD", "ZRXUSDT"},
        "BINANCE_FUTURES": {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"},
    }
    for names in symbols.values():
        assert {s: classify_symbol(s) for s in names} == dict.fromkeys(names, AssetClass.CRYPTO)


def test_kraken_tardis_and_alpaca_symbols_are_crypto() -> None:
    kraken = subscribed(CRYPTOFEED / "KRAKEN.ws.48.0", "pair")
    tardis = tardis_symbols()
    alpaca = alpaca_symbols()
    assert len(kraken) == 10
    assert "XBT/CHF" in kraken
    assert "WAVES/EUR" in kraken
    assert tardis == {"XBTUSD", "BTC-PERPETUAL", "BTC-USD", "BTCUSDT"}
    assert alpaca == {"BTC/USD", "BTC/USDT", "LTC/USD"}
    names = kraken | tardis | alpaca
    assert {s: classify_symbol(s) for s in names} == dict.fromkeys(names, AssetClass.CRYPTO)


def test_lean_tickers_follow_their_security_type() -> None:
    tickers = lean_tickers(FIXTURES / "lean")
    assert {"SPY", "AAPL", "AIG", "IBM"} <= tickers["equity"]
    assert {"BTCUSD", "BTCUSDT"} <= tickers["crypto"]
    assert "BTCUSDT" in tickers["cryptofuture"]
    expected = {"equity": AssetClass.EQUITY, "crypto": AssetClass.CRYPTO,
                "cryptofuture": AssetClass.CRYPTO}  # fmt: skip
    for kind, names in tickers.items():
        assert {s: classify_symbol(s) for s in names} == dict.fromkeys(names, expected[kind])


def test_file_names_of_the_corpus_classify_as_their_venue_says() -> None:
    # names the loaders infer from real files: FTX BTC-PERP, Binance ADABTC, freqtrade pairs
    crypto = ["BTC-PERP", "ADABTC", "ETH_BTC", "XRP_USDT_USDT", "UNITTEST_BTC"]
    assert [classify_symbol(s) for s in crypto] == [AssetClass.CRYPTO] * len(crypto)
    # backtrader's Yahoo daily files: nvda-1999-2014.txt, orcl-..., yhoo-...
    assert [classify_symbol(s) for s in ("NVDA", "ORCL", "YHOO")] == [AssetClass.EQUITY] * 3


def test_forex_pairs_in_venue_spellings() -> None:
    # no FX file is in the corpus (PROVENANCE: "FX files" not copied); these are the majors
    # and crosses as FX venues spell them, and 6E's underlying
    pairs = ["EURUSD", "USDJPY", "GBPUSD", "AUDUSD", "USDCHF", "USDCAD", "NZDUSD", "EURGBP",
             "EURJPY", "USDMXN", "XAUUSD", "EUR/USD", "EUR-USD", "USD/TRY"]  # fmt: skip
    assert {s: classify_symbol(s) for s in pairs} == dict.fromkeys(pairs, AssetClass.FOREX)
    # a stablecoin or crypto quote makes a fiat base crypto
    for symbol in ("EURUSDT", "EUR/USDT", "GBPBTC"):
        assert classify_symbol(symbol) is AssetClass.CRYPTO, symbol


def test_plain_tickers_stay_equities() -> None:
    # one-letter "bases" before a crypto quote are US tickers: Grayscale GBTC, Fidelity FBTC
    # and FETH; share classes with a dot or a one-letter dash suffix
    names = ["GBTC", "FBTC", "FETH", "BRK.B", "BRK-B", "BF-B", "SPY", "QQQ", "IWM", "GOOGL"]
    assert {s: classify_symbol(s) for s in names} == dict.fromkeys(names, AssetClass.EQUITY)
    assert classify_symbol("^GSPC") is AssetClass.INDEX
    assert classify_symbol("BTCUSDT_HOLES") is None  # a file name, not a symbol


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared corpus is not present")
def test_shared_corpus_symbol_lists() -> None:
    coinbase = subscribed(SHARED / "cryptofeed/COINBASE.ws.28.0", "product_ids")
    delivery = binance_symbols(SHARED / "cryptofeed/BINANCE_DELIVERY.ws.1.0")
    assert {"SKL-USD", "DASH-BTC", "NU-GBP", "NMR-EUR"} <= coinbase
    assert len(coinbase) == 10
    assert {"BTCUSD_211231", "LINKUSD_PERP", "ETHUSD_210924"} <= delivery
    assert len(delivery) == 10
    crypto = coinbase | delivery
    assert {s: classify_symbol(s) for s in crypto} == dict.fromkeys(crypto, AssetClass.CRYPTO)
    tickers = lean_tickers(SHARED / "lean")
    assert {"BTCBUSD", "BTCEUR", "ETHUSD", "LTCUSD"} <= tickers["crypto"]
    assert {"ADAUSDT", "BTCUSD"} <= tickers["cryptofuture"]
    assert {"BAC", "IWM", "QQQ"} <= tickers["equity"]
    for kind, names in tickers.items():
        want = AssetClass.EQUITY if kind == "equity" else AssetClass.CRYPTO
        assert {s: classify_symbol(s) for s in names} == dict.fromkeys(names, want)


async def test_concatenated_crypto_pairs_route_to_the_crypto_feed() -> None:
    stocks = ListFeed("stocks", asset_classes=frozenset({AssetClass.EQUITY}))
    crypto = ListFeed("crypto", asset_classes=frozenset({AssetClass.CRYPTO}))
    fx = ListFeed("fx", asset_classes=frozenset({AssetClass.FOREX}))
    engine = DataEngine(Config(db_path=None))
    for feed in (stocks, crypto, fx):
        engine.add_feed(feed)
    names = binance_symbols(CRYPTOFEED / "BINANCE.ws.1.0") | tardis_symbols()
    assert {s: engine.route(s).name for s in names} == dict.fromkeys(names, "crypto")
    assert [engine.route(s).name for s in ("SPY", "EURUSD", "BTC/USDT")] == ["stocks", "fx",
                                                                             "crypto"]  # fmt: skip
