"""How storage fails: the degraded-state record.

:class:`StorageFailure` is part of the storage interface (:mod:`lean_data.storage.base`):
a store that lost rows reports one through its ``failure`` property, and
``DataEngine.stop()`` turns it into a :class:`lean_data.errors.StorageFailedError`.
What kind of failure an SQLite error is, :mod:`lean_data.storage.sqlite_errors` says (and
loads ``sqlite3`` with the SQLite store, not with ``import lean_data``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["StorageFailure"]


@dataclass(slots=True)
class StorageFailure:
    """Why storage is degraded: the first failure that lost rows, and the rows lost since.

    Attributes:
        kind: see :func:`~lean_data.storage.sqlite_errors.failure_kind` (``writer_died``
            when the writer task ended).
        message: the first error, as the database reported it.
        ts_ns: when it happened, ns since the epoch.
        rows_lost: rows lost so far (the writer's ``rows_lost``).
    """

    kind: str
    message: str
    ts_ns: int
    rows_lost: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "ts_ns": self.ts_ns,
            "rows_lost": self.rows_lost,
        }
