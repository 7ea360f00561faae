"""Which variant of lean_data is loaded: the mypyc-compiled hot path or pure Python.

``setup.py`` compiles :data:`MODULES` with mypyc when it can (mypy installed, a working C
compiler, ``LEAN_DATA_PURE`` not set to ``1``); otherwise, or when that build fails, the same
modules run as plain Python. Both variants behave the same; the compiled one is faster.
:func:`variant` says which one this interpreter loaded, for ``lean-data --version`` and for
CI, which must not mistake a silent fallback for a compiled build.

This module imports only the standard library: ``setup.py`` reads :data:`MODULES` from it
before lean_data is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

# The pure modules on the hot path, compiled together in one mypyc group. Left pure: the
# models (users subclass them); series.trade_rules (public configuration, read only for a new
# sale condition; compiled, a field of the wrong type would raise TypeError, not ConfigError);
# the feeds (I/O, and users subclass them) but for feeds.intake (DataFeed's compiled base:
# emit and emit_many, which every item passes) and feeds.reading (the Binance feeds' read
# loop, which every frame passes), the engine's other modules (control and
# bookkeeping, off the per-item path; engine.subscriber, which takes every item for an async
# callback, and engine.intake, the engine's side of emit, are compiled) and storage but for
# its row codecs (storage.rows).
MODULES: tuple[str, ...] = (
    "lean_data.quality.levels",
    "lean_data.quality.rules",
    "lean_data.quality.state",
    "lean_data.quality.screen",
    "lean_data.quality.checks",
    "lean_data.quality.validator",
    "lean_data.quality.tracker",
    "lean_data.series.forming",
    "lean_data.series.time_bars",
    "lean_data.series.sequence_bars",
    "lean_data.series.aggregation",
    "lean_data.series.decisions",
    "lean_data.series.continuity",
    "lean_data.series.buffer",
    "lean_data.wire.numbers",
    "lean_data.wire.binance",
    "lean_data.inbox",
    "lean_data.feeds.intake",
    "lean_data.feeds.reading",
    "lean_data.engine.intake",
    "lean_data.engine.fanout",
    "lean_data.engine.subscriber",
    "lean_data.engine.metrics",
    "lean_data.engine.series_record",
    "lean_data.engine.pipeline",
    "lean_data.storage.rows",
)

# Hand-written C modules built beside them (same toggle, same fallback): lean_data._slots
# reads and fills the models' slots (lean_data.slots wraps it and has the pure twin);
# lean_data._binance reads the common Binance frames in one pass (lean_data.wire.binance
# decodes every frame the usual way without it); lean_data._rows flattens a multi-row
# statement's parameters, packs ring-buffer rows and continuity slots and sets the quality
# tracker's latency window (the pure twins stay in those modules).
C_MODULES: tuple[str, ...] = ("lean_data._slots", "lean_data._binance", "lean_data._rows")

# Built with them when this machine has SQLite's headers (libsqlite3-dev), left out with a
# warning when not: lean_data._sqlite_rows runs the SQLite store's multi-row INSERTs,
# binding without the GIL (storage.sqlite_sink falls back to sqlite3's own binding).
OPTIONAL_C_MODULES: tuple[str, ...] = ("lean_data._sqlite_rows",)
C_LIBRARIES: dict[str, tuple[str, ...]] = {"lean_data._sqlite_rows": ("sqlite3",)}


@dataclass(frozen=True, slots=True)
class Variant:
    """What was loaded: the hot modules that are extension modules, and those that are not."""

    compiled: tuple[str, ...]
    pure: tuple[str, ...]
    optional: tuple[str, ...] = ()
    """The :data:`OPTIONAL_C_MODULES` that were built and loaded."""

    @property
    def is_compiled(self) -> bool:
        """Return True when every hot module is compiled."""
        return not self.pure

    def describe(self) -> str:
        """Return one line for ``--version``: ``compiled: mypyc, 26 modules; C: slots, frames,
        rows, SQLite`` (``..., rows; no SQLite headers`` without the optional module), or
        pure."""
        if not self.compiled:
            return "pure Python"
        if not self.pure:
            mypyc = [name for name in self.compiled if name not in C_MODULES]
            sqlite = ", SQLite" if self.optional else "; no SQLite headers"
            return f"compiled: mypyc, {len(mypyc)} modules; C: slots, frames, rows{sqlite}"
        return (
            f"partly compiled: mypyc, {len(self.compiled)} of {len(MODULES) + len(C_MODULES)} "
            "modules; "
            f"pure: {', '.join(self.pure)}; rebuild with pip install -e ."
        )


def is_extension(module: str) -> bool:
    """Return True when ``module`` was loaded from a compiled extension (``.so``/``.pyd``)."""
    path = getattr(importlib.import_module(module), "__file__", None) or ""
    return path.endswith(tuple(EXTENSION_SUFFIXES))


def variant() -> Variant:
    """Return which hot modules this interpreter loaded compiled and which pure."""
    every = (*MODULES, *C_MODULES)
    compiled = tuple(name for name in every if _loads_extension(name))
    optional = tuple(name for name in OPTIONAL_C_MODULES if _loads_extension(name))
    return Variant(compiled, tuple(name for name in every if name not in compiled), optional)


def _loads_extension(name: str) -> bool:
    if name not in C_MODULES and name not in OPTIONAL_C_MODULES:
        return is_extension(name)
    # A C module has no .py twin: one not built here is pure (lean_data.slots falls back),
    # even where an import would find another checkout's build (an editable install's
    # finder maps the package's names to its own tree).
    spec = importlib.util.find_spec(name)
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    package = Path(importlib.import_module("lean_data").__file__ or "").parent
    return origin is not None and origin.parent == package and is_extension(name)
