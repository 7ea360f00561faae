"""How a store names where it lives in messages and task names, never with a password."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["describe_url"]


def describe_url(url: str) -> str:
    """Return a database URL without its password or query (``postgresql://user@host/db``)."""
    try:
        parts = urlsplit(url)
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        host = parts.hostname or ""
    except ValueError:
        return "<an unparsable database URL>"
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"
