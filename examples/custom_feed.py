"""A complete custom feed: JSON trade messages over a websocket.

``JsonTradeFeed`` is what a user writes for a new source: parsing is a pure function
(``parse_trade``), the feed is a thin asyncio shell that connects, subscribes, and calls
``await self.emit(...)``. To run offline, this script also starts a small websocket server
on 127.0.0.1 that streams real SPY minute closes (from the bundled LEAN data) as trades.

Run: python examples/custom_feed.py
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import websockets

from lean_data import AssetClass, Config, DataEngine, DataFeed, Resolution, Tick
from lean_data.cli import DEMO_DATA
from lean_data.loaders import iter_file


def parse_trade(message: dict[str, Any]) -> Tick:
    """Turn one ``{"type": "trade", "s", "t", "p", "q"}`` message into a Tick (pure)."""
    if message.get("type") != "trade":
        raise ValueError(f"expected a trade message, got type {message.get('type')!r}")
    return Tick(
        symbol=message["s"],
        ts_event=int(message["t"]),
        price=float(message["p"]),
        size=float(message["q"]),
    )


class JsonTradeFeed(DataFeed):
    """Trades from a websocket speaking ``{"op": "subscribe", "symbol": ...}``."""

    asset_classes = frozenset({AssetClass.EQUITY})

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name)
        self.url = url
        self.ws: Any = None

    async def connect(self) -> bool:
        self.ws = await websockets.connect(self.url)
        self.spawn(self._read(), name="reader")
        return True

    async def disconnect(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def subscribe(self, symbol: str) -> bool:
        await self.ws.send(json.dumps({"op": "subscribe", "symbol": symbol}))
        return True

    async def unsubscribe(self, symbol: str) -> bool:
        await self.ws.send(json.dumps({"op": "unsubscribe", "symbol": symbol}))
        return True

    async def get_historical_data(
        self,
        symbol: str,
        start_date: datetime | int,
        end_date: datetime | int,
        resolution: Resolution,
    ) -> list[Any]:
        return []  # this source has no history

    async def _read(self) -> None:
        async for raw in self.ws:
            try:
                tick = parse_trade(json.loads(raw))
            except (ValueError, KeyError) as exc:
                self.report_error("malformed_message", f"{exc}: {raw[:80]!r}")
                continue
            await self.emit(tick)


async def serve_spy(websocket: Any) -> None:
    """A tiny source: on subscribe, stream real SPY closes as trades, then one bad frame."""
    request = json.loads(await websocket.recv())
    bars = iter_file(DEMO_DATA / "lean/equity/usa/minute/spy/20131007_trade.zip")
    for bar in bars:
        await websocket.send(
            json.dumps(
                {
                    "type": "trade",
                    "s": request["symbol"],
                    "t": bar.ts_event,
                    "p": bar.close,
                    "q": bar.volume,
                }
            )
        )
    await websocket.send("{not json")  # the feed counts it and carries on
    last = {"type": "trade", "s": "SPY", "t": LAST_TS, "p": 168.0, "q": 1}
    await websocket.send(json.dumps(last))


LAST_TS = 1381190400000000000  # 2013-10-08 00:00 UTC, after the day's bars


async def main() -> None:
    received: list[Tick] = []
    done = asyncio.Event()

    def on_trade(symbol: str, tick: Tick, quality: object) -> None:
        received.append(tick)
        if tick.ts_event == LAST_TS:
            done.set()

    async with websockets.serve(serve_spy, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        feed = JsonTradeFeed("json_ws", f"ws://127.0.0.1:{port}")
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(feed)
            engine.add_data_callback(on_trade)
            await engine.subscribe_symbol("SPY")
            await asyncio.wait_for(done.wait(), timeout=30)
            last = received[-1]
            print(
                f"received {len(received)} trades, last {last.time:%Y-%m-%d %H:%M:%S} "
                f"{last.symbol} {last.price} x {last.size:g}"
            )
            print(f"feed errors counted: {feed.get_connection_status()['errors']}")


if __name__ == "__main__":
    asyncio.run(main())
