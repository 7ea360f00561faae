"""The one place that decides which storage backend a :class:`~lean_data.config.Config` gets.

``Config.database_url`` set: :class:`~lean_data.storage.postgres.PostgresStorage` in
``Config.database_schema`` (asyncpg, the ``postgres`` extra, is imported only then);
otherwise :class:`~lean_data.storage.sqlite.DataPersistence` at ``Config.db_path``; neither:
no storage. The engine talks to the result through the
:class:`~lean_data.storage.base.Storage` interface only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lean_data.config import Config
from lean_data.errors import ConfigError
from lean_data.storage.failures import StorageFailure
from lean_data.storage.location import describe_url

if TYPE_CHECKING:
    from lean_data.storage.base import Storage

__all__ = ["create_storage", "storage_configured", "storage_location"]


def storage_configured(config: Config) -> bool:
    """Whether ``config`` asks for storage at all (either backend)."""
    return bool(config.database_url) or config.db_path is not None


def create_storage(
    config: Config, *, on_failure: Callable[[StorageFailure], None] | None = None
) -> Storage | None:
    """Return the (unopened) store ``config`` asks for, or None without storage.

    Raises:
        ConfigError: ``database_url`` is set but asyncpg is not installed.
    """
    if config.database_url:
        try:
            import asyncpg  # noqa: F401  # only to say clearly what is missing
        except ImportError:
            raise ConfigError(
                'Config.database_url needs asyncpg: pip install "lean-data[postgres]"'
            ) from None
        from lean_data.storage.postgres import PostgresStorage

        return PostgresStorage(
            config.database_url,
            schema=config.database_schema,
            batch_rows=config.storage_batch_rows,
            batch_ms=config.storage_batch_ms,
            queue_size=config.storage_queue_size,
            on_failure=on_failure,
        )
    if config.db_path is None:
        return None
    from lean_data.storage.sqlite import DataPersistence  # aiosqlite, with the first store

    return DataPersistence(
        config.db_path,
        batch_rows=config.storage_batch_rows,
        batch_ms=config.storage_batch_ms,
        queue_size=config.storage_queue_size,
        on_failure=on_failure,
        switch_interval_s=None,  # the engine keeps the interval short while it runs
    )


def storage_location(config: Config) -> str:
    """Where ``config``'s storage lives, for messages (a URL without its password)."""
    if config.database_url:
        return f"{describe_url(config.database_url)}#{config.database_schema}"
    return str(config.db_path)
