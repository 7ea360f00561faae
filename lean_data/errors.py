"""Exceptions raised by lean_data.

Every exception the package raises on purpose derives from :class:`LeanDataError`, so a
trading bot can catch one type without importing aiosqlite, ccxt or alpaca-py::

    LeanDataError
    ├── ConfigError                 a setting is missing or out of range
    ├── DataFormatError             a file or message could not be parsed (names file and line)
    ├── FeedError                   a feed could not deliver; ``retryable`` says whether to retry
    │   ├── FeedConnectError        the connection failed or dropped          (retryable)
    │   │   └── ConnectionLimitError  at the account's connection limit  (retryable, slowly)
    │   ├── FeedAuthError           credentials refused                       (fatal)
    │   ├── FeedProtocolError       the venue sent something we cannot use    (retryable)
    │   ├── RateLimitError          the venue asked us to slow down           (retryable)
    │   ├── RetriesExhaustedError   a request used up its attempts or time budget   (fatal)
    │   └── SubscriptionError       unknown symbol, insufficient subscription (fatal)
    ├── DataQualityError            data judged INVALID where a caller asked for strictness
    ├── StorageError                SQLite (or another store) failed
    │   └── StorageFailedError      writes failed for good; rows were lost (``stop()``)
    └── EngineStateError            an operation that the engine's state does not allow
        └── EngineClosedError       the engine was stopped; it cannot be reopened

Messages say what was expected and what was found, and never contain secrets.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectionLimitError",
    "DataFormatError",
    "DataQualityError",
    "EngineClosedError",
    "EngineStateError",
    "FeedAuthError",
    "FeedConnectError",
    "FeedError",
    "FeedProtocolError",
    "LeanDataError",
    "RateLimitError",
    "RetriesExhaustedError",
    "StorageError",
    "StorageFailedError",
    "SubscriptionError",
]


class LeanDataError(Exception):
    """Root of every exception lean_data raises on purpose."""


class ConfigError(LeanDataError):
    """A configuration value is missing, malformed or out of range."""


class DataFormatError(LeanDataError):
    """A file or a message could not be parsed.

    Args:
        message: what was expected and what was found.
        source: the file path or stream name, when known.
        line: the 1-based line (or record) number, when known.
    """

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        self.source = source
        self.line = line
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(f"{where}{message}")


class FeedError(LeanDataError):
    """A feed could not deliver data.

    Args:
        message: what went wrong.
        feed: the feed's name.
        retryable: whether reconnecting or retrying may help.
    """

    retryable_default = True

    def __init__(self, message: str, *, feed: str = "", retryable: bool | None = None):
        self.feed = feed
        self.retryable = self.retryable_default if retryable is None else retryable
        super().__init__(f"[{feed}] {message}" if feed else message)


class FeedConnectError(FeedError):
    """The connection could not be made or was lost."""


class ConnectionLimitError(FeedConnectError):
    """The venue refused the connection because the account is at its connection limit.

    Alpaca answers 406 ``connection limit exceeded``; it reaps half-dead sockets after about
    90 s, so the reconnect loop waits at least ``BackoffPolicy.connection_limit_s``.
    """


class FeedAuthError(FeedError):
    """The venue refused the credentials. Retrying will not help."""

    retryable_default = False


class FeedProtocolError(FeedError):
    """The venue sent a message that does not follow its protocol."""


class RateLimitError(FeedError):
    """The venue asked the client to slow down (HTTP 429/418, error frames).

    Args:
        retry_after: seconds the venue asked us to wait, when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        feed: str = "",
        retry_after: float | None = None,
        retryable: bool | None = None,
    ):
        self.retry_after = retry_after
        super().__init__(message, feed=feed, retryable=retryable)


class RetriesExhaustedError(FeedError):
    """A request was retried until its budget (attempts or total time) ran out.

    Not retryable: the budget was the retry. The last failure is ``__cause__`` when it was
    a lean_data error, and its text is in the message.

    Args:
        attempts: attempts made.
        elapsed_s: seconds spent, waits included.
    """

    retryable_default = False

    def __init__(self, message: str, *, feed: str = "", attempts: int = 0, elapsed_s: float = 0.0):
        self.attempts = attempts
        self.elapsed_s = elapsed_s
        super().__init__(message, feed=feed)


class SubscriptionError(FeedError):
    """The venue refused a subscription (unknown symbol, insufficient plan)."""

    retryable_default = False


class DataQualityError(LeanDataError):
    """Data was judged INVALID where the caller asked for strict handling."""


class StorageError(LeanDataError):
    """A storage backend failed."""


class StorageFailedError(StorageError):
    """Storage could not write: rows accepted by the engine were lost.

    Raised by ``DataEngine.stop()`` once everything is closed, when a batch of rows could
    not be written even after its retry (disk full, read-only or corrupt file, a dead
    writer).

    Args:
        message: what failed, how many rows were lost and the first error.
        kind: ``disk_full``, ``read_only``, ``corrupt``, ``locked``, ``io``,
            ``writer_died`` or ``error``.
        rows_lost: rows not stored.
        path: the database.
    """

    def __init__(self, message: str, *, kind: str, rows_lost: int, path: str = ""):
        self.kind = kind
        self.rows_lost = rows_lost
        self.path = path
        super().__init__(message)


class EngineStateError(LeanDataError):
    """The engine's state does not allow this operation."""


class EngineClosedError(EngineStateError):
    """The engine was stopped and cannot be started again; create a new one."""
