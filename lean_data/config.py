"""Engine configuration: one dataclass, readable from the environment and a TOML file."""

from __future__ import annotations

import enum
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lean_data import gil
from lean_data.errors import ConfigError
from lean_data.secrets import Credentials

__all__ = [
    "JOB_TABLES",
    "LOOPS",
    "Config",
    "OverflowPolicy",
    "ValidationConfig",
    "check_switch_interval",
    "key_lines",
    "read_toml",
    "toml_repr",
]


LOOPS = ("auto", "asyncio", "uvloop")
"""The event loops :func:`lean_data.run` can make (``Config.loop``)."""


class OverflowPolicy(enum.Enum):
    """What an async subscriber's queue does when it is full.

    BLOCK: the engine waits for room; nothing is lost, and the backpressure reaches the
        feed (use it when completeness matters more than latency).
    DROP_OLDEST: the oldest queued item is discarded and counted as dropped.
    CONFLATE: only the latest item per symbol is kept; replaced items are counted as dropped.
    """

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    CONFLATE = "conflate"


@dataclass(slots=True)
class ValidationConfig:
    """Thresholds for :class:`lean_data.quality.validator.DataValidator`.

    Attributes:
        clock_skew_ns: how far in the future (vs. the receive time) an event time may be.
        stale_after_ns: an item whose event time is older than this when received is stale
            (0 disables; replayed files are always "old").
        extreme_move_sigma: a close-to-close move beyond this many rolling deviations is
            flagged as an extreme move.
        min_history: observations needed before the rolling statistics are trusted.
        wide_spread_ratio: a quote whose spread exceeds this fraction of the mid is wide.
        window: how many recent observations the rolling statistics keep.
    """

    clock_skew_ns: int = 5_000_000_000
    stale_after_ns: int = 0
    extreme_move_sigma: float = 12.0
    min_history: int = 20
    wide_spread_ratio: float = 0.05
    window: int = 100


