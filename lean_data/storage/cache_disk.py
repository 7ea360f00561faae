"""The disk tier of :class:`~lean_data.storage.cache.DataCache`: one checked file per request.

One file per key, named ``<sha256(symbol)[:16]>-<sha256(key)>.ldc`` (hex only, so no symbol
can escape or break the directory; the symbol prefix lets a symbol's files be found without
reading them). Files are written to a temporary file in the directory and moved into place
with ``os.replace`` (no fsync: a torn file after a crash fails its checksum and is dropped).
The format is :mod:`lean_data.storage.codec`.

A file read back is checked before it is served, since anyone who can write to the
directory can plant a file with a valid checksum: before decoding, the item count its
manifest claims per type must fit the request (:func:`count_problem`); once decoded to
columns, before any item is built, every item must fit it too (:func:`blocks_problem`,
what :func:`item_problem` checks of built items). A file that is corrupt, truncated, of
another version or of another key is counted ``corrupt``, one that does not fit its
request ``rejected``; either is removed and read as a miss. I/O errors are logged and
counted as ``disk_errors``. The tier is bounded by ``max_bytes``, evicting the least
recently used files; recency survives restarts through each file's mtime.

:class:`DiskTier` is not locked itself: its owner serialises every call.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import struct
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

import orjson

from lean_data.errors import ConfigError, DataFormatError
from lean_data.models import MarketData, Resolution
from lean_data.storage import codec as _codec
from lean_data.storage.codec import Same

__all__ = [
    "SUFFIX",
    "TEMP_PREFIX",
    "DiskTier",
    "Key",
    "blocks_problem",
    "file_name",
    "item_problem",
    "key_bytes",
]

logger = logging.getLogger("lean_data.storage.cache")  # the name users configure for the cache

SUFFIX = ".ldc"
TEMP_PREFIX = ".tmp-"
_STALE_TEMP_S = 3600.0
_MANIFEST_SIZE = struct.Struct("<I")  # the payload's first field (see lean_data.storage.codec)

Key = tuple[str, str, int, int]
"""(symbol, resolution name, start ns, end ns) of one history request."""


def key_bytes(key: Key) -> bytes:
    """The key as framed into its file, checked when the file is read back."""
    symbol = key[0].encode("utf-8", "surrogatepass")
    return b"%d:%b|%b|%d|%d" % (len(symbol), symbol, key[1].encode(), key[2], key[3])


def symbol_prefix(symbol: str) -> str:
    """The start of the file names of every key of ``symbol``."""
    return hashlib.sha256(symbol.encode("utf-8", "surrogatepass")).hexdigest()[:16] + "-"


def file_name(key: Key) -> str:
    """The name of the file holding ``key``'s answer."""
    return symbol_prefix(key[0]) + hashlib.sha256(key_bytes(key)).hexdigest() + SUFFIX


def _claimed_counts(payload: memoryview) -> dict[str, int]:
    """The item count a payload's manifest claims per type, read before decoding it.

    Raises:
        DataFormatError: the manifest cannot be read.
    """
    try:
        (size,) = _MANIFEST_SIZE.unpack_from(payload)
        manifest = orjson.loads(payload[_MANIFEST_SIZE.size : _MANIFEST_SIZE.size + size])
        counts: dict[str, int] = {}
        for block in manifest["blocks"]:
            kind, n = block["type"], block["n"]
            if not isinstance(kind, str) or type(n) is not int or n < 0:
                raise ValueError(f"bad block {str(block)[:80]}")
            counts[kind] = counts.get(kind, 0) + n
    except (ValueError, TypeError, KeyError, IndexError, struct.error) as exc:
        raise DataFormatError(f"payload manifest cannot be read: {exc}") from None
    return counts


def count_problem(key: Key, counts: dict[str, int], payload_bytes: int) -> str | None:
    """Why the claimed counts cannot be an answer to ``key``, or None when they can.

    For bars at most ``(end - start) // period + 1`` of each type fit; for ticks at most
    one per payload byte, as a real tick file spends bytes per tick.
    """
    nanos = Resolution.parse(key[1]).nanos
    for kind, n in counts.items():
        # ticks: no bound from the range; a real tick costs bytes in the file
        bound = max(0, key[3] - key[2]) // nanos + 1 if nanos > 0 else max(payload_bytes, 16)
        if n > bound:
            return f"{n} {kind} items claimed, at most {bound} fit {key[1]} in the range"
    return None


def item_problem(key: Key, items: Sequence[MarketData]) -> str | None:
    """Why ``items`` cannot be the answer to ``key``, or None when they can.

    Every item must be of the requested symbol, of the requested resolution (bars), open
    within ``[start, end]``, and bars must be no more than fit the range: what
    :func:`blocks_problem` checks, here of the items' own fields.

    Raises:
        TypeError: an item's symbol, time or resolution cannot be compared with the key's.
    """
    return blocks_problem(key, [_columns(list(run)) for _, run in groupby(items, type)])


