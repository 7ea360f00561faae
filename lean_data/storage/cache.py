"""A two-tier cache of historical bar requests: a memory LRU in front of a disk directory.

Entries are keyed exactly by ``(symbol, timeframe, start, end)``. The memory tier is an
``OrderedDict`` bounded by entry count and by an estimate of the bytes the items hold:
``256 + n * per-item size`` with the per-item size of the first item's type (TradeBar 336,
QuoteBar 496, Tick 384 bytes, measured with ``tracemalloc`` on CPython 3.11). An entry
bigger than ``max_bytes`` on its own skips the memory tier.

The disk tier (``cache_dir``, :mod:`lean_data.storage.cache_disk`) survives restarts. One
file per key, named ``<sha256(symbol)[:16]>-<sha256(key)>.ldc`` (hex only, so no symbol can
escape or break the directory; the symbol prefix lets :meth:`DataCache.invalidate` find a
symbol's files without reading them). Files are written to a temporary file in ``cache_dir``
and moved into place with ``os.replace`` (no fsync: a torn file after a crash fails its
checksum and is dropped). The format is in :mod:`lean_data.storage.codec`. A file that is
corrupt, truncated, of another version or of another key is a logged miss: it is counted as
``corrupt`` and removed.

A disk answer is checked before it is served, since anyone who can write to ``cache_dir``
can plant a file with a valid checksum: before decoding, the item count its manifest claims
per type must fit the request (for bars at most ``(end - start) // period + 1`` of each
type; for ticks at most one per payload byte, as a real tick file spends bytes per tick);
after decoding, every item must be of the requested symbol, of the requested resolution
(bars), and open within ``[start, end]``. A file that fails is a logged miss counted as
``rejected`` and removed, and the caller asks the next source. ``put`` writes an answer
that would fail these checks to memory only, with a warning. Disk
I/O errors are logged misses too, and a put that cannot reach the disk still serves from
memory. The disk tier is bounded by ``disk_max_bytes``, evicting the least recently used
files; a hit in either tier counts as use, and recency survives restarts through each
file's mtime, set from ``clock`` on every write and hit.

Items are shared, not copied: ``get`` returns a new list of the cached objects, which
callers must not mutate. One lock guards every change (disk I/O included), so the cache can
be used from ``asyncio.to_thread`` workers; encoding a put happens before taking it, and
``statistics()``/``hit_rate`` do not take it, so the event loop can call them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lean_data.errors import ConfigError
from lean_data.models import MarketData, QuoteBar, Resolution, Tick, TradeBar, datetime_to_ns

if TYPE_CHECKING:  # the disk tier (and its codec, hashlib, tempfile) loads with a cache_dir
    from lean_data.storage.cache_disk import DiskTier, Key

__all__ = ["DataCache"]

logger = logging.getLogger(__name__)

_ENTRY_BYTES = 256
_ITEM_BYTES: dict[type, int] = {TradeBar: 336, QuoteBar: 496, Tick: 384}
_DEFAULT_ITEM_BYTES = 400

_COUNTERS = (
    "hits",
    "misses",
    "memory_hits",
    "disk_hits",
    "corrupt",
    "evictions",
    "disk_evictions",
    "expired",
    "disk_errors",
    "rejected",
)


@dataclass(slots=True)
class _Entry:
    items: list[MarketData]
    written_at: float
    nbytes: int


def _ns(value: int | datetime) -> int:
    return datetime_to_ns(value) if isinstance(value, datetime) else int(value)


def _estimate_bytes(items: list[MarketData]) -> int:
    if not items:
        return _ENTRY_BYTES
    return _ENTRY_BYTES + len(items) * _ITEM_BYTES.get(type(items[0]), _DEFAULT_ITEM_BYTES)


class DataCache:
    """Cache lists of bars by exact ``(symbol, timeframe, start, end)`` request.

    Args:
        max_size: most entries the memory tier holds.
        cache_dir: directory of the disk tier, created if missing (``None``: memory only).
        max_bytes: bound of the memory tier's estimated size (see the module docstring).
        disk_max_bytes: bound of the total size of the disk tier's files.
        ttl_s: seconds an entry stays fresh after its put (0: forever); an entry is stale
            once ``clock() - written_at >= ttl_s``.
        clock: wall clock in seconds, injectable for tests.

    Raises:
        ConfigError: a bound is not positive, or ``cache_dir`` cannot be created.
    """

    def __init__(
        self,
        max_size: int = 256,
        cache_dir: str | Path | None = None,
        *,
        max_bytes: int = 256 * 2**20,
        disk_max_bytes: int = 2 * 2**30,
        ttl_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (("max_size", max_size), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"DataCache {name} must be a positive integer, got {value!r}")
        if disk_max_bytes < 1 or ttl_s < 0:
            raise ConfigError(
                f"DataCache needs disk_max_bytes >= 1 and ttl_s >= 0, "
                f"got {disk_max_bytes!r} and {ttl_s!r}"
            )
        self._max_size = max_size
        self._max_bytes = max_bytes
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._memory: OrderedDict[Key, _Entry] = OrderedDict()
        self._memory_bytes = 0
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._dir: Path | None = None
        self._disk: DiskTier | None = None
        if cache_dir is not None:
            from lean_data.storage.cache_disk import DiskTier

            self._dir = Path(cache_dir)
            self._disk = DiskTier(self._dir, disk_max_bytes, self._counts)

    # ----------------------------------------------------------------- public API

    def put(
        self,
        symbol: str,
        timeframe: Resolution | str,
        start: int | datetime,
        end: int | datetime,
        bars: Sequence[MarketData],
    ) -> None:
        """Store ``bars`` as the answer for this exact request, in memory and on disk.

        Raises:
            ValueError: ``timeframe`` names no resolution.
        """
        key = self._key(symbol, timeframe, start, end)
        items = list(bars)
        written_at = self._clock()
        payload = None
        if self._disk is not None:
            try:
                payload = self._disk.encode(key, items)
            except (TypeError, ValueError, OverflowError, AttributeError) as exc:
                logger.warning("cannot store %r on disk, keeping it in memory: %s", key, exc)
        entry = _Entry(items, written_at, _estimate_bytes(items))
        with self._lock:
            self._remember(key, entry)
            if self._disk is not None:
                self._disk.write(key, written_at, payload)

    def get(
        self,
        symbol: str,
        timeframe: Resolution | str,
        start: int | datetime,
        end: int | datetime,
    ) -> list[MarketData] | None:
        """Return a new list of the cached bars for this exact request, or ``None``.

        Raises:
            ValueError: ``timeframe`` names no resolution.
        """
        key = self._key(symbol, timeframe, start, end)
        now = self._clock()
        with self._lock:
            items = self._get_memory(key, now)
            if items is None and self._disk is not None:
                items = self._get_disk(self._disk, key, now)
            self._counts["hits" if items is not None else "misses"] += 1
            return None if items is None else list(items)

    def invalidate(self, symbol: str) -> int:
        """Drop every entry of ``symbol`` from memory and disk; return how many keys went."""
        with self._lock:
            keys = [key for key in self._memory if key[0] == symbol]
            for key in keys:
                self._forget_memory(key)
            if self._disk is None:
                return len(keys)
            return len(self._disk.names(keys) | self._disk.remove_symbol(symbol))

    def clear(self) -> None:
        """Drop every entry from memory and every cache file from disk (counters stay)."""
        with self._lock:
            self._memory.clear()
            self._memory_bytes = 0
            if self._disk is not None:
                self._disk.clear()

    def statistics(self) -> dict[str, float | int]:
        """Return a snapshot of the counters and sizes.

        Keys: ``hits``, ``misses``, ``memory_hits``, ``disk_hits``, ``corrupt``, ``evictions``
        (memory), ``disk_evictions``, ``expired``, ``disk_errors``, ``rejected`` (disk
        answers that did not fit their request), ``entries``, ``bytes``
        (memory estimate), ``disk_entries``, ``disk_bytes``, ``hit_rate``.

        Lock-free, so the event loop never waits behind another thread's disk I/O; a
        snapshot taken during a put or get may show that operation half counted.
        """
        stats: dict[str, float | int] = dict(self._counts)
        stats.update(
            entries=len(self._memory),
            bytes=self._memory_bytes,
            disk_entries=0 if self._disk is None else len(self._disk),
            disk_bytes=0 if self._disk is None else self._disk.nbytes,
            hit_rate=self._hit_rate(),
        )
        return stats

    @property
    def hit_rate(self) -> float:
        """Hits over lookups, from 0.0 to 1.0 (0.0 before the first lookup); lock-free."""
        return self._hit_rate()

    def __repr__(self) -> str:
        disk_entries = 0 if self._disk is None else len(self._disk)
        return (
            f"DataCache(max_size={self._max_size}, cache_dir={self._dir!r}, "
            f"entries={len(self._memory)}, disk_entries={disk_entries})"
        )

    # ----------------------------------------------------------------- memory tier

    @staticmethod
    def _key(
        symbol: str, timeframe: Resolution | str, start: int | datetime, end: int | datetime
    ) -> Key:
        if not isinstance(symbol, str):
            raise TypeError(f"symbol must be a str, got {type(symbol).__name__}")
        return (symbol, Resolution.parse(timeframe).name, _ns(start), _ns(end))

    def _hit_rate(self) -> float:
        hits = self._counts["hits"]
        lookups = hits + self._counts["misses"]
        return hits / lookups if lookups else 0.0

    def _expired(self, written_at: float, now: float) -> bool:
        return self._ttl_s > 0 and now - written_at >= self._ttl_s

    def _remember(self, key: Key, entry: _Entry) -> None:
        self._forget_memory(key)
        if entry.nbytes > self._max_bytes:
            return
        self._memory[key] = entry
        self._memory_bytes += entry.nbytes
        while len(self._memory) > self._max_size or self._memory_bytes > self._max_bytes:
            _, oldest = self._memory.popitem(last=False)
            self._memory_bytes -= oldest.nbytes
            self._counts["evictions"] += 1

    def _forget_memory(self, key: Key) -> None:
        old = self._memory.pop(key, None)
        if old is not None:
            self._memory_bytes -= old.nbytes

    def _get_memory(self, key: Key, now: float) -> list[MarketData] | None:
        entry = self._memory.get(key)
        if entry is None:
            return None
        if self._expired(entry.written_at, now):
            self._forget_memory(key)
            if self._disk is not None:
                self._disk.remove_key(key)
            self._counts["expired"] += 1
            return None
        self._memory.move_to_end(key)
        if self._disk is not None:  # keep the disk tier's recency in step with use
            self._disk.touch_key(key, now)
        self._counts["memory_hits"] += 1
        return entry.items

    # ----------------------------------------------------------------- disk tier

    def _get_disk(self, disk: DiskTier, key: Key, now: float) -> list[MarketData] | None:
        found = disk.read(key)
        if found is None:
            return None
        written_at, items, size = found
        if self._expired(written_at, now):
            disk.remove_key(key)
            self._counts["expired"] += 1
            return None
        disk.touch_key(key, now, size)
        self._remember(key, _Entry(items, written_at, _estimate_bytes(items)))
        self._counts["disk_hits"] += 1
        return items
