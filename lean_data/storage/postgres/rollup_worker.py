"""Large rollup refreshes in a process of their own, off the writer's event loop.

A refresh (:func:`~lean_data.storage.postgres.rollups.refresh`) reads minutes back,
resamples them and writes the rollups: a few µs of Python a minute. Under a bulk load
(an import, a backfill, a replay into PostgreSQL) that Python ran on the loop that also
runs the engine and the writer, about a third of the process's time. :class:`RollupWorker`
runs the same function, unchanged, in a child interpreter with its own connection, so on
a machine with a core to spare the engine goes on meanwhile; the parent only waits for the
answer.

The child is ``python -m lean_data.storage.postgres._rollup_child`` (:func:`main`), a fresh
interpreter: not a fork of the parent (no inherited loop, threads or sockets), and not
``multiprocessing`` (which imports the parent's main script again in the child). It is
started at the first refresh that uses it and ended by :meth:`RollupWorker.close`. The two
talk over the child's stdin and stdout, one length-prefixed pickle per message:

- first ``(url, schema, server_settings, connect_timeout_s)``, then one request per
  refresh: ``(target names, pending hours)``;
- each answer is ``("ok", failures)``, ``("transient", why)`` (a connection fault: the
  hours stay pending) or ``("error", why)`` (any other error: the series are reported as
  not refreshed), exactly the outcomes of the refresh run in the parent.

The child runs each refresh in one transaction (the same advisory locks); a child that
dies takes its transaction with it (the server rolls it back). The parent treats a child
that does not start or answer as gone (:class:`WorkerGone`): it stops it, and the store
refreshes in its own process from then on (counted in ``rollup_status["worker_failures"]``
and logged once).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import asyncpg

from lean_data.models import Resolution
from lean_data.storage.postgres import records, rollups
from lean_data.storage.postgres.rollups import Failure, Pending

__all__ = ["WORKER_HOURS", "RollupWorker", "WorkerGone", "main"]

WORKER_HOURS = 32
"""A refresh of at least this many pending (series, hour) pairs runs in the worker."""

logger = logging.getLogger("lean_data.storage.postgres")

_HEADER = struct.Struct("!Q")
_PACKAGE = Path(__file__).resolve().parents[2]  # the lean_data directory this module is in
_STOP_S = 5.0  # how long close waits for the child to end before killing it


class WorkerGone(Exception):
    """The worker process ended or broke the protocol; refresh in this process."""


def frame(message: object) -> bytes:
    """One message as written on the pipe: its length, then its pickle."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


class RollupWorker:
    """The parent's end: start the child when first needed, send refreshes, stop it.

    Args:
        url: the database URL (sent to the child on its stdin, never on its command line).
        schema: the store's schema.
        server_settings: the session settings of the store's connections.
        connect_timeout_s: the child's connect timeout.
    """

    COMMAND: tuple[str, ...] = (sys.executable, "-m", "lean_data.storage.postgres._rollup_child")
    """How the child is started."""

    def __init__(
        self, url: str, schema: str, server_settings: dict[str, str], connect_timeout_s: float
    ) -> None:
        self._hello = (url, schema, dict(server_settings), connect_timeout_s)
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def refresh(self, targets: Sequence[Resolution], pending: Pending) -> tuple[str, Any]:
        """Run one refresh in the child; return its answer (see the module docstring).

        Raises:
            WorkerGone: the child could not be started, ended, or answered garbage; it is
                stopped (a later call starts a new one).
        """
        try:
            proc = await self._started()
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(frame(([t.name for t in targets], pending)))
            await proc.stdin.drain()
            (size,) = _HEADER.unpack(await proc.stdout.readexactly(_HEADER.size))
            answer = pickle.loads(await proc.stdout.readexactly(size))
        except asyncio.CancelledError:  # the answer would come later, out of step: stop it
            self._kill()
            raise
        except (OSError, EOFError, asyncio.IncompleteReadError, pickle.UnpicklingError) as exc:
            self._kill()
            raise WorkerGone(f"the rollup worker is gone: {exc!r}") from exc
        if not (isinstance(answer, tuple) and len(answer) == 2):
            self._kill()
            raise WorkerGone(f"the rollup worker answered {answer!r}")
        return answer

    async def _started(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        proc = await asyncio.create_subprocess_exec(
            *self.COMMAND,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=_child_env(),
        )
        assert proc.stdin is not None
        proc.stdin.write(frame(self._hello))
        self._proc = proc
        return proc

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()

    async def close(self) -> None:
        """End the child: its stdin closes, it finishes and exits (killed after 5 s)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), _STOP_S)
        except TimeoutError:
            logger.warning("the rollup worker did not stop within %.0f s; killing it", _STOP_S)
            proc.kill()
            await proc.wait()


def _child_env() -> dict[str, str]:
    """The parent's environment, with the directory its ``lean_data`` came from first on
    the child's path: the child imports the same code, installed or not."""
    env = dict(os.environ)
    root = str(_PACKAGE.parent)
    found = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root if not found else os.pathsep.join((root, found))
    return env


# ---------------------------------------------------------------------------- the child
def _read(stream: IO[bytes]) -> Any:
    """The next message, or None at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))


class _Child:
    """The child's state: its loop and its connection, made again after a fault."""

    def __init__(self, hello: tuple[str, str, dict[str, str], float]) -> None:
        self.url, self.schema, self.settings, self.timeout = hello
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection | None = None

    def handle(self, request: tuple[list[str], Pending]) -> tuple[str, Any]:
        names, pending = request
        targets = [Resolution.parse(name) for name in names]
        try:
            return "ok", self.loop.run_until_complete(self._refresh(targets, pending))
        except Exception as exc:
            self.loop.run_until_complete(self.close())
            return ("transient" if records.is_transient(exc) else "error"), repr(exc)

    async def _refresh(self, targets: list[Resolution], pending: Pending) -> list[Failure]:
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(
                self.url, timeout=self.timeout, server_settings=self.settings
            )
        async with self.conn.transaction():
            return await rollups.refresh(self.conn, self.schema, targets, pending)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), _STOP_S)
            except Exception:  # a dead connection: nothing to say goodbye to
                conn.terminate()


def main() -> int:
    """Serve refreshes from stdin until it closes (see the module docstring)."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the answers
    hello = _read(stdin)
    if hello is None:
        return 0
    child = _Child(hello)
    try:
        while (request := _read(stdin)) is not None:
            stdout.write(frame(child.handle(request)))
            stdout.flush()
    finally:
        child.loop.run_until_complete(child.close())
        child.loop.close()
    return 0
