"""Symbol classification, used to route a symbol to a feed that serves it.

Canonical forms: crypto ``BASE/QUOTE`` (optionally ``BASE/QUOTE:SETTLE`` for derivatives),
equities ``AAPL`` / ``BRK.B``, forex ``EUR/USD`` (both sides ISO currencies).
"""

from __future__ import annotations

import re

from lean_data.models import AssetClass

__all__ = ["FIAT_CURRENCIES", "classify_symbol"]

# fmt: off
FIAT_CURRENCIES = frozenset({
    "USD", "EUR", "JPY", "GBP", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "HKD", "SGD",
    "CNH", "CNY", "MXN", "ZAR", "TRY", "PLN", "CZK", "HUF", "ILS", "INR", "KRW", "BRL", "RUB",
    "THB", "TWD",
})
# fmt: on

_PAIR = re.compile(r"^([A-Z0-9]{1,20})/([A-Z0-9]{1,20})(?::([A-Z0-9]{1,20}))?$")
_EQUITY = re.compile(r"^[A-Z][A-Z0-9]{0,9}(?:[.-][A-Z0-9]{1,4})?$")
_INDEX = re.compile(r"^\^[A-Z0-9.]{1,15}$")


def classify_symbol(symbol: str) -> AssetClass | None:
    """Return the asset class a canonical symbol names, or None when it names none.

    ``EUR/USD`` is forex (both sides fiat); any other ``BASE/QUOTE`` is crypto; a
    ``BASE/QUOTE:SETTLE`` is a crypto derivative (crypto); ``^GSPC`` is an index; a plain
    ticker such as ``AAPL`` or ``BRK.B`` is an equity.
    """
    text = symbol.strip().upper()
    match = _PAIR.match(text)
    if match is not None:
        base, quote, settle = match.groups()
        if settle is None and base in FIAT_CURRENCIES and quote in FIAT_CURRENCIES:
            return AssetClass.FOREX
        return AssetClass.CRYPTO
    if _INDEX.match(text):
        return AssetClass.INDEX
    if _EQUITY.match(text):
        return AssetClass.EQUITY
    return None
