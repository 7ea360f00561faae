"""The read loop of the Binance feeds: each socket read's frames decoded in order and handed
over with one ``emit_many`` (compiled).

:meth:`BinanceDataFeed.run_session <lean_data.feeds.binance.BinanceDataFeed.run_session>`
runs :func:`read_frames` for as long as the connection lasts. Every frame of the stream
passes this loop, so it is compiled with the hot path; the feed itself (its I/O, its
hooks, its subclasses) stays plain Python and is called back through its methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lean_data.errors import FeedError, FeedProtocolError
from lean_data.feeds.intake import FeedIntake, hand_over
from lean_data.native import time_ns
from lean_data.wire.binance import ParsedMessage, take_items

__all__ = ["read_frames"]

_NOW: Final = time_ns


async def read_frames(feed: Any, ws: Any, venue: Mapping[str, str], fast: bool) -> None:
    """Read ``ws`` until the connection ends, handing each read's items to ``feed``.

    What one read gave is decoded in order: the frames the transport already holds
    (``ws.take_ready()``, when it has that method and some are there), else what
    ``await ws.recv_batch()`` gives (``[]``: the connection ended); with ``fast`` (the feed
    decodes and picks items the base feed's way), the plain data frames in one compiled
    loop (:func:`~lean_data.wire.binance.take_items`, ``venue`` the feed's symbol map, read
    as it grows); every other frame with ``feed.parse_frame`` and ``feed.item_of``. A frame
    that does not decode is counted and reported by ``feed.skip_malformed`` and the read
    goes on. The read's items go over with one ``feed.emit_many``.

    Raises:
        FeedError: a venue error that ends the session (from ``feed.item_of``), after the
            items decoded before it were handed over.
    """
    parse_frame = feed.parse_frame
    item_of = feed.item_of
    # the base emit_many (not overridden): its waitless part called here, no coroutine a read
    plain = type(feed).emit_many is FeedIntake.emit_many
    # the feed as its compiled base: its engine's door is then a native read, each read
    intake: FeedIntake = feed
    items: list[Any] = []
    # bound once: compiled, ws.recv_batch() is a method lookup by name on every read
    recv_batch = ws.recv_batch
    # what a transport already received, taken without a coroutine a read (None or empty:
    # nothing is); recv_batch() is awaited only when nothing waits
    take_ready = getattr(ws, "take_ready", None)
    while True:
        frames: Any = None if take_ready is None else take_ready()
        if not frames:
            frames = await recv_batch()
            if not frames:
                return
        if type(frames) is not list:  # a transport's own sequence: read by index below
            frames = list(frames)
        # the read's receipt time, for its items and the hand-over: one clock read, kept as
        # the int object it is (passed on, a native int would be boxed at every call)
        now: Any = _NOW()
        # the last read's list serves again when the engine's door took its items: the door
        # keeps copies (a batch's own list, or the one item), never the list; any other
        # sink may keep it, so it gets a new one
        if plain and intake._intake is not None:
            items.clear()
        else:
            items = []
        index, count = 0, len(frames)
        while index < count:
            message: Any = None
            if fast:
                index, message = take_items(frames, index, now, venue, items)
                if index == count:
                    break
            raw = frames[index]
            index += 1
            if message is None:
                try:
                    message = parse_frame(raw, now)
                except FeedProtocolError as exc:
                    feed.skip_malformed(raw, exc)
                    continue
            if isinstance(message, ParsedMessage):
                try:
                    item = item_of(message, raw, now)
                except FeedError:
                    await feed.emit_many(items)  # what came before the error is kept
                    raise
                if item is not None:
                    items.append(item)
            else:
                items.append(message)
        if not plain:
            await feed.emit_many(items)
        elif (waiting := hand_over(feed, items, now)) is not None:  # the inbox has no room yet
            await feed._sink.accept_many(feed.name, waiting)
