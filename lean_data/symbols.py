"""Symbol classification from the name alone: the last resort of routing and calendars.

Canonical forms: crypto ``BASE/QUOTE`` (optionally ``BASE/QUOTE:SETTLE`` for derivatives),
equities ``AAPL`` / ``BRK.B``, forex ``EUR/USD`` (both sides ISO currencies).

A venue's metadata says better what a symbol is (ccxt markets, Alpaca assets, a Binance
exchange): the engine asks the feed first (:meth:`DataFeed.asset_class
<lean_data.feeds.base.DataFeed.asset_class>`) and uses :func:`classify_symbol` only when the
feed does not know. Venue spellings are read too, and a currency pair is never an equity:

- ``BTCUSDT``, ``ETHBTC``, ``BLZETH``, ``OMGBUSD``: a concatenated pair ending in a crypto
  quote (USDT, USDC, BUSD, BTC, ETH, BNB, ...) with a base of two or more characters →
  crypto. ``GBTC`` and ``FETH`` (one-letter "base") stay equities.
- ``BTCUSD``, ``XBTUSD``, ``RUNEEUR``: a fiat quote after a known crypto base, or after a
  base of three or more characters (six or more in all: longer than any US ticker) → crypto.
- ``EURUSD``, ``USDJPY``: six letters, both halves ISO 4217 currencies → forex.
- ``BTC-PERP``, ``ETH-USDT-SWAP``, ``BTC-PERPETUAL``, ``LINKUSD_PERP``, ``BTCUSD_211231``:
  perpetual, swap and dated-delivery spellings → crypto. ``SKL-USD``, ``DASH-BTC``,
  ``ETH_BTC`` → crypto; ``EUR-USD`` → forex; ``BRK-B`` stays an equity.
"""

from __future__ import annotations

import re

from lean_data.models import AssetClass

__all__ = [
    "CRYPTO_QUOTES",
    "FIAT_CURRENCIES",
    "FIAT_QUOTES",
    "ISO_CURRENCIES",
    "KNOWN_CRYPTO",
    "classify_symbol",
]

# fmt: off
FIAT_CURRENCIES = frozenset({
    "USD", "EUR", "JPY", "GBP", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "HKD", "SGD",
    "CNH", "CNY", "MXN", "ZAR", "TRY", "PLN", "CZK", "HUF", "ILS", "INR", "KRW", "BRL", "RUB",
    "THB", "TWD",
})
"""The most traded fiat currencies (kept for callers; pairs are judged by ISO_CURRENCIES)."""

ISO_CURRENCIES = FIAT_CURRENCIES | frozenset({
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BSD", "BTN", "BWP", "BYN", "BZD", "CDF", "CLP", "COP",
    "CRC", "CUP", "CVE", "DJF", "DOP", "DZD", "EGP", "ERN", "ETB", "FJD", "FKP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HNL", "HTG", "IDR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "KES", "KGS", "KHR", "KMF", "KPW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
    "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MYR",
    "MZN", "NAD", "NGN", "NIO", "NPR", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PYG", "QAR",
    "RON", "RSD", "RWF", "SAR", "SBD", "SCR", "SDG", "SHP", "SLE", "SOS", "SRD", "SSP", "STN",
    "SVC", "SYP", "SZL", "TJS", "TMT", "TND", "TOP", "TTD", "TZS", "UAH", "UGX", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZMW", "ZWL",
    "XAU", "XAG", "XPT", "XPD",
})
"""ISO 4217 codes of circulating currencies and of the four precious metals (no funds or
test codes): ``EURUSD``, ``XAUUSD`` and ``ARS/USD``, two of them, are forex pairs."""

CRYPTO_QUOTES: tuple[str, ...] = (
    "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "BTC", "XBT", "ETH", "BNB",
)
"""Quotes that only crypto venues list, longest first: ``XUSDT`` is crypto whatever ``X``."""

FIAT_QUOTES: tuple[str, ...] = (
    "USD", "EUR", "GBP", "JPY", "AUD", "CAD", "CHF", "TRY", "BRL", "RUB", "UAH", "KRW", "ZAR",
    "PLN", "MXN", "ARS", "NGN", "IDR", "RON", "CZK", "SGD", "HKD", "NZD", "INR",
)
"""Fiat quotes crypto venues list; crypto only after a crypto base (``BTCUSD``)."""

