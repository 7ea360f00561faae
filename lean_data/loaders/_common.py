"""Helpers shared by the file loaders: the file spec, opening, names, resolutions, errors."""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from lean_data.errors import ConfigError, DataFormatError
from lean_data.models import NS_PER_DAY, NS_PER_SECOND, AssetClass, Resolution

__all__ = [
    "SPACING_ROWS",
    "FileSpec",
    "check_options",
    "choose_resolution",
    "epoch_to_ns",
    "epoch_unit",
    "file_stem",
    "load_json",
    "name_prefix",
    "open_text",
    "parse_resolution_arg",
    "resolution_from_name",
    "row_error",
    "split_pair",
]

SPACING_ROWS = 200
"""How many leading rows are read to infer or check a bar file's spacing."""

KNOWN_QUOTES = (
    "FDUSD",
    "USDT",
    "USDC",
    "BUSD",
    "TUSD",
    "USDP",
    "DAI",
    "USD",
    "EUR",
    "GBP",
    "JPY",
    "AUD",
    "CAD",
    "CHF",
    "TRY",
    "BRL",
    "BTC",
    "XBT",
    "ETH",
    "BNB",
)
"""Quote currencies recognised when splitting a concatenated pair (longest match first)."""

_COMPRESSED = (".gz",)
_RES_TOKEN = re.compile(r"^(\d+)(s|sec|secs|m|min|mins|h|hr|hour|hours|d|day|days|w|wk|week)$")
_UNIT_NS = {"s": NS_PER_SECOND, "m": 60 * NS_PER_SECOND, "h": 3600 * NS_PER_SECOND}
_UNIT_NS.update({"d": NS_PER_DAY, "w": 7 * NS_PER_DAY})
_SEPARATORS = re.compile(r"[-_ ]")


@dataclass(frozen=True)
class FileSpec:
    """What a file holds, as :func:`lean_data.loaders.iter_file` would read it.

    Attributes:
        path: the file.
        format: loader format name (``"csv"``, ``"binance_klines"``, ``"lean"``, ...).
        symbol: canonical symbol of every item (``"SPY"``, ``"BTC/USDT"``).
        resolution: bar period (``Resolution.TICK`` for tick files).
        kind: ``"bar"`` (TradeBar), ``"quote"`` (QuoteBar), ``"tick"`` (Tick) or
            ``"funding_rate"`` (FundingRate).
        asset_class: what the format says the symbol is (a LEAN folder: ``equity/``,
            ``crypto/``, ``cryptofuture/``; Binance klines and freqtrade files are crypto);
            None when the format does not say (a generic CSV).
        price_type: what the bars' prices are: ``"trade"`` (traded prices, the default),
            or a freqtrade derivatives candle's ``"mark"``, ``"index"`` or
            ``"premium_index"``; the bars are TradeBars either way.

    An order-book capture (:mod:`lean_data.loaders.depth`) has ``kind`` ``"book"``,
    ``symbols`` every symbol read (a session may hold several; ``symbol`` is the first),
    and ``venue`` the integrity rules that apply (``"binance_spot"``,
    ``"binance_futures"``, ``"bybit"``, ``"kraken"``; None: no ids to check).

    A freqtrade funding-rate file has ``kind`` ``"funding_rate"`` (its items are
    :class:`~lean_data.derivatives.FundingRate`) and ``resolution`` the funding interval.
    """

    path: Path
    format: str
    symbol: str
    resolution: Resolution
    kind: str
    asset_class: AssetClass | None = None
    price_type: str = "trade"
    venue: str | None = None
    symbols: tuple[str, ...] = ()


def open_text(path: Path) -> IO[str]:
    """Open ``path`` for text reading, decompressing ``.gz`` transparently.

    Raises:
        ConfigError: the file does not exist or is a directory.
    """
    try:
        if path.name.lower().endswith(_COMPRESSED):
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
        return open(path, encoding="utf-8-sig", newline="")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror or exc}") from exc


def load_json(path: Path) -> Any:
    """Parse a JSON file (``.gz`` allowed).

    Raises:
        DataFormatError: the file is empty or not valid JSON.
    """
    source = str(path)
    with open_text(path) as handle:
        try:
            text = handle.read()
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise DataFormatError(f"unreadable file: {exc}", source=source) from exc
    if not text.strip():
        raise DataFormatError("the file is empty", source=source, line=1)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise DataFormatError(f"invalid JSON: {exc}", source=source, line=exc.lineno) from exc


def file_stem(path: Path) -> str:
    """Return the file name without its data and compression suffixes."""
    name = path.name
    lower = name.lower()
    for suffix in (".gz", ".zip", ".json", ".csv", ".txt", ".tsv", ".feather"):
        if lower.endswith(suffix):
            name, lower = name[: -len(suffix)], lower[: -len(suffix)]
    return name


def _is_stop_token(token: str) -> bool:
    return token.isdigit() or _RES_TOKEN.match(token.lower()) is not None


def name_prefix(path: Path) -> str:
    """Return the leading part of the file name before any date or period token.

    ``btc-perp-20211231-20220201_1m.csv`` gives ``btc-perp``; ``yhoo-1996-2015.txt``
    gives ``yhoo``; a name that starts with a date gives ``""``.
    """
    stem = file_stem(path)
    end = 0
    for match in re.finditer(r"[^-_ ]+", stem):
        if _is_stop_token(match.group()):
            break
        end = match.end()
    return stem[:end]


def resolution_from_name(path: Path) -> Resolution | None:
    """Return the period named by a token such as ``1m``/``1min``/``4h``/``1d`` in the name."""
    for token in _SEPARATORS.split(file_stem(path)):
        match = _RES_TOKEN.match(token.lower())
        if match is not None and token != f"{match.group(1)}M":  # "1M" is a month
            count = int(match.group(1))
            if count > 0:
                return Resolution(count * _UNIT_NS[match.group(2)[0]])
    return None