@dataclass(slots=True)
class Config:
    """Everything the engine needs to know; every field has a working default.

    Attributes:
        db_path: SQLite file for market data, metrics and errors (``None``: no storage).
        database_url: a PostgreSQL URL (``postgresql://user@host:5432/db``); when set,
            storage is PostgreSQL (the ``postgres`` extra) and ``db_path`` is not used.
            Never printed (it may hold a password).
        database_schema: the PostgreSQL schema of the tables (created when missing).
        cache_dir: directory of the disk cache tier (``None``: memory only).
        buffer_size: ring-buffer capacity per symbol.
        cache_max_entries / cache_max_bytes: bounds of the memory LRU.
        cache_disk_max_bytes: bound of the disk tier.
        cache_ttl_s: seconds a cache entry stays fresh (0: forever).
        inbox_size: capacity of the engine's inbox, the one backpressure point of ``emit()``.
        subscriber_queue_size: default capacity of each async subscriber's queue.
        overflow_policy: default overflow policy of async subscribers.
        storage_batch_rows / storage_batch_ms: the writer commits after this many rows or
            this many milliseconds, whichever comes first.
        storage_queue_size: capacity of the storage writer's queue.
        switch_interval_s: while the engine runs, the interpreter's GIL switch interval is
            at most this (1 µs), so the threads it uses (SQLite's worker, history, backfill
            and cache reads) are not starved by a busy event loop (:mod:`lean_data.gil`);
            None leaves it alone.
        retention_days: stored rows older than this are purged at start (0: keep all).
        metrics_interval_s: how often metrics are saved to storage (0: only at stop).
        stop_timeout_s: how long ``stop()`` waits for queues to drain.
        store_invalid: also store INVALID items (flagged) instead of only logging them.
        validation: validator thresholds.
        continuity: keep one gap-free, duplicate-free series of closed bars per (symbol,
            resolution): drop duplicates, number revisions, backfill gaps from the feed.
        resume_from_storage: before the first bar of a series of a live feed, look up its
            newest stored bar, so a restart backfills what it missed (replays and backtests
            are never resumed: they deliver everything each run).
        backfill_timeout_s: the deadline of one history request (gap backfill, warm-up,
            restart lookup); after it the parked bars are delivered as they are and the gap
            is recorded as unresolved.
        backfill_max_bars: the most bars one gap backfill asks for (the newest part of a
            longer gap); the rest of the gap is recorded as unresolved.
        parked_max: the most bars of one series held behind its pending request; one more
            abandons the request (as if it timed out), so a stuck request never blocks
            other series nor holds memory without limit.
        extended_hours: judge US equity gaps on 04:00-20:00 New York instead of 09:30-16:00.
        bar_clock_s: how often bars built from live trades are closed by the clock.
        bar_close_delay_ns: a bar built from trades closes this long after its period ends
            (late prints reach a venue's feed a little after the fact).
        book_snapshot_interval_s: store a snapshot of each valid order book this often, by
            the books' event times (0 or None: never).
        book_snapshot_depth: the most levels of each side such a snapshot keeps.
        credentials: API credentials by venue (``"alpaca"``, ``"binance"``, a ccxt exchange
            id); their secrets never print (see :mod:`lean_data.secrets`).
        loop: the event loop :func:`lean_data.run` makes for this config: ``"auto"`` (uvloop
            when installed, else asyncio's), ``"uvloop"`` (an error when not installed) or
            ``"asyncio"``. A Config cannot change the loop an engine already runs on;
            ``DataEngine.start()`` warns when ``"uvloop"`` is asked and the loop is not.
    """

    db_path: str | Path | None = "lean_data.db"
    database_url: str | None = field(default=None, repr=False)
    database_schema: str = "lean_data"
    cache_dir: str | Path | None = None
    buffer_size: int = 10_000
    cache_max_entries: int = 256
    cache_max_bytes: int = 256 * 1024 * 1024
    cache_disk_max_bytes: int = 2 * 1024 * 1024 * 1024
    cache_ttl_s: float = 0.0
    inbox_size: int = 10_000
    subscriber_queue_size: int = 10_000
    overflow_policy: OverflowPolicy = OverflowPolicy.BLOCK
    storage_batch_rows: int = 4_000  # figure 4: 0.65x of figure 1 at 1,000, 0.73x at 4,000
    storage_batch_ms: float = 200.0
    storage_queue_size: int = 100_000
    switch_interval_s: float | None = gil.INTERVAL_S  # 1 µs
    retention_days: float = 0.0
    metrics_interval_s: float = 60.0
    stop_timeout_s: float = 30.0
    store_invalid: bool = False
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    continuity: bool = True
    resume_from_storage: bool = True
    backfill_timeout_s: float = 30.0
    backfill_max_bars: int = 10_000
    parked_max: int = 10_000
    extended_hours: bool = False
    bar_clock_s: float = 1.0
    bar_close_delay_ns: int = 2_000_000_000
    book_snapshot_interval_s: float | None = 60.0
    book_snapshot_depth: int = 20
    credentials: dict[str, Credentials] = field(default_factory=dict)
    loop: str = "auto"

    def __post_init__(self) -> None:
        positive = (
            "buffer_size",
            "cache_max_entries",
            "inbox_size",
            "subscriber_queue_size",
            "storage_batch_rows",
            "storage_queue_size",
            "backfill_max_bars",
            "parked_max",
            "book_snapshot_depth",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"Config.{name} must be a positive integer, got {value!r}")
        for name in ("storage_batch_ms", "stop_timeout_s", "backfill_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"Config.{name} must be > 0, got {getattr(self, name)!r}")
        check_switch_interval(self.switch_interval_s, "Config.switch_interval_s")
        interval = self.book_snapshot_interval_s
        if interval is not None and not (
            isinstance(interval, int | float) and 0 <= interval < math.inf
        ):
            raise ConfigError(
                f"Config.book_snapshot_interval_s must be >= 0 or None, got {interval!r}"
            )
        if not isinstance(self.database_schema, str) or not _IDENTIFIER.match(self.database_schema):
            raise ConfigError(
                "Config.database_schema must be a plain identifier (letters, digits, _; "
                f"at most 63), got {self.database_schema!r}"
            )
        loop = self.loop.lower() if isinstance(self.loop, str) else self.loop
        if loop not in LOOPS:
            raise ConfigError(f"Config.loop must be one of {', '.join(LOOPS)}, got {self.loop!r}")
        self.loop = loop
        if isinstance(self.overflow_policy, str):
            try:
                self.overflow_policy = OverflowPolicy(self.overflow_policy)
            except ValueError:
                choices = ", ".join(p.value for p in OverflowPolicy)
                raise ConfigError(
                    f"Config.overflow_policy must be one of {choices}, got {self.overflow_policy!r}"
                ) from None

    @classmethod
    def from_env(cls, prefix: str = "LEAN_DATA_", **overrides: object) -> Config:
        """Build a Config from ``LEAN_DATA_<FIELD>`` environment variables, then overrides.

        Validator thresholds come from ``<prefix>VALIDATION_<FIELD>``. Booleans accept
        true/false, 1/0, yes/no, on/off (any case); numbers must parse and be finite;
        ``none`` or an empty value means ``None`` for the path settings.
        Credentials come from ``<prefix>CREDENTIALS_<VENUE>_KEY_ID`` and
        ``<prefix>CREDENTIALS_<VENUE>_SECRET`` pairs (venue lower-cased), and for Alpaca also
        from its own ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``.

        Raises:
            ConfigError: a variable cannot be converted to its field's type (the message
                names the variable and its value), or a value is out of range.
        """
        values = _fields_from_env(cls(), prefix, skip=("validation", "credentials"))
        thresholds = _fields_from_env(ValidationConfig(), prefix + "VALIDATION_", skip=())
        if thresholds:
            values["validation"] = ValidationConfig(**thresholds)  # type: ignore[arg-type]  # its own field names
        values["credentials"] = _credentials_from_env(prefix)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]  # keys are Config's own field names

    @classmethod
    def from_file(cls, path: str | Path, prefix: str = "LEAN_DATA_", **overrides: object) -> Config:
        """Build a Config from a TOML file, then environment variables, then overrides.

        Top-level keys are Config fields, a ``[validation]`` table holds ValidationConfig
        fields; ``credentials`` are never read from a file (only from the environment, as
        :meth:`from_env` reads them). The tables of :data:`JOB_TABLES` (feeds, backfill,
        replay) are the ``lean-data`` command's and are skipped here. Every
        ``<prefix><FIELD>`` variable that :meth:`from_env` reads overrides the file's value
        of that field.

        TOML types are strict: a boolean field takes ``true``/``false``, an integer field an
        integer, a number field an integer or a finite float, ``overflow_policy`` one of
        ``block``, ``drop_oldest``, ``conflate``, the other fields a string (``""`` or
        ``"none"`` means ``None`` for ``db_path``, ``cache_dir`` and ``database_url``).

        Raises:
            ConfigError: one line ``<file>:<line>: <problem>`` for a TOML syntax error, an
                unknown key, a value of the wrong type or out of range (the line of the key
                is found by scanning the file's text, see :func:`key_lines`); a bad
                environment variable as :meth:`from_env` says it; an unreadable file.
        """
        source = Path(path)
        table, where = read_toml(source)

        values = _fields_from_table(cls(), table, (), where)
        thresholds: dict[str, object] = {}
        if "validation" in table:
            nested = table["validation"]
            if not isinstance(nested, dict):
                raise ConfigError(
                    f"{where('validation')}: validation = {nested!r} is not valid: expected "
                    "a table of ValidationConfig fields ([validation])"
                )
            thresholds = _fields_from_table(ValidationConfig(), nested, ("validation",), where)
        try:  # range checks, told at the line of the value that fails them
            cls(**values)  # type: ignore[arg-type]  # keys are Config's own field names
        except ConfigError as exc:
            name = re.match(r"Config\.(\w+) ", str(exc))
            raise ConfigError(f"{where(name.group(1)) if name else source}: {exc}") from None
        values.update(_fields_from_env(cls(), prefix, skip=("validation", "credentials")))
        thresholds.update(_fields_from_env(ValidationConfig(), prefix + "VALIDATION_", skip=()))
        if thresholds:
            values["validation"] = ValidationConfig(**thresholds)  # type: ignore[arg-type]  # its own field names
        values["credentials"] = _credentials_from_env(prefix)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]  # keys are Config's own field names


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _fields_from_env(
    defaults: Config | ValidationConfig, prefix: str, *, skip: tuple[str, ...]
) -> dict[str, object]:
    """The fields of ``defaults`` set by ``<prefix><FIELD>`` variables, converted."""
    values: dict[str, object] = {}
    for f in fields(defaults):
        variable = prefix + f.name.upper()
        raw = os.environ.get(variable)
        if raw is None or f.name in skip:
            continue
        values[f.name] = _convert(variable, raw, getattr(defaults, f.name))
    return values


