"""Fault-injection settings shared by the loopback servers, and the per-connection planner.

A test changes ``server.faults`` at any time; the servers read it live. Frame positions
count the *good* frames one connection would receive (its replay sequence after filtering
to its subscriptions), from 0. Wire counts (``drop_after``, ``silent_after``) count every
data frame actually written, injected ones included.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal

__all__ = ["MALFORMED_FRAME", "FramePlanner", "ServerFaults", "StopReason"]

MALFORMED_FRAME = "{not json"
"""The text sent for a malformed frame."""

StopReason = Literal["", "drop", "silence"]


@dataclass(slots=True)
class ServerFaults:
    """What a loopback server does wrong, settable per test.

    Attributes:
        drop_after: drop each connection once it has been sent this many data frames
            (``None``: never). The socket is aborted without a close frame (the client
            sees code 1006) unless ``drop_close_code`` is set.
        drop_close_code: close with this code (e.g. 1011) instead of aborting.
        silent_after: after this many data frames, send nothing more (no data, no replies)
            while keeping the socket open; websocket pings are still answered.
        malformed_at: before the good frame at each position, send ``{not json``.
        truncated_at: before the good frame at each position, send its first half.
        unknown_at: before the good frame at each position, send an event of a type the
            venue never sends (valid JSON, unknown ``e``).
        duplicate_at: send the good frame at each position twice in a row.
        reorder_at: swap the good frame at each position with the one after it.
        refuse_concurrent: close a second concurrent connection with 1008 (policy
            violation) right after the handshake.
        rate_limit_next: answer the next K HTTP requests with 429 and ``Retry-After``.
        ban_next: answer the next K HTTP requests with 418 (IP banned) and ``Retry-After``.
        retry_after: seconds put in ``Retry-After`` for injected 429 and 418 answers.
    """

    drop_after: int | None = None
    drop_close_code: int | None = None
    silent_after: int | None = None
    malformed_at: AbstractSet[int] = frozenset()
    truncated_at: AbstractSet[int] = frozenset()
    unknown_at: AbstractSet[int] = frozenset()
    duplicate_at: AbstractSet[int] = frozenset()
    reorder_at: AbstractSet[int] = frozenset()
    refuse_concurrent: bool = False
    rate_limit_next: int = 0
    ban_next: int = 0
    retry_after: int = 1


class FramePlanner:
    """Turn one connection's good frames into the texts to write, applying the faults.

    Pure: no I/O. Call :meth:`feed` per good frame and write what it returns in order;
    when :attr:`stop` becomes ``"drop"`` or ``"silence"``, act on it and feed no more.
    Call :meth:`flush` when no frame follows for now (releases a frame held to reorder).
    """

    __slots__ = ("_held", "faults", "position", "stop", "written")

    def __init__(self, faults: ServerFaults) -> None:
        self.faults = faults
        """The settings read on every frame (replaceable)."""
        self._held: tuple[int, str, Callable[[], str]] | None = None
        self.position = 0
        """Position of the next good frame."""
        self.written = 0
        """Data frames written so far, injected ones included."""
        self.stop: StopReason = ""

    def feed(self, text: str, unknown: Callable[[], str]) -> list[str]:
        """Return the texts to write for the next good frame ``text``.

        Args:
            text: the good frame, exactly as it should reach the client.
            unknown: builds the unknown-type frame to inject before it, if configured.
        """
        position = self.position
        self.position += 1
        if self._held is not None:
            held, self._held = self._held, None
            out = self._emit(position, text, unknown, [])
            return self._emit(*held, out)
        if position in self.faults.reorder_at:
            self._held = (position, text, unknown)
            return []
        return self._emit(position, text, unknown, [])

    def flush(self) -> list[str]:
        """Return the frame held back for reordering, if any (nothing follows it yet)."""
        if self._held is None:
            return []
        held, self._held = self._held, None
        return self._emit(*held, [])

    def _emit(
        self, position: int, text: str, unknown: Callable[[], str], out: list[str]
    ) -> list[str]:
        faults = self.faults
        if position in faults.malformed_at:
            self._write(MALFORMED_FRAME, out)
        if position in faults.truncated_at:
            self._write(text[: len(text) // 2], out)
        if position in faults.unknown_at:
            self._write(unknown(), out)
        self._write(text, out)
        if position in faults.duplicate_at:
            self._write(text, out)
        return out

    def check(self) -> StopReason:
        """Set and return :attr:`stop` if a frame limit is already reached."""
        faults = self.faults
        if self.stop:
            return self.stop
        if faults.drop_after is not None and self.written >= faults.drop_after:
            self.stop = "drop"
        elif faults.silent_after is not None and self.written >= faults.silent_after:
            self.stop = "silence"
        return self.stop

    def _write(self, text: str, out: list[str]) -> None:
        if self.check():
            return
        out.append(text)
        self.written += 1
        self.check()