def split_pair(ticker: str) -> tuple[str, str] | None:
    """Split a concatenated pair such as ``btcusdt`` into ``("BTC", "USDT")``."""
    upper = ticker.upper()
    for quote in sorted(KNOWN_QUOTES, key=len, reverse=True):
        if upper.endswith(quote) and len(upper) > len(quote):
            return upper[: -len(quote)], quote
    return None


def parse_resolution_arg(value: Resolution | str | None) -> Resolution | None:
    """Return the caller's resolution argument as a :class:`Resolution`.

    Raises:
        ConfigError: the text names no resolution.
    """
    if value is None or isinstance(value, Resolution):
        return value
    try:
        return Resolution.parse(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def epoch_unit(value: int) -> int:
    """Return the ns per unit of an epoch integer: s, ms, us or ns, judged by magnitude.

    Seconds cover years up to 5138, so a value of 1e11 or more is taken as milliseconds,
    1e14 or more as microseconds and 1e17 or more as nanoseconds.
    """
    size = abs(value)
    if size < 100_000_000_000:
        return NS_PER_SECOND
    if size < 100_000_000_000_000:
        return 1_000_000
    if size < 100_000_000_000_000_000:
        return 1_000
    return 1


def epoch_to_ns(value: int) -> int:
    """Return ns for an epoch integer in s, ms, us or ns, chosen by its magnitude."""
    return value * epoch_unit(value)


def _steps(times: Sequence[int]) -> list[tuple[int, int]]:
    """Return (step, index of the later row) for each nonzero step, as absolute values.

    Absolute, so files written newest-first are judged like the others.
    """
    found = []
    for index in range(1, len(times)):
        step = abs(times[index] - times[index - 1])
        if step:
            found.append((step, index))
    return found


def _usual_step(steps: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Return the most common (step, first index); ties go to the smaller step."""
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for step, index in steps:
        counts[step] = counts.get(step, 0) + 1
        first.setdefault(step, index)
    step = min(counts, key=lambda value: (-counts[value], value))
    return step, first[step]


def _infer_resolution(head: Sequence[tuple[int, int]], source: str) -> Resolution:
    steps = _steps([ts for _, ts in head])
    if not steps:
        raise DataFormatError(
            "cannot infer the bar resolution (fewer than two distinct times); pass resolution=",
            source=source,
        )
    step, index = _usual_step(steps)
    if step % NS_PER_SECOND:
        raise DataFormatError(
            f"cannot infer the bar resolution: the usual step between rows is "
            f"{step / NS_PER_SECOND} s, not a whole number of seconds; pass resolution=",
            source=source,
            line=head[index][0],
        )
    return Resolution(step)


def choose_resolution(
    given: Resolution | None,
    named: Resolution | None,
    head: Sequence[tuple[int, int]],
    *,
    source: str,
    check_spacing: bool,
    origin: str = "the file name",
) -> Resolution:
    """Pick a bar file's resolution: the caller's, else the declared one, else the spacing.

    An inferred resolution is the most common step between the leading rows (a weekly
    file with one holiday-shifted week is still 7 days). A given or declared resolution
    is contradicted when the smallest step is not a whole multiple of it (gaps are fine).

    Args:
        given: the caller's resolution.
        named: the resolution the file declares (its name or its content).
        head: ``(line, event time ns)`` of the leading rows, in file order.
        source: the file, for messages.
        check_spacing: raise when the rows contradict a given or declared resolution.
        origin: what declared ``named``, for messages.

    Raises:
        DataFormatError: the spacing contradicts the resolution, or none can be inferred.
    """
    chosen = given or named
    if chosen is None:
        return _infer_resolution(head, source)
    steps = _steps([ts for _, ts in head])
    if not (check_spacing and chosen.nanos and steps):
        return chosen
    step, index = min(steps)
    if step % chosen.nanos:
        who = "the caller" if given is not None else origin
        raise DataFormatError(
            f"rows are {_span(step)} apart but {who} says {chosen} bars: the spacing "
            f"contradicts the resolution (pass check_spacing=False to load it anyway)",
            source=source,
            line=head[index][0],
        )
    return chosen


def _span(nanos: int) -> str:
    return str(Resolution(nanos)) if nanos % NS_PER_SECOND == 0 else f"{nanos} ns"


def check_options(fmt: str, options: dict[str, Any], allowed: Iterable[str]) -> None:
    """Raise ConfigError when ``options`` holds a name the format does not take."""
    known = set(allowed)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for format {fmt!r}; "
            f"expected some of: {', '.join(sorted(known)) or 'none'}"
        )


def row_error(
    source: str, line: int, fields: Sequence[str], names: Sequence[str], *, where: str = ""
) -> DataFormatError:
    """Explain why a delimited row failed to parse: field count or the first bad number."""
    text = ",".join(fields)
    if len(text) > 120:
        text = text[:117] + "..."
    context = f" in {where}" if where else ""
    if len(fields) != len(names):
        return DataFormatError(
            f"expected {len(names)} fields ({','.join(names)}){context}, "
            f"found {len(fields)}: {text!r}",
            source=source,
            line=line,
        )
    for name, value in zip(names, fields, strict=True):
        if name.startswith("_"):
            continue
        try:
            float(value)
        except ValueError:
            return DataFormatError(
                f"bad number {value.strip()!r} for {name}{context}: {text!r}",
                source=source,
                line=line,
            )
    return DataFormatError(f"cannot parse row{context}: {text!r}", source=source, line=line)