KNOWN_CRYPTO = frozenset({
    "BTC", "XBT", "ETH", "LTC", "BCH", "XRP", "ADA", "SOL", "DOT", "DOGE", "LINK", "TRX", "EOS",
    "ETC", "XLM", "XMR", "ZEC", "DASH", "BNB", "AVAX", "MATIC", "POL", "UNI", "ATOM", "SHIB",
    "USDT", "USDC", "DAI", "OP", "AR", "SC", "NU", "FIL", "NEAR", "APT", "SUI", "TON",
})
"""Crypto bases a fiat-quoted concatenated pair is read with, however short (``SCEUR``)."""
# fmt: on

_PAIR = re.compile(r"^([A-Z0-9]{1,20})/([A-Z0-9]{1,20})(?::([A-Z0-9]{1,20}))?$")
_EQUITY = re.compile(r"^[A-Z][A-Z0-9]{0,9}(?:[.-][A-Z0-9]{1,4})?$")
_INDEX = re.compile(r"^\^[A-Z0-9.]{1,15}$")
_TOKEN = re.compile(r"^[A-Z0-9]{1,20}$")
_DERIVATIVE_SUFFIXES = frozenset({"PERP", "PERPETUAL", "SWAP"})
_DELIVERY = re.compile(r"^\d{6}$")  # Binance COIN-M delivery date, YYMMDD


def _currency_like(code: str) -> bool:
    return code in ISO_CURRENCIES or code in CRYPTO_QUOTES or code in KNOWN_CRYPTO


def _pair_class(base: str, quote: str) -> AssetClass:
    """Forex when both sides are ISO currencies, else crypto (``BASE/QUOTE`` read as one)."""
    if base in ISO_CURRENCIES and quote in ISO_CURRENCIES:
        return AssetClass.FOREX
    return AssetClass.CRYPTO


def _concatenated(text: str) -> AssetClass | None:
    """The class of ``BTCUSDT`` / ``EURUSD`` style names, None for anything else."""
    if not _TOKEN.match(text):
        return None
    if len(text) == 6 and text[:3] in ISO_CURRENCIES and text[3:] in ISO_CURRENCIES:
        return AssetClass.FOREX
    for quote in CRYPTO_QUOTES:
        if text.endswith(quote) and len(text) - len(quote) >= 2:
            return AssetClass.CRYPTO
    for quote in FIAT_QUOTES:
        base = text[: -len(quote)]
        crypto_base = base in KNOWN_CRYPTO or len(base) >= 3
        if text.endswith(quote) and base and base not in ISO_CURRENCIES and crypto_base:
            return AssetClass.CRYPTO
    return None


def _separated(parts: list[str]) -> AssetClass | None:
    """The class of ``BTC-PERP``, ``SKL-USD``, ``ETH-USDT-SWAP``, ``BTCUSD_211231``, ``ETH_BTC``."""
    if len(parts) < 2 or not all(_TOKEN.match(part) for part in parts):
        return None
    last = parts[-1]
    if last in _DERIVATIVE_SUFFIXES or (_DELIVERY.match(last) and len(parts) == 2):
        return AssetClass.CRYPTO
    if len(parts) == 2 and len(last) >= 3 and _currency_like(last):
        return _pair_class(parts[0], last)
    if len(parts) == 3 and _currency_like(parts[1]) and _currency_like(last):
        return AssetClass.CRYPTO  # freqtrade futures: XRP_USDT_USDT (base, quote, settle)
    return None


def classify_symbol(symbol: str) -> AssetClass | None:
    """Return the asset class a symbol's name says, or None when it says none.

    ``EUR/USD`` is forex (both sides ISO currencies); any other ``BASE/QUOTE`` is crypto; a
    ``BASE/QUOTE:SETTLE`` is a crypto derivative (crypto); ``^GSPC`` is an index; venue
    spellings of pairs (``BTCUSDT``, ``EURUSD``, ``BTC-PERP``: see the module docstring)
    are crypto or forex; a plain ticker such as ``AAPL`` or ``BRK.B`` is an equity.
    """
    text = symbol.strip().upper()
    match = _PAIR.match(text)
    if match is not None:
        base, quote, settle = match.groups()
        return _pair_class(base, quote) if settle is None else AssetClass.CRYPTO
    if _INDEX.match(text):
        return AssetClass.INDEX
    found = _concatenated(text) or _separated(re.split(r"[-_]", text))
    if found is not None:
        return found
    if _EQUITY.match(text):
        return AssetClass.EQUITY
    return None
