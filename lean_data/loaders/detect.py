"""Tell a file's loader format from its path, name and first bytes."""

from __future__ import annotations

import re
from pathlib import Path

from lean_data.errors import ConfigError, DataFormatError
from lean_data.loaders import lean
from lean_data.loaders._common import open_text
from lean_data.loaders.csv_ohlcv import default_delimiter, looks_like_ohlcv_header
from lean_data.loaders.depth import detect_depth

__all__ = ["detect_format"]

_PEEK = 4096
_TEXT_SUFFIXES = (".csv", ".txt", ".tsv")
_FIRST_INNER = re.compile(r"^\s*\[\s*\[([^\[\]]*)\]")
_NUMBER = re.compile(r'^\s*"?-?\d+(\.\d+)?([eE][-+]?\d+)?"?\s*$')


def detect_format(path: str | Path) -> str:
    """Return the loader format of ``path``: csv, binance_klines, lean, freqtrade_json/feather.

    Args:
        path: the file to look at; only its name and first few kilobytes are read.

    Returns:
        One of ``"csv"``, ``"binance_klines"``, ``"lean"``, ``"freqtrade_json"``,
        ``"freqtrade_feather"``, or an order-book format of :mod:`lean_data.loaders.depth`.

    Raises:
        DataFormatError: the extension, layout or content matches no known format.
        ConfigError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    depth = detect_depth(path)
    if depth is not None:
        return depth
    name = path.name.lower()
    if name.endswith(".zip"):
        lean.parse_layout(path)  # raises DataFormatError for a zip outside the LEAN layout
        return "lean"
    if name.endswith(".feather"):
        return "freqtrade_feather"
    plain = name.removesuffix(".gz")
    if plain.endswith(".json"):
        return _json_format(path)
    if plain.endswith(_TEXT_SUFFIXES):
        return _text_format(path)
    raise DataFormatError(
        "unknown file extension (expected .csv, .txt, .json, optionally .gz; .zip in the "
        "LEAN layout; or .feather)",
        source=str(path),
    )


def _peek(path: Path) -> str:
    try:
        with open_text(path) as handle:
            return handle.read(_PEEK)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataFormatError(f"unreadable file: {exc}", source=str(path)) from exc


def _json_format(path: Path) -> str:
    text = _peek(path).lstrip()
    if not text:
        raise DataFormatError("the file is empty", source=str(path), line=1)
    inner = _FIRST_INNER.match(text)
    if inner is not None:
        values = inner.group(1).split(",")
        if len(values) == 12 and all(_NUMBER.match(value) for value in values[:7]):
            return "binance_klines"
        if len(values) == 6 and _NUMBER.match(values[0]):
            return "freqtrade_json"
        found = f"arrays of {len(values)} values"
    elif text.startswith("{") and re.match(r'\{\s*"date"\s*:\s*\{', text):
        return "freqtrade_json"
    else:
        found = f"content starting {text[:40]!r}"
    raise DataFormatError(
        f"unknown JSON layout ({found}); expected Binance klines (arrays of 12) or "
        "freqtrade candles (arrays of 6, or a pandas columns table)",
        source=str(path),
        line=1,
    )


def _text_format(path: Path) -> str:
    text = _peek(path)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataFormatError("the file is empty", source=str(path), line=1)
    first = lines[0].split(",")
    if len(first) == 12 and all(_NUMBER.match(value) for value in first):
        return "binance_klines"
    if len(first) == 12 and len(lines) > 1 and "open_time" in lines[0].lower():
        return "binance_klines"
    if looks_like_ohlcv_header(lines[0], default_delimiter(path)):
        return "csv"
    raise DataFormatError(
        f"unknown CSV layout: line 1 is {lines[0][:80]!r}; expected a header naming "
        "time/open/high/low/close columns, or Binance kline rows (pass format= and "
        "columns= for headerless OHLCV files)",
        source=str(path),
        line=1,
    )
