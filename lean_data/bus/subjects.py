"""Bus subjects and message ids: where an item is published and how retries are recognised.

Every item goes to ``<prefix>.<kind>.<feed>.<symbol>`` (kind ``bar``, ``quote`` or
``tick``). A NATS subject token may not hold ``.``, ``*``, ``>`` or whitespace, so feed and
symbol are escaped, reversibly: every byte of their UTF-8 text outside
``A-Z a-z 0-9 - _ / : + = @ ~ , !`` becomes ``%XX`` (upper-case hex), ``%`` itself
included (``BTC/USDT`` stays ``BTC/USDT``; ``ES.c.0`` becomes ``ES%2Ec%2E0``; ``%``
becomes ``%25``). :func:`parse_subject` undoes :func:`subject_for`.

:func:`message_id` names one version of one item; the publisher sends it as the
``Nats-Msg-Id`` header, so a message re-sent after a lost ack (or replayed by a restarted
collector) within the stream's duplicate window is stored once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lean_data.models import MarketData, QuoteBar, Tick, TradeBar

__all__ = [
    "KINDS",
    "Subject",
    "escape_token",
    "filter_for",
    "message_id",
    "parse_subject",
    "stream_name_for",
    "subject_for",
    "unescape_token",
]

KINDS = ("bar", "quote", "tick")
"""The item kinds a subject names (the models' ``kind``)."""

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_/:+=@~,!")
_ESCAPE_TABLE = [chr(b) if b in _SAFE else f"%{b:02X}" for b in range(256)]
_ESCAPED_RE = re.compile(r"%([0-9A-F]{2})")
_PREFIX_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def escape_token(text: str) -> str:
    """Return ``text`` as one NATS subject token (reversible; see the module docstring).

    Raises:
        ValueError: ``text`` is empty (an empty token is not a subject).
    """
    if not text:
        raise ValueError("a bus subject token (feed or symbol) must not be empty")
    if text.isascii() and text.isalnum():  # the common case: nothing to escape
        return text
    table = _ESCAPE_TABLE
    return "".join([table[b] for b in text.encode("utf-8")])


def unescape_token(token: str) -> str:
    """Return the text :func:`escape_token` made ``token`` from.

    Raises:
        ValueError: ``token`` is empty, holds a byte :func:`escape_token` never leaves
            as it is, a malformed ``%`` escape, or escapes that are not UTF-8.
    """
    if not token:
        raise ValueError("expected a subject token, found an empty one")
    if "%" not in token:
        _check_plain(token)
        return token
    out = bytearray()
    pos = 0
    for match in _ESCAPED_RE.finditer(token):
        _check_plain(token[pos : match.start()])
        out += token[pos : match.start()].encode("ascii")
        out.append(int(match.group(1), 16))
        pos = match.end()
    _check_plain(token[pos:])
    out += token[pos:].encode("ascii")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"subject token {token!r}: its escapes are not UTF-8") from None


def _check_plain(part: str) -> None:
    for char in part:
        if ord(char) > 127 or ord(char) not in _SAFE:
            raise ValueError(
                f"subject token part {part!r}: {char!r} is not a character escape_token "
                f"leaves unescaped (a '%' must be followed by two upper-case hex digits)"
            )


def _check_prefix(prefix: str) -> None:
    tokens = prefix.split(".")
    if not all(_PREFIX_TOKEN_RE.match(t) for t in tokens):
        raise ValueError(
            f"bus prefix: expected dot-separated tokens of letters, digits, '_' or '-', "
            f"got {prefix!r}"
        )


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"bus kind: expected one of {', '.join(KINDS)}, got {kind!r}")


def subject_for(prefix: str, kind: str, feed: str, symbol: str) -> str:
    """Return the subject of ``kind`` items of ``symbol`` from ``feed``.

    Raises:
        ValueError: a bad prefix or kind, or an empty feed or symbol.
    """
    _check_prefix(prefix)
    _check_kind(kind)
    return f"{prefix}.{kind}.{escape_token(feed)}.{escape_token(symbol)}"


@dataclass(frozen=True, slots=True)
class Subject:
    """A parsed subject: what :func:`subject_for` was given."""

    prefix: str
    kind: str
    feed: str
    symbol: str


def parse_subject(subject: str, prefix: str) -> Subject:
    """Return the kind, feed and symbol of ``subject`` (the inverse of :func:`subject_for`).

    Raises:
        ValueError: ``subject`` is not ``<prefix>.<kind>.<feed>.<symbol>``.
    """
    head = prefix + "."
    if not subject.startswith(head):
        raise ValueError(f"subject {subject!r} does not start with the bus prefix {head!r}")
    parts = subject[len(head) :].split(".")
    if len(parts) != 3:
        raise ValueError(
            f"subject {subject!r}: expected {head}<kind>.<feed>.<symbol>, "
            f"found {len(parts)} tokens after the prefix"
        )
    kind, feed, symbol = parts
    _check_kind(kind)
    return Subject(prefix, kind, unescape_token(feed), unescape_token(symbol))


def filter_for(
    prefix: str, symbol: str | None = None, *, kind: str | None = None, feed: str | None = None
) -> str:
    """Return the subject filter of a subscription: ``<prefix>.<kind|*>.<feed|*>.<symbol|*>``.

    Raises:
        ValueError: a bad prefix or kind, or an empty feed or symbol.
    """
    _check_prefix(prefix)
    if kind is not None:
        _check_kind(kind)
    sym = "*" if symbol is None else escape_token(symbol)
    source = "*" if feed is None else escape_token(feed)
    return f"{prefix}.{kind or '*'}.{source}.{sym}"


def stream_name_for(prefix: str) -> str:
    """Return the default stream name of a prefix: upper case, dots as ``_`` (``LEAN``)."""
    _check_prefix(prefix)
    return prefix.upper().replace(".", "_")


def message_id(feed: str, item: MarketData) -> str:
    """Return the id of this version of ``item`` from ``feed`` (the ``Nats-Msg-Id``).

    Bars and quote bars: kind, feed, symbol, open time, resolution and revision (a
    correction is a new message; the same bar re-sent, live or backfilled, is not).
    Ticks: kind, feed, symbol, event time and the venue's trade id when it has one, else
    the tick type, price and size (two identical prints in the same nanosecond without a
    trade id are taken for one retry).
    """
    esc_feed, esc_symbol = escape_token(feed), escape_token(item.symbol)
    if isinstance(item, TradeBar | QuoteBar):
        return (
            f"{item.kind}:{esc_feed}:{esc_symbol}:{item.ts_event}:"
            f"{item.resolution.nanos}:{item.revision}"
        )
    if isinstance(item, Tick):
        if item.trade_id:
            return f"tick:{esc_feed}:{esc_symbol}:{item.ts_event}:t{escape_token(item.trade_id)}"
        return (
            f"tick:{esc_feed}:{esc_symbol}:{item.ts_event}:{item.tick_type.value}:"
            f"{item.price!r}:{item.size!r}:{item.bid_price!r}:{item.ask_price!r}"
        )
    raise TypeError(f"expected a TradeBar, QuoteBar or Tick, got {type(item).__name__}")
