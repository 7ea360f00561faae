"""Build a data feed from a name and options, given on the command line or in a config file.

A :class:`FeedSpec` names a feed, its type (``alpaca``, ``binance`` or ``ccxt``) and the
keyword arguments of its class (:class:`~lean_data.feeds.alpaca.AlpacaDataFeed`,
:class:`~lean_data.feeds.binance.BinanceDataFeed`,
:class:`~lean_data.feeds.ccxt_feed.CcxtDataFeed`). :func:`build_feed` checks every option
against the class's own signature (its name and its annotated type) before the class is
called, so a typo is one line naming the option and the known ones, never a TypeError.
Options that are code (``rng``, ``clock``) or secrets (``credentials``) cannot be given:
credentials come from the environment only (:meth:`~lean_data.config.Config.from_env`).

:class:`HistoryOnly` wraps a built feed for a backfill: the engine asks it for history and
never opens its live stream.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from lean_data.config import key_lines, toml_repr
from lean_data.errors import ConfigError
from lean_data.feeds.base import DataFeed, FeedSink
from lean_data.models import MarketData, Resolution
from lean_data.secrets import Credentials

__all__ = [
    "FEED_CLASSES",
    "FeedSpec",
    "HistoryOnly",
    "build_feed",
    "merge_options",
    "parse_option",
    "spec_for",
]

FEED_CLASSES = {
    "alpaca": ("lean_data.feeds.alpaca", "AlpacaDataFeed"),
    "binance": ("lean_data.feeds.binance", "BinanceDataFeed"),
    "ccxt": ("lean_data.feeds.ccxt_feed", "CcxtDataFeed"),
}
"""Feed type -> (module, class), imported only when a feed of that type is built."""

_NOT_OPTIONS = frozenset({"self", "name", "credentials", "rng", "clock", "return"})
_ALPACA_KEYS = "APCA_API_KEY_ID and APCA_API_SECRET_KEY"


@dataclass(frozen=True)
class FeedSpec:
    """A feed to build: its name, its type and its constructor options.

    Attributes:
        name: the feed's name, e.g. ``"alpaca"`` or ``"mybinance"`` (rows are stored
            under it).
        type: ``"alpaca"``, ``"binance"`` or ``"ccxt"``.
        options: constructor keyword arguments (``data_url``, ``rest_url``,
            ``exchange_id``, ``exchange_config``, ``source``, ``market``, ...).
        where: ``"file:line"`` of the definition, for error messages (``""``: the
            command line).
    """

    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)
    where: str = ""


def feed_class(kind: str) -> type[DataFeed]:
    """Return the class of feeds of type ``kind`` (imported now)."""
    import importlib

    module, name = FEED_CLASSES[kind]
    cls: type[DataFeed] = getattr(importlib.import_module(module), name)
    return cls


def known_options(kind: str) -> dict[str, Any]:
    """The options a feed of type ``kind`` takes, with their annotated types."""
    hints = typing.get_type_hints(feed_class(kind).__init__)
    return {name: hint for name, hint in hints.items() if name not in _NOT_OPTIONS}


def spec_for(feed: str, defined: Mapping[str, FeedSpec], cli_options: dict[str, Any]) -> FeedSpec:
    """Return the spec of the feed named ``feed``, with ``cli_options`` over its own options.

    ``feed`` is the name of a feed ``defined`` in a config file, else ``alpaca``,
    ``binance`` or a ccxt exchange id (``kraken``, ``okx``, ...; needs the ccxt extra).
    ``cli_options`` (from ``--feed-option KEY=VALUE``) are checked here, so an error
    names the command-line option rather than the file.

    Raises:
        ConfigError: an unknown feed, or an unknown or ill-typed ``--feed-option``.
    """
    if feed in defined:
        spec = defined[feed]
        _check(FeedSpec(spec.name, spec.type, dict(cli_options)))
        return dataclasses.replace(spec, options={**spec.options, **cli_options})
    if feed in ("alpaca", "binance"):
        spec = FeedSpec(feed, feed, dict(cli_options))
    elif feed in _ccxt_exchanges():
        spec = FeedSpec(feed, "ccxt", {"exchange_id": feed, **cli_options})
    else:
        names = [*defined, "alpaca", "binance", *_ccxt_exchanges()]
        close = difflib.get_close_matches(feed, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        mine = f", a feed of the config file ({', '.join(defined)})" if defined else ""
        raise ConfigError(
            f"unknown feed {feed!r}{hint}; pass alpaca, binance, a ccxt exchange id such as "
            f"kraken{mine}, or define it in a config file ([feeds.NAME] with type = ...)"
        )
    _check(spec)
    return spec


def _ccxt_exchanges() -> list[str]:
    try:
        import ccxt
    except ImportError:  # the ccxt extra is not installed: no ccxt ids then
        return []
    return list(ccxt.exchanges)


def parse_option(text: str) -> tuple[str, Any]:
    """Parse ``--feed-option KEY=VALUE``: the value as a TOML value, else as text.

    ``request_attempts=20`` is an integer, ``emit_partial=true`` a boolean,
    ``channels=["kline"]`` an array, ``data_url=http://...`` text. A dotted key
    (``backoff.base_s=0.01``) sets a key of a table option.

    Raises:
        ConfigError: no ``=`` or no key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"--feed-option {text!r}: expected KEY=VALUE, e.g. --feed-option "
            "rest_url=http://127.0.0.1:8080"
        )
    try:
        value: Any = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if isinstance(value, date | time):  # TOML dates and times (datetime is a date): as text
        value = raw
    parts = key.split(".")
    for part in reversed(parts[1:]):
        value = {part: value}
    return parts[0], value


