"""Venue decimal strings to floats, exactly as ``float()`` reads them, in C.

Binance (and other venues) send prices and sizes as decimal strings (``"41234.12000000"``).
``float(text)`` is the reference reading, but CPython's parser pays for switching the x87
control word around every call: ~170 ns a string on the benchmark machine, five per kline,
which was ~8% of a kline frame's whole path through the engine. A decimal string is JSON
number text, and msgspec's JSON decoder reads a number into a float, correctly rounded, in
~50 ns. :func:`decimal_float` takes that path and returns what ``float(text)`` returns:

- text that is not JSON number text (``"nan"``, ``"inf"``, ``"1_000"``, ``" .5"``,
  ``"+1"``, ``"01.5"``) or is out of a double's range (``"1e400"``, which ``float()``
  reads as ``inf``) is read by ``float()`` itself, which also raises the ``ValueError`` a
  malformed string gets;
- a zero is read by ``float()`` too: msgspec reads ``"-0"`` as an integer and loses its sign.

``tests/test_wire_numbers.py`` checks the two readings are equal, digit for digit.
"""

from __future__ import annotations

from typing import Final

from msgspec.json import Decoder

__all__ = ["decimal_float"]

_number: Final = Decoder(float).decode


def decimal_float(text: str) -> float:
    """Return ``float(text)`` for a venue's decimal string; raise ValueError as it does."""
    try:
        value: float = _number(text)
    except Exception:  # not JSON number text, beyond a double, a lone surrogate: float() decides
        return float(text)
    if value == 0.0:  # "-0": msgspec's integer reading has no sign
        return float(text)
    return value
