"""Figure 2: Binance aggTrade frames -> BinanceDataFeed parsing -> engine, messages per second.

The same paths, baselines and peer as figure 1 (see ``fig_1_kline.py``), on trade ticks:
the real ``aggTrade`` frames of the cryptofeed captures of Binance spot, Binance.US and
USDT-M futures (104 frames, 7 symbols) replicated to volume round-robin over the symbols.
The i-th frame of a symbol is a copy of that symbol's real frames in turn (price, quantity,
maker flag and key order untouched) with the aggregate id ``a`` = first recorded id + i,
the trade ids ``f``/``l`` moved past the previous frame's, the trade time ``T`` = first
recorded time + i x 100 ms and the event time ``E`` keeping its recorded lag behind ``T``:
every trade is distinct and in order. The engine validates and scores each tick, buffers
it and calls the three callbacks; cryptofeed's peer path is ``Binance.message_handler``
(its decode, its trade parser, one async callback).
"""

from __future__ import annotations

from _common import Context, Result
from fig_1_kline import FULL_FRAMES, QUICK_FRAMES, agg_trade_workload, ingest_results

NAME = "Binance aggTrade frames -> BinanceDataFeed parsing -> engine (msg/s)"


def run(ctx: Context) -> list[Result]:
    workload = agg_trade_workload(ctx, ctx.scale(FULL_FRAMES, QUICK_FRAMES))
    return ingest_results("2 aggTrade frames -> engine", workload, ctx, "aggTrade")
