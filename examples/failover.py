"""Two Binance feeds for one symbol: the first goes silent, the engine fails over and back.

Runs offline: two loopback Binance servers on 127.0.0.1 replay real BTC/BUSD minute candles
(the bundled demo data). The primary server goes silent on an open socket after five candles;
its feed reports the subscription stale after 3x its cadence, the engine switches BTC/BUSD to
the backup feed (backfilling the candles the switch skipped from the backup's history), and
when the primary recovers the engine switches back; every candle is printed once, in order::

    python examples/failover.py
"""

from __future__ import annotations

import asyncio

from lean_data import BackoffPolicy, BinanceDataFeed, Config, DataEngine, TradeBar
from lean_data.cli import DEMO_DATA
from lean_data.loaders import load_file
from lean_data.testing import BinanceLoopbackServer, ServerFaults, kline_event

SYMBOL, STREAM = "BTC/BUSD", "btcbusd@kline_1m"
CANDLES = DEMO_DATA / "lean/crypto/binance/minute/btcbusd/20221213_trade.zip"


def serve(server: BinanceLoopbackServer, bars: list[TradeBar]) -> None:
    for bar in bars:
        server.push(STREAM, kline_event("BTCBUSD", bar, closed=True))


async def main() -> None:
    bars = [b for b in load_file(CANDLES) if isinstance(b, TradeBar)][:40]
    async with (
        BinanceLoopbackServer(resume=True, klines={"BTCBUSD": bars}) as primary_venue,
        BinanceLoopbackServer(resume=True, klines={"BTCBUSD": bars}) as backup_venue,
    ):
        serve(primary_venue, bars)
        serve(backup_venue, bars[10:])  # the backup is "live" from candle 10
        primary_venue.faults.silent_after = 5
        fast = BackoffPolicy(base_s=0.05, cap_s=0.5)
        primary = BinanceDataFeed(
            "primary",
            ws_url=primary_venue.ws_url,
            rest_url=primary_venue.rest_url,
            cadence_s=0.2,
            backoff=fast,
        )
        backup = BinanceDataFeed(
            "backup", ws_url=backup_venue.ws_url, rest_url=backup_venue.rest_url, backoff=fast
        )
        async with DataEngine(Config(db_path=None)) as engine:
            engine.add_feed(primary)
            engine.add_feed(backup)
            engine.add_data_callback(
                lambda symbol, bar, quality: print(f"{symbol} {bar.ts_event} close {bar.close}")
            )
            await engine.subscribe_symbol(SYMBOL)
            while engine.failover.switches == 0:  # noqa: ASYNC110  # poll the engine's counter
                await asyncio.sleep(0.05)
            primary_venue.faults = ServerFaults(silent_after=0)  # still silent after reconnects
            await asyncio.sleep(0.5)  # let the backup carry the symbol for a while
            primary_venue.faults = ServerFaults()  # the primary venue recovers
            while engine.failover.switch_backs == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            for switch in engine.get_metrics()["failover"]["history"]:
                print(f"switch {switch['from']} -> {switch['to']}: {switch['reason']}")


if __name__ == "__main__":
    asyncio.run(main())
