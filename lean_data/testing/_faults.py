"""Fault-injection settings shared by the loopback servers, and the per-connection planner.

A test changes ``server.faults`` at any time; the servers read it live. Frame positions
count the *good* frames one connection would receive (its replay sequence after filtering
to its subscriptions), from 0. Wire counts (``drop_after``, ``silent_after``) count every
data frame actually written, injected ones included.

:class:`FramePlanner` plans text frames (JSON venues), :class:`BinaryFramePlanner` binary
ones (msgpack); both apply the same faults.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

__all__ = [
    "MALFORMED_BINARY_FRAME",
    "MALFORMED_FRAME",
    "BinaryFramePlanner",
    "FramePlanner",
    "ServerFaults",
    "StopReason",
]

MALFORMED_FRAME = "{not json"
"""The text sent for a malformed text frame."""
MALFORMED_BINARY_FRAME = b"\x91\xc1"
"""The bytes sent for a malformed binary frame: a msgpack array of one element whose type
byte ``0xc1`` the msgpack spec reserves as "never used", so no decoder accepts it."""

_Frame = TypeVar("_Frame", str, bytes)

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
        malformed_at: before the good frame at each position, send a frame no decoder
            accepts (:data:`MALFORMED_FRAME` or :data:`MALFORMED_BINARY_FRAME`).
        truncated_at: before the good frame at each position, send its first half.
        unknown_at: before the good frame at each position, send a well-formed message of
            a type the venue never sends (Binance: unknown ``e``; Alpaca: unknown ``T``).
        duplicate_at: send the good frame at each position twice in a row.
        reorder_at: swap the good frame at each position with the one after it.
        refuse_concurrent: refuse a second concurrent connection the way the venue does
            (Binance server: close with 1008, policy violation, right after the handshake;
            Alpaca server: a ``406 connection limit exceeded`` error frame in answer to the
            auth, then close).
        rate_limit_next: answer the next K HTTP requests with 429 and ``Retry-After``.
        ban_next: answer the next K HTTP requests with 418 (IP banned) and ``Retry-After``
            (the Alpaca server, whose venue has no ban answer, sends 429 instead).
        retry_after: seconds put in ``Retry-After`` for injected 429 and 418 answers.
        depth_drop: recorded ``depthUpdate`` frames never sent, by their final id ``u``
            (Binance servers with depth; ``lean_data.testing._binance_depth``).
        depth_swap: recorded ``depthUpdate`` frames (by ``u``) each sent after the next
            update of the same symbol.
        depth_cross: recorded ``depthUpdate`` frames (by ``u``) sent with one more bid, at
            a price above any ask (a crossed book).
        depth_stale_next: answer the next K re-sync depth requests with the recorded
            snapshot again (stale: its ``lastUpdateId`` predates the updates since).
        depth_rate_limit_next: answer the next K depth requests with 429 and ``Retry-After``.
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
    depth_drop: AbstractSet[int] = frozenset()
    depth_swap: AbstractSet[int] = frozenset()
    depth_cross: AbstractSet[int] = frozenset()
    depth_stale_next: int = 0
    depth_rate_limit_next: int = 0


class _Planner(Generic[_Frame]):
    """Turn one connection's good frames into the frames to write, applying the faults.

    Pure: no I/O. Call :meth:`feed` per good frame and write what it returns in order;
    when :attr:`stop` becomes ``"drop"`` or ``"silence"``, act on it and feed no more.
    Call :meth:`flush` when no frame follows for now (releases a frame held to reorder).
    """

    __slots__ = ("_held", "_malformed", "faults", "position", "stop", "written")

    def __init__(self, faults: ServerFaults, malformed: _Frame) -> None:
        self.faults = faults
        """The settings read on every frame (replaceable)."""
        self._malformed: _Frame = malformed
        self._held: tuple[int, _Frame, Callable[[], _Frame]] | None = None
        self.position = 0
        """Position of the next good frame."""
        self.written = 0
        """Data frames written so far, injected ones included."""
        self.stop: StopReason = ""

    def feed(self, text: _Frame, unknown: Callable[[], _Frame]) -> list[_Frame]:
        """Return the frames to write for the next good frame ``text``.

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

    def flush(self) -> list[_Frame]:
        """Return the frame held back for reordering, if any (nothing follows it yet)."""
        if self._held is None:
            return []
        held, self._held = self._held, None
        return self._emit(*held, [])

    def _emit(
        self, position: int, text: _Frame, unknown: Callable[[], _Frame], out: list[_Frame]
    ) -> list[_Frame]:
        faults = self.faults
        if position in faults.malformed_at:
            self._write(self._malformed, out)
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

    def _write(self, text: _Frame, out: list[_Frame]) -> None:
        if self.check():
            return
        out.append(text)
        self.written += 1
        self.check()


class FramePlanner(_Planner[str]):
    """Plan a connection's text frames (malformed ones are :data:`MALFORMED_FRAME`)."""

    __slots__ = ()

    def __init__(self, faults: ServerFaults) -> None:
        super().__init__(faults, MALFORMED_FRAME)


class BinaryFramePlanner(_Planner[bytes]):
    """Plan a connection's binary frames (malformed: :data:`MALFORMED_BINARY_FRAME`).

    A truncated frame is the first half of the good frame's bytes, which no msgpack
    decoder completes (the array it opens ends in the second half).
    """

    __slots__ = ()

    def __init__(self, faults: ServerFaults) -> None:
        super().__init__(faults, MALFORMED_BINARY_FRAME)
