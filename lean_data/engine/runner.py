"""Run a coroutine on the event loop the configuration asks for: uvloop or asyncio's default.

A :class:`~lean_data.config.Config` cannot change the loop an engine already runs on: the
loop is made by whoever calls ``asyncio.run``. :func:`run` is that call, with the loop
chosen by name (``Config.loop`` or its ``loop`` argument):

- ``"auto"`` (the default): uvloop when it is installed (``pip install "lean-data[uvloop]"``),
  else asyncio's default loop;
- ``"uvloop"``: uvloop, and a one-line :class:`~lean_data.errors.ConfigError` with the pip
  command when it is not installed;
- ``"asyncio"``: asyncio's default loop, even when uvloop is installed.

``DataEngine.start()`` logs one warning when ``Config.loop`` is ``"uvloop"`` and the running
loop is not (the engine was started by a plain ``asyncio.run``); see
:func:`loop_mismatch`.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from lean_data.config import LOOPS, Config
from lean_data.errors import ConfigError

__all__ = ["LOOPS", "loop_factory", "loop_mismatch", "run", "running_loop_name", "uvloop_version"]

T = TypeVar("T")

INSTALL_UVLOOP = 'pip install "lean-data[uvloop]"'


def uvloop_version() -> str | None:
    """The installed uvloop's version, or None when it is not installed."""
    if importlib.util.find_spec("uvloop") is None:
        return None
    from importlib import metadata  # ~6 ms: only when asked (import lean_data stays lean)

    try:
        return metadata.version("uvloop")
    except metadata.PackageNotFoundError:  # importable but not installed (a path)
        return "unknown"


def loop_factory(loop: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop named ``loop``; None means asyncio's default loop.

    Args:
        loop: ``"auto"``, ``"uvloop"`` or ``"asyncio"`` (any case).

    Raises:
        ConfigError: ``loop`` is none of those, or is ``"uvloop"`` and uvloop is not
            installed (the message gives the pip command).
    """
    name = loop.lower() if isinstance(loop, str) else loop
    if name not in LOOPS:
        raise ConfigError(f"loop must be one of {', '.join(LOOPS)}, got {loop!r}")
    if name == "asyncio":
        return None
    if uvloop_version() is None:
        if name == "uvloop":
            raise ConfigError(f"loop='uvloop' but uvloop is not installed: {INSTALL_UVLOOP}")
        return None
    import uvloop

    return uvloop.new_event_loop


def run(
    main: Coroutine[Any, Any, T],
    *,
    loop: str | None = None,
    config: Config | None = None,
    debug: bool | None = None,
) -> T:
    """Run ``main`` to completion on a new event loop and close the loop (like ``asyncio.run``).

    Args:
        main: the coroutine to run (typically the one that starts a DataEngine).
        loop: ``"auto"``, ``"uvloop"`` or ``"asyncio"``; wins over ``config.loop``.
        config: when ``loop`` is not given, ``config.loop`` names the loop (``"auto"`` when
            neither is given).
        debug: asyncio's debug mode (None: as ``PYTHONASYNCIODEBUG`` says).

    Returns:
        What ``main`` returns.

    Raises:
        ConfigError: the loop named cannot be made (see :func:`loop_factory`); ``main`` is
            closed unrun then, so no "never awaited" warning follows.
    """
    name = loop if loop is not None else config.loop if config is not None else "auto"
    try:
        factory = loop_factory(name)
    except ConfigError:
        main.close()
        raise
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """``"uvloop"`` or ``"asyncio"``: the kind of the running loop.

    Raises:
        RuntimeError: no loop is running in this thread.
    """
    running = asyncio.get_running_loop()
    return "uvloop" if type(running).__module__.partition(".")[0] == "uvloop" else "asyncio"


def loop_mismatch(requested: str) -> str | None:
    """Why the running loop is not the one ``requested`` (a Config's ``loop``), or None.

    Only ``"uvloop"`` is a demand: ``"auto"`` takes what it finds, and ``"asyncio"`` on uvloop
    is a loop someone chose on purpose. Call it from a coroutine.
    """
    if requested != "uvloop" or running_loop_name() == "uvloop":
        return None
    hint = "" if uvloop_version() is not None else f" ({INSTALL_UVLOOP})"
    return (
        "Config.loop is 'uvloop' but the engine runs on asyncio's default loop: start it "
        f"with lean_data.run(main(), config=config) instead of asyncio.run{hint}"
    )
