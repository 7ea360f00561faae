"""Aligned text tables and ISO times for the ``lean-data`` commands' terminal output."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

__all__ = ["aligned", "iso"]


def iso(ns: int) -> str:
    """``ns`` since the epoch as ISO 8601 UTC (``2014-12-05T00:00:00Z``)."""
    stamp = datetime.fromtimestamp(ns // 10**9, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def aligned(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[int] = (),
    indent: str = "",
) -> list[str]:
    """``header`` and ``rows`` as lines of columns two spaces apart.

    The columns whose index is in ``right`` (numbers) are right-aligned, the others left;
    trailing blanks are dropped.
    """
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return [
        indent
        + "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in table
    ]