def _columns(run: list[MarketData]) -> _codec.Block:
    """The checked columns of a run of items of one type."""
    cls = type(run[0])
    columns: dict[str, _codec.Column] = {
        "symbol": [item.symbol for item in run],
        "ts_event": [item.ts_event for item in run],
    }
    if hasattr(cls, "resolution"):  # bars and quote bars
        columns["resolution"] = [getattr(item, "resolution", None) for item in run]
    return _codec.Block(cls, len(run), columns)


def blocks_problem(key: Key, blocks: Sequence[_codec.Block]) -> str | None:
    """Why the items of ``blocks`` cannot be the answer to ``key`` (:func:`item_problem`),
    read from their columns, so a file's can be checked before any item is built: a
    constant column is one value to check, a time column its least and greatest value (a
    year of minute bars: ~10 ms, where checking 525,600 built bars one by one took ~170).

    Raises:
        TypeError: a column holds values that cannot be compared with the key's.
    """
    symbol, name, start, end = key
    resolution = Resolution.parse(name)
    counts: dict[str, int] = {}
    for block in blocks:
        counts[block.cls.kind] = counts.get(block.cls.kind, 0) + block.size
        if not block.size:
            continue
        columns = block.columns
        found = _other(columns["symbol"], symbol)
        if found is not None:
            return f"an item of symbol {found[0]!r}"
        times = columns["ts_event"]
        low, high = (times.value,) * 2 if isinstance(times, Same) else (min(times), max(times))
        for at in (low, high):
            if not start <= at <= end:
                return f"an item at {at}, outside [{start}, {end}]"
        if "resolution" in columns and not resolution.is_tick:
            found = _other(columns["resolution"], resolution)
            if found is not None:
                return f"an item of resolution {found[0]}"
    if resolution.nanos > 0:
        return count_problem(key, counts, 0)
    return None


def _checked(key: Key, blocks: Sequence[_codec.Block]) -> str | None:
    """:func:`blocks_problem` of a file's blocks; a column that cannot be compared is
    corrupt (a planted column of another type).

    Raises:
        DataFormatError: such a column.
    """
    try:
        return blocks_problem(key, blocks)
    except TypeError as exc:
        raise DataFormatError(f"payload columns cannot be checked: {exc}") from None


def _other(column: _codec.Column, wanted: object) -> tuple[object] | None:
    """The first value of ``column`` that is not ``wanted`` (in a 1-tuple), or None."""
    if isinstance(column, Same):
        return None if column.value == wanted else (column.value,)
    for value in column:
        if value != wanted:
            return (value,)
    return None


