"""The JetStream stream the bus writes to, made sure of at connect time.

:class:`StreamSettings` is the configuration a publisher asks for (and documents):

- ``name``: the stream (default: the prefix upper-cased, dots as ``_``: ``LEAN``);
- ``subjects``: ``<prefix>.>``, every kind, feed and symbol under the prefix;
- ``max_age_s``: messages older than this are removed (default one day);
- ``max_bytes``: the stream's size limit; the oldest messages go first (``discard=old``;
  default 1 GiB);
- ``duplicate_window_s``: how long JetStream remembers message ids, so a message re-sent
  with the same ``Nats-Msg-Id`` within it is stored once (default 2 minutes);
- file storage, limits retention, one replica.

:func:`ensure_stream` creates the stream when it is missing. An existing stream is used as
it is, whatever its configuration (another process, or an operator, owns it): when it
differs from the settings, the differences are returned (the publisher logs them once and
reports them in its statistics) and nothing is changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

__all__ = ["StreamSettings", "ensure_stream"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """The stream a publisher creates when it is missing (see the module docstring)."""

    name: str
    prefix: str
    max_age_s: float = 86_400.0
    max_bytes: int = 1 << 30
    duplicate_window_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.max_age_s > 0:
            raise ValueError(f"bus stream max_age_s: expected > 0, got {self.max_age_s!r}")
        if not self.max_bytes > 0:
            raise ValueError(f"bus stream max_bytes: expected > 0, got {self.max_bytes!r}")
        if not 0 < self.duplicate_window_s <= self.max_age_s:
            raise ValueError(
                f"bus stream duplicate_window_s: expected > 0 and <= max_age_s "
                f"({self.max_age_s}), got {self.duplicate_window_s!r}"
            )

    @property
    def subjects(self) -> list[str]:
        """The stream's subjects: everything under the prefix."""
        return [f"{self.prefix}.>"]

    def config(self) -> StreamConfig:
        """Return the nats-py configuration of the stream."""
        return StreamConfig(
            name=self.name,
            subjects=self.subjects,
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age_s,
            max_bytes=self.max_bytes,
            duplicate_window=self.duplicate_window_s,
            num_replicas=1,
        )


async def ensure_stream(js: JetStreamContext, settings: StreamSettings) -> tuple[bool, str]:
    """Create the stream when missing; return (created, differences from the settings).

    Differences are "" when the stream matches (or was just created).

    Raises:
        nats.errors.Error: the server could not be asked (the caller retries).
    """
    try:
        info = await js.stream_info(settings.name)
    except NotFoundError:
        try:
            await js.add_stream(settings.config())
            log.info("bus: created stream %s for %s", settings.name, settings.subjects)
            return True, ""
        except BadRequestError as refused:  # made by another process meanwhile: use it
            try:
                info = await js.stream_info(settings.name)
            except NotFoundError:  # not that: e.g. another stream holds these subjects
                raise ConnectionError(
                    f"JetStream refused to create stream {settings.name} for "
                    f"{settings.subjects}: {refused.description or refused}"
                ) from None
    return False, _differences(info.config, settings)


def _differences(found: StreamConfig, wanted: StreamSettings) -> str:
    diffs: list[str] = []

    def differ(name: str, have: Any, want: Any) -> None:
        if have != want:
            diffs.append(f"{name} is {have!r}, the publisher would use {want!r}")

    if not any(s in (f"{wanted.prefix}.>", ">") for s in found.subjects or []):
        diffs.append(f"subjects {found.subjects!r} do not cover {wanted.prefix}.>")
    differ("max_age_s", found.max_age, wanted.max_age_s)
    differ("max_bytes", found.max_bytes, wanted.max_bytes)
    differ("duplicate_window_s", found.duplicate_window, wanted.duplicate_window_s)
    return "; ".join(diffs)
