"""A hand-written C module's function, or its pure twin when the package was installed pure.

The C modules (:data:`lean_data.compiled.C_MODULES`) are built with the compiled package;
each function they hold has a pure-Python twin beside its caller with the same behaviour,
which tests hold them to. :func:`twin` picks one once, at import.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

__all__ = ["elapsed_ns", "time_ns", "twin"]

T = TypeVar("T")


def twin(module: str, name: str, pure: T) -> T:
    """Return ``module.name`` when that C module is built, else ``pure``."""
    try:
        found: Any = getattr(importlib.import_module(module), name)
    except ImportError:  # a pure install: the C module is not there
        return pure
    return found  # type: ignore[no-any-return]


time_ns: Final[Callable[[], int]] = twin("lean_data._rows", "time_ns", time.time_ns)
"""``time.time_ns()``; with the C module, the same clock read with less around it (~195
instructions a call against ~60): the receipt time of every socket read and the delivery
time of every item."""


def _elapsed_ns(since: int) -> int:
    return time.time_ns() - since


elapsed_ns: Final[Callable[[int], int]] = twin("lean_data._rows", "elapsed_ns", _elapsed_ns)
"""``time.time_ns() - since``; with the C module, in one call that makes no int for the
clock's reading: the delivery latency of every tick."""
