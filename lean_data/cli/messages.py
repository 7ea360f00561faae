"""What the ``lean-data`` commands say when something is wrong: one line, naming the file.

Shared by every command: :class:`CliError` (a problem with what the user asked for), the
input checks, and the rewording of library messages for the command line (:func:`for_cli`).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["CliError", "check_input", "for_cli", "naming", "one_line", "prepare_output"]


class CliError(Exception):
    """A problem with what the user asked for, printed as one line."""


def check_input(path: Path) -> None:
    """Raise CliError unless ``path`` is a regular file (a directory, nothing there, ...)."""
    if path.is_dir():
        raise CliError(
            f"{path}: is a directory, not a file; pass the files in it, e.g. {path}/*.csv"
        )
    if not path.exists():
        raise CliError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise CliError(f"{path}: not a regular file; pass a market-data file")


def prepare_output(output: Path) -> None:
    """Create the output directory; CliError when a file is in the way."""
    if output.exists() and not output.is_dir():
        raise CliError(
            f"--output {output}: exists and is not a directory; pass a directory "
            "(it is created if missing)"
        )
    output.mkdir(parents=True, exist_ok=True)


def naming(path: Path, exc: BaseException) -> str:
    """The error's message for the command line, naming ``path`` once."""
    message = for_cli(one_line(exc))
    return message if str(path) in message else f"{path}: {message}"


def one_line(exc: BaseException) -> str:
    """Return ``exc``'s message on one line (an OSError names its file)."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


_UNKNOWN_OPTIONS = re.compile(r"unknown option\(s\) ([\w, ]+) for format '(\w+)'.*")
_OPTION_FLAGS = {"columns": "--columns", "check_spacing": "--no-check-spacing"}
_HINTS = (  # the loaders' API hints, said with the options this command has
    ("pass format= and columns= for", "pass --format csv and --columns for"),
    ("pass columns={...} naming them", "pass --columns naming them, e.g. --columns "
     "time=0,open=1,high=2,low=3,close=4"),
    ("pass a positional columns mapping, e.g. columns={'date': 0, 'time': 1, 'open': 2, "
     "...}, to read such rows", "pass positional --columns, e.g. --columns "
     "date=0,time=1,open=2,high=3,low=4,close=5, to read such rows"),
    ("pass check_spacing=False", "pass --no-check-spacing"),
    ("pass resolution=", "pass --resolution (e.g. --resolution 1m)"),
    ("pass symbol=", "pass --symbol"),
)  # fmt: skip
_ADVICE = (  # what to do, for messages that only say what is wrong
    ("the file is empty", "check that it was fully written or downloaded"),
    ("unreadable file", "expected UTF-8 text, or an undamaged .zip/.gz/.feather file"),
)


def for_cli(message: str) -> str:
    """Reword a loader message's hints so they name this command's options."""
    for api, cli in _HINTS:
        message = message.replace(api, cli)
    for problem, advice in _ADVICE:
        if problem in message:
            message = f"{message}; {advice}"
    unknown = _UNKNOWN_OPTIONS.search(message)
    if unknown is not None:
        flags = ", ".join(_OPTION_FLAGS.get(n.strip(), n) for n in unknown.group(1).split(","))
        message = message.replace(
            unknown.group(0), f"{flags} does not apply to {unknown.group(2)} files; drop it"
        )
    return message