def _convert(variable: str, raw: str, default: object) -> object:
    """Convert ``raw`` to the type of ``default``; ConfigError names variable and value."""
    text = raw.strip()
    if isinstance(default, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        expected = "a boolean: true/false, 1/0, yes/no or on/off"
    elif isinstance(default, int | float):
        try:
            number = int(text) if isinstance(default, int) else float(text)
        except ValueError:
            number = None
        if number is not None and math.isfinite(number):
            return number
        expected = "an integer" if isinstance(default, int) else "a finite number"
    elif isinstance(default, OverflowPolicy):
        try:
            return OverflowPolicy(text.lower())
        except ValueError:
            expected = "one of " + ", ".join(p.value for p in OverflowPolicy)
    else:
        return None if text.lower() in ("", "none") else raw
    raise ConfigError(f"{variable}={raw!r} is not valid: expected {expected}")


def _credentials_from_env(prefix: str) -> dict[str, Credentials]:
    found: dict[str, Credentials] = {}
    if os.environ.get("APCA_API_KEY_ID") and os.environ.get("APCA_API_SECRET_KEY"):
        found["alpaca"] = Credentials.from_env("APCA_API_KEY_ID", "APCA_API_SECRET_KEY")
    head, tail = prefix + "CREDENTIALS_", "_KEY_ID"
    for name in os.environ:
        if name.startswith(head) and name.endswith(tail):
            venue = name[len(head) : -len(tail)]
            found[venue.lower()] = Credentials.from_env(name, f"{head}{venue}_SECRET")
    return found


JOB_TABLES = ("feeds", "backfill", "replay")
"""Top-level tables of a config file that :meth:`Config.from_file` skips: the ``lean-data``
command reads them (``[feeds.NAME]``, ``[backfill]``, ``[replay]``; see docs/cli.md)."""

_NULLABLE = frozenset({"db_path", "cache_dir", "database_url"})
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_PART = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


def _key_parts(dotted: str) -> tuple[str, ...]:
    parts = re.findall(_PART, dotted)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def read_toml(source: Path) -> tuple[dict[str, Any], Callable[..., str]]:
    """Read a TOML config file: its tables, and ``where(*key)``, the ``file:line`` of a key.

    ``where("validation", "window")`` is the line of that key (an inline table's key: the
    line of the table's key; a key not found: the file alone), see :func:`key_lines`.

    Raises:
        ConfigError: one line naming the file: unreadable, or not valid TOML.
    """
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{source}: cannot read the config file: {reason}") from None
    import tomllib  # only a config file needs the parser

    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    lines = key_lines(text)

    def where(*key: str) -> str:
        for depth in range(len(key), 0, -1):  # an inline table: the line of its key
            if key[:depth] in lines:
                return f"{source}:{lines[key[:depth]]}"
        return str(source)

    return table, where


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The 1-based line of each key of a TOML text, by its full path (``("validation", "window")``).

    tomllib gives no positions, so the text is scanned: a ``[table]`` header line sets the
    current table, and a line starting with a (dotted, possibly quoted) key followed by
    ``=`` defines that key within it. Lines inside multi-line strings and arrays are
    skipped only as far as such a line does not itself look like ``key =``; the first
    match wins (TOML forbids a key twice, so it is the key's line). A key not found (it
    cannot happen for a file tomllib parsed, short of those multi-line values) is named
    with the file alone.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header is not None:
            table = _key_parts(header.group(1))
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key is not None:
            parts = table + _key_parts(key.group(1))
            for depth in range(len(table) + 1, len(parts) + 1):
                lines.setdefault(parts[:depth], number)
    return lines


def _fields_from_table(
    defaults: Config | ValidationConfig,
    table: dict[str, object],
    inside: tuple[str, ...],
    where: Callable[..., str],
) -> dict[str, object]:
    """The fields of ``defaults`` a TOML table sets, type-checked (errors name key and line)."""
    known = {f.name: f for f in fields(defaults)}
    values: dict[str, object] = {}
    for key, value in table.items():
        name = ".".join((*inside, key))
        if not inside and key in JOB_TABLES:
            continue  # the lean-data command's tables (lean_data.cli.jobfile)
        if key not in known or (not inside and key in ("validation", "credentials")):
            if not inside and key == "credentials":
                raise ConfigError(
                    f"{where(key)}: credentials are not read from a config file; set them "
                    "in the environment (see docs/configuration.md#credentials)"
                )
            if not inside and key == "validation":
                continue  # read by the caller
            import difflib  # only a misspelt key needs it

            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {'.'.join((*inside, close[0]))}?" if close else ""
            kind = type(defaults).__name__
            raise ConfigError(
                f"{where(*inside, key)}: unknown key {name!r} (not a {kind} field){hint}"
            )
        values[key] = _from_toml(
            name, value, getattr(defaults, key), key in _NULLABLE, where(*inside, key)
        )
    return values


def _from_toml(name: str, value: object, default: object, nullable: bool, where: str) -> object:
    """Check a TOML value against the type of ``default``; ConfigError names key and line."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        expected = "a boolean (true or false, unquoted)"
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        expected = "an integer"
    elif isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        expected = "a finite number"
    elif isinstance(default, OverflowPolicy):
        if isinstance(value, str) and value.lower() in {p.value for p in OverflowPolicy}:
            return OverflowPolicy(value.lower())
        expected = "one of " + ", ".join(f'"{p.value}"' for p in OverflowPolicy)
    else:
        if isinstance(value, str):
            return None if nullable and value.strip().lower() in ("", "none") else value
        expected = "a string"
    shown = toml_repr(value)
    raise ConfigError(f"{where}: {name} = {shown} is not valid: expected {expected}")


def toml_repr(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    return " ".join(repr(value).split())


def check_switch_interval(value: object, name: str) -> None:
    """Refuse a GIL switch interval (:mod:`lean_data.gil`) that is not None nor a
    number of seconds in (0, 1].

    Raises:
        ConfigError: naming ``name`` and the value.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(f"{name} must be in (0, 1] s or None, got {value!r}")