class DiskTier:
    """The cache files in one directory, least recently used first.

    Args:
        directory: created if missing; stale temporary files (an hour old) are removed.
        max_bytes: bound of the total size of the files.
        counts: the owner's counters; this tier adds to ``corrupt``, ``rejected``,
            ``disk_errors`` and ``disk_evictions``.

    Raises:
        ConfigError: ``directory`` cannot be created or listed.
    """

    def __init__(self, directory: Path, max_bytes: int, counts: dict[str, int]) -> None:
        self.directory = directory
        self._max_bytes = max_bytes
        self._counts = counts
        self._files: OrderedDict[str, int] = OrderedDict()  # file name -> size, LRU first
        self.nbytes = 0
        try:
            directory.mkdir(parents=True, exist_ok=True)
            found = []
            with os.scandir(directory) as scan:
                for item in scan:
                    if item.name.startswith(TEMP_PREFIX):
                        self._drop_stale_temp(item)
                    elif item.name.endswith(SUFFIX) and item.is_file(follow_symlinks=False):
                        stat = item.stat(follow_symlinks=False)
                        found.append((stat.st_mtime_ns, item.name, stat.st_size))
        except OSError as exc:
            raise ConfigError(f"cache_dir {str(directory)!r} is not usable: {exc}") from exc
        for _, name, size in sorted(found):
            self._files[name] = size
            self.nbytes += size

    def __len__(self) -> int:
        return len(self._files)

    def read(self, key: Key) -> tuple[float, list[MarketData], int] | None:
        """Return ``(written_at, items, file size)`` of ``key``'s checked file, or None.

        A file that fails its checks is removed (and counted); recency is not changed.
        """
        name = file_name(key)
        path = self.directory / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self._forget(name)
            return None
        except OSError as exc:
            self._error("read", path, exc)
            return None
        try:
            written_at, payload = _codec.unframe(data, key_bytes(key))
            problem = count_problem(key, _claimed_counts(payload), len(payload))
            if problem is None:
                blocks = _codec.decode_blocks(payload)
                _codec.market_blocks(blocks)
                problem = _checked(key, blocks)
            if problem is None:
                items: list[MarketData] = _codec.build(blocks)  # type: ignore[assignment]
        except DataFormatError as exc:
            logger.warning("dropping corrupt cache file %s: %s", path, exc)
            self._counts["corrupt"] += 1
            self.remove(name)
            return None
        if problem is not None:
            logger.warning("rejecting cache file %s for %r: %s", path, key, problem)
            self._counts["rejected"] += 1
            self.remove(name)
            return None
        return written_at, items, len(data)

    def write(self, key: Key, written_at: float, payload: list[bytes] | None) -> None:
        """Write ``key``'s answer (``None``: it cannot go to disk, remove an older one)."""
        name = file_name(key)
        chunks = None if payload is None else _codec.frame(key_bytes(key), written_at, payload)
        size = 0 if chunks is None else sum(map(len, chunks))
        if chunks is None or size > self._max_bytes:
            self.remove(name)  # an older version of this key must not resurface
            return
        path = self.directory / name
        try:
            self._write_atomic(path, chunks)
        except OSError as exc:
            self._error("write", path, exc)
            self.remove(name, quiet=True)  # an older version must not resurface
            return
        self.touch(name, size, written_at)
        while self.nbytes > self._max_bytes:
            self.remove(next(iter(self._files)))
            self._counts["disk_evictions"] += 1

    def encode(self, key: Key, items: Sequence[MarketData]) -> list[bytes]:
        """``items`` as ``key``'s payload for :meth:`write`.

        Raises:
            ValueError: an item a read of ``key`` would reject, or one the codec cannot hold
                (as may TypeError, OverflowError and AttributeError).
        """
        problem = item_problem(key, items)
        if problem is not None:
            raise ValueError(f"{problem}: a disk read would reject it")
        return _codec.encode_items(items)

    def touch(self, name: str, size: int, now: float) -> None:
        """Make ``name`` the most recently used file, in memory and in its mtime."""
        self._forget(name)
        self._files[name] = size
        self.nbytes += size
        path = self.directory / name
        try:
            os.utime(path, (now, now))
        except OSError as exc:
            logger.debug("cannot set the mtime of %s: %s", path, exc)

    def touch_key(self, key: Key, now: float, size: int | None = None) -> None:
        """Mark ``key``'s file used: one just read, of ``size`` bytes; else (a memory hit
        of the same key) the known file, when there is one."""
        name = file_name(key)
        size = self._files.get(name) if size is None else size
        if size is not None:
            self.touch(name, size, now)

    @staticmethod
    def names(keys: Sequence[Key]) -> set[str]:
        """The file names of ``keys`` (whether or not the files exist)."""
        return {file_name(key) for key in keys}

    def remove_key(self, key: Key) -> None:
        """Delete ``key``'s file (a missing one is fine)."""
        self.remove(file_name(key))

    def remove(self, name: str, *, quiet: bool = False) -> None:
        """Delete one file (a missing one is fine)."""
        self._forget(name)
        try:
            os.unlink(self.directory / name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if not quiet:  # quiet: the caller already reported the error that led here
                self._error("remove", self.directory / name, exc)

    def remove_symbol(self, symbol: str) -> set[str]:
        """Delete every file of ``symbol``; return their names."""
        prefix = symbol_prefix(symbol)
        removed = set()
        for name in self._list():
            if name.startswith(prefix) and name.endswith(SUFFIX):
                self.remove(name)
                removed.add(name)
        return removed

    def clear(self) -> None:
        """Delete every cache file and temporary file."""
        for name in self._list():
            if name.endswith(SUFFIX) or name.startswith(TEMP_PREFIX):
                self.remove(name)

    def _list(self) -> list[str]:
        try:
            return os.listdir(self.directory)
        except OSError as exc:
            self._error("list", self.directory, exc)
            return list(self._files)

    def _error(self, action: str, path: Path, exc: OSError) -> None:
        self._counts["disk_errors"] += 1
        logger.warning("cache cannot %s %s: %s", action, path, exc)

    def _forget(self, name: str) -> None:
        size = self._files.pop(name, None)
        if size is not None:
            self.nbytes -= size

    @staticmethod
    def _write_atomic(path: Path, chunks: list[bytes]) -> None:
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as file:
                file.writelines(chunks)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    @staticmethod
    def _drop_stale_temp(item: os.DirEntry[str]) -> None:
        """Remove a temporary file left by a crash (an hour old, so not a live write)."""
        try:
            if time.time() - item.stat(follow_symlinks=False).st_mtime > _STALE_TEMP_S:
                os.unlink(item.path)
        except OSError as exc:
            logger.warning("cannot remove stale cache temp file %s: %s", item.path, exc)
