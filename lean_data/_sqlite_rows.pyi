"""Type stub of the C extension lean_data._sqlite_rows (lean_data/_sqlite_rows.c)."""

import sqlite3
from typing import Any

def write(
    connection: sqlite3.Connection,
    rows: list[tuple[Any, ...]],
    ids: dict[Any, int] | None,
    block_sql: str,
    block_rows: int,
    row_sql: str,
    /,
) -> bool: ...
def usable() -> bool: ...
