"""Read cryptofeed raw-capture files (recorded real venue traffic) for replay and tests.

cryptofeed's raw-data recorder writes one frame per line:

- the first line ``<url> <-> <connect_unix_ts>``;
- an outgoing frame ``<url> <- <unix_ts>: <text sent>``;
- a received websocket frame ``<receive_unix_ts>: <raw text exactly as received>``;
- in ``*.http.*`` files, a response ``<url> -> <unix_ts>: <body>``.

Timestamps are decimal seconds; they are converted to integer nanoseconds exactly (digit by
digit, never through a float). Reading is synchronous and pure apart from opening the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from lean_data.errors import DataFormatError

__all__ = [
    "Capture",
    "SentFrame",
    "iter_received",
    "parse_capture",
    "read_capture",
    "seconds_to_ns",
]

_LINE = re.compile(
    r"^(?:(?P<url>\S+) (?P<dir><->|<-|->) )?(?P<ts>\d+(?:\.\d+)?)(?:: (?P<body>.*))?$"
)


class SentFrame(NamedTuple):
    """A frame the recorder sent (e.g. a subscribe request)."""

    url: str
    ts_ns: int
    text: str


@dataclass(slots=True)
class Capture:
    """The frames of one capture file, split by direction.

    Attributes:
        url: the connection URL from the first line ("" when the file has none).
        connect_ts_ns: connection time, ns since the epoch (0 when unknown).
        received: ``(receive_ts_ns, raw_text)`` per received frame, in file order.
        sent: outgoing frames, in file order.
    """

    url: str = ""
    connect_ts_ns: int = 0
    received: list[tuple[int, str]] = field(default_factory=list)
    sent: list[SentFrame] = field(default_factory=list)


def seconds_to_ns(text: str) -> int:
    """Convert decimal seconds (``"1633998512.0633569"``) to integer nanoseconds exactly.

    Raises:
        ValueError: ``text`` is not ``digits[.digits]`` or has more than 9 decimals.
    """
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 9:
        raise ValueError(f"expected decimal seconds such as '1633998512.06', got {text!r}")
    return int(whole) * 1_000_000_000 + int(fraction.ljust(9, "0") or "0")


def parse_capture(lines: Iterable[str], *, source: str = "<capture>") -> Capture:
    """Split the lines of a capture into its connection, received and sent frames.

    Blank lines are skipped. Received frames keep their raw text, undecoded.

    Args:
        lines: the file's lines (a trailing newline on each is allowed).
        source: the file name, used in error messages.

    Raises:
        DataFormatError: a line matches none of the recorder's formats (names the line).
    """
    capture = Capture()
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line:
            continue
        match = _LINE.match(line)
        if match is None:
            raise DataFormatError(
                f"expected '<ts>: <frame>', '<url> <- <ts>: <frame>' or '<url> <-> <ts>', "
                f"found {line[:80]!r}",
                source=source,
                line=number,
            )
        url, direction, body = match.group("url"), match.group("dir"), match.group("body")
        ts_ns = seconds_to_ns(match.group("ts"))
        if direction == "<->" and body is None:
            capture.url, capture.connect_ts_ns = url, ts_ns
        elif direction == "<-" and body is not None:
            capture.sent.append(SentFrame(url, ts_ns, body))
        elif direction in (None, "->") and body is not None:
            capture.received.append((ts_ns, body))
        else:
            raise DataFormatError(
                f"expected a frame after {direction or 'the timestamp'}, found {line[:80]!r}",
                source=source,
                line=number,
            )
    return capture


def read_capture(path: str | Path) -> Capture:
    """Read a capture file (UTF-8) and split it with :func:`parse_capture`.

    Raises:
        DataFormatError: a line matches none of the recorder's formats.
        OSError: the file cannot be read.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        return parse_capture(handle, source=str(path))


def iter_received(path: str | Path) -> Iterator[tuple[int, int, str]]:
    """Stream ``(line_number, receive_ts_ns, raw_text)`` for each frame received (and each
    HTTP response body) in a capture file, in file order; other lines are checked, skipped.

    Raises:
        DataFormatError: a line matches none of the recorder's formats (names the line).
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                capture = parse_capture([line], source=str(path))
            except DataFormatError as exc:
                message = str(exc).removeprefix(f"{path}:1: ")
                raise DataFormatError(message, source=str(path), line=number) from None
            if capture.received:
                yield number, *capture.received[0]