def merge_options(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Merge parsed ``--feed-option`` pairs; dotted keys of one table merge into it."""
    merged: dict[str, Any] = {}
    for key, value in pairs:
        old = merged.get(key)
        merged[key] = _deep_merge(old, value) if isinstance(old, dict) else value
    return merged


def _deep_merge(old: dict[str, Any], new: Any) -> Any:
    if not isinstance(new, dict):
        return new
    out = dict(old)
    for key, value in new.items():
        out[key] = _deep_merge(out[key], value) if isinstance(out.get(key), dict) else value
    return out


def build_feed(spec: FeedSpec, credentials: Mapping[str, Credentials]) -> DataFeed:
    """Build the feed ``spec`` describes; credentials by feed name, then by venue.

    Raises:
        ConfigError: one line: an unknown option or one of the wrong type (naming the
            option, where it was given and the known ones), a feed needing keys without
            them (naming the variables to set), or the class's own refusal.
    """
    options = _check(spec)
    cls = feed_class(spec.type)
    prefix = _prefix(spec)
    keys = credentials.get(spec.name)
    if spec.type == "alpaca":
        keys = keys or credentials.get("alpaca")
        if keys is None:
            raise ConfigError(
                f"{prefix}alpaca feeds need API keys and none are set; set {_ALPACA_KEYS} "
                f"(or LEAN_DATA_CREDENTIALS_{spec.name.upper()}_KEY_ID and "
                f"LEAN_DATA_CREDENTIALS_{spec.name.upper()}_SECRET) in the environment"
            )
        options["credentials"] = keys
    elif spec.type == "ccxt":
        if "exchange_id" not in options:
            raise ConfigError(
                f'{prefix}no exchange_id; add exchange_id = "kraken" (a ccxt exchange id)'
            )
        keys = keys or credentials.get(str(options["exchange_id"]))
        if keys is not None:  # public history needs none; private endpoints do
            exchange = dict(options.get("exchange_config") or {})
            exchange.setdefault("apiKey", keys.key_id.reveal())
            exchange.setdefault("secret", keys.secret.reveal())
            options["exchange_config"] = exchange
    try:
        return cls(spec.name, **options)
    except (ConfigError, ValueError) as exc:  # the class's own checks (ValueError: a period)
        raise ConfigError(f"{prefix}{exc}") from None


def _prefix(spec: FeedSpec, key: str = "") -> str:
    """``<file>:<line>: feeds.NAME[.KEY]: `` or, for the command line, ``feed NAME: ``."""
    if not spec.where:
        return f"--feed-option {key}: " if key else f"feed {spec.name}: "
    path, _, line = spec.where.rpartition(":")
    where = spec.where
    if key and path and line.isdigit():
        try:  # the line of the option itself, when the file still says it
            found = key_lines(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            found = {}
        if ("feeds", spec.name, key) in found:
            where = f"{path}:{found['feeds', spec.name, key]}"
    return f"{where}: feeds.{spec.name}.{key}: " if key else f"{where}: feeds.{spec.name}: "


def _check(spec: FeedSpec) -> dict[str, Any]:
    """Return ``spec.options`` converted to what the class takes; ConfigError otherwise."""
    if spec.type not in FEED_CLASSES:
        raise ConfigError(
            f"{_prefix(spec)}unknown feed type {spec.type!r}; use one of {', '.join(FEED_CLASSES)}"
        )
    known = known_options(spec.type)
    out: dict[str, Any] = {}
    for key, value in spec.options.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"{_prefix(spec, key)}unknown option of {spec.type} feeds{hint}; known: "
                f"{', '.join(known)}"
            )
        try:
            out[key] = _conform(value, known[key])
        except _Mismatch as exc:
            raise ConfigError(
                f"{_prefix(spec, key)}{toml_repr(value)} is not valid: expected {exc}"
            ) from None
    return out


class _Mismatch(Exception):
    """A value does not fit an annotation; the message says what was expected."""


def _conform(value: Any, hint: Any) -> Any:
    """Return ``value`` as the annotated type ``hint`` takes it, or raise _Mismatch."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        misses = []
        for arm in args:
            try:
                return _conform(value, arm)
            except _Mismatch as exc:
                if arm is not type(None):
                    misses.append(str(exc))
        raise _Mismatch(" or ".join(misses))
    if origin is typing.Literal:
        if value in args and not isinstance(value, bool):
            return value
        raise _Mismatch(_describe(hint))
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch("nothing")
    if hint is bool or hint is str:
        if isinstance(value, hint):
            return value
        raise _Mismatch(_describe(hint))
    if hint is int or hint is float:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and (hint is float or isinstance(value, int)):
            return hint(value)
        raise _Mismatch(_describe(hint))
    if hint is Resolution:
        try:
            return Resolution.parse(value)
        except (ValueError, AttributeError):
            raise _Mismatch(_describe(hint)) from None
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass(value, hint)
    if origin in (dict, cabc.Mapping):
        if not isinstance(value, dict):
            raise _Mismatch(_describe(hint))
        return {str(k): _conform(v, args[1] if args else Any) for k, v in value.items()}
    if origin in (list, tuple, cabc.Iterable, cabc.Sequence, cabc.Collection):
        if not isinstance(value, list):
            raise _Mismatch(_describe(hint))
        return [_conform(v, args[0] if args else Any) for v in value]
    raise _Mismatch(f"{_describe(hint)} (not settable from a file or the command line)")


def _dataclass(value: Any, cls: type[Any]) -> Any:
    if not isinstance(value, dict):
        raise _Mismatch(_describe(cls))
    hints = typing.get_type_hints(cls)
    unknown = [key for key in value if key not in hints]
    if unknown:
        raise _Mismatch(f"a table with some of {', '.join(hints)} (unknown: {unknown[0]})")
    try:
        return cls(**{key: _conform(v, hints[key]) for key, v in value.items()})
    except ConfigError as exc:
        raise _Mismatch(f"a valid {cls.__name__}: {exc}") from None


def _describe(hint: Any) -> str:
    """Say what a value of type ``hint`` looks like, for an error message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    words = {bool: "true or false", str: "a string", int: "an integer", float: "a number"}
    if hint in words:
        return words[hint]
    if hint is Resolution:
        return "a bar period such as '1m', '1h' or '1d'"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin in (dict, cabc.Mapping):
        return "a table"
    if origin in (list, tuple, cabc.Iterable, cabc.Sequence, cabc.Collection):
        return f"an array (each {_describe(args[0]) if args else 'a value'})"
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        names = ", ".join(typing.get_type_hints(hint))
        return f"a table of {hint.__name__} fields ({names})"
    return getattr(hint, "__name__", str(hint))


class HistoryOnly(DataFeed):
    """A feed's history (REST) without its live stream: what a backfill needs.

    The engine connects every feed it holds at start; a network feed would open its
    websocket and keep reconnecting for nothing during a backfill (and, pointed at a
    history server only, fail). This wrapper connects at once, refuses subscriptions and
    asks the wrapped feed for history; the wrapped feed reports its retries and errors to
    the same engine (its ``errors`` table) under the same name.
    """

    def __init__(self, inner: DataFeed) -> None:
        super().__init__(inner.name, asset_classes=inner.asset_classes_served)
        self.inner = inner

    async def connect(self) -> bool:
        """Nothing to open: history requests open their own connections."""
        return True

    async def disconnect(self) -> None:
        """Close the wrapped feed (its HTTP session or SDK client)."""
        await self.inner.close()

    async def subscribe(self, symbol: str) -> bool:
        """Refuse: a backfill has no live data."""
        return False

    async def unsubscribe(self, symbol: str) -> bool:
        """Refuse: nothing is subscribed."""
        return False

    def supports(self, symbol: str) -> bool:
        """Serve any symbol it is asked for by name."""
        return True

    def attach(self, sink: FeedSink | None) -> None:
        """Attach this feed and the wrapped one (its errors reach the same engine)."""
        super().attach(sink)
        self.inner.attach(sink)

    @property
    def request_retries(self) -> int:
        """Requests the wrapped feed retried so far (rate limits, failures)."""
        return int(getattr(self.inner, "request_retries", 0))

    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[MarketData]:
        """Ask the wrapped feed."""
        return await self.inner.get_historical_data(symbol, start_date, end_date, resolution)
