"""Type stub of the C extension lean_data._rows (lean_data/_rows.c)."""

from typing import Any

def statement_values(
    rows: list[tuple[Any, ...]], start: int, end: int, ids: dict[Any, int] | None = None, /
) -> list[Any]: ...
def pack_bar(rows: bytearray, offset: int, fields: tuple[Any, ...], /) -> None: ...
