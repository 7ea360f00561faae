"""``lean-data collect`` and ``lean-data serve``: one collector, many consumers.

``lean-data collect`` records feeds into storage and publishes every accepted item to
NATS JetStream (``--bus``); its feeds are files replayed at ``--speed`` (``--demo``: the
bundled real data) and/or Binance's public streams (``--binance SYMBOL...``, no
credentials). It ends when the files are replayed (live streams: at ``--duration`` or
Ctrl-C), after the bus publisher handed on its backlog, and prints what was delivered,
published and stored.

``lean-data serve`` runs the WebSocket gateway (``/``, ``/ws``, ``/metrics``, ``/health``,
``/ready``) over an engine whose feed is the bus (``--bus`` with ``--symbols``, a durable
consumer that resumes where it stopped) and/or files; it runs until Ctrl-C. The gateway's
bearer token comes from the environment variable named by ``--token-env`` (default
``LEAN_DATA_GATEWAY_TOKEN``), never from the command line, where ``ps`` would show it.
See docs/distribution.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lean_data.cli.run import Storing
from lean_data.engine import DataEngine, runner
from lean_data.errors import ConfigError
from lean_data.feeds.base import DataFeed
from lean_data.feeds.replay import ReplayFeed

__all__ = ["add_parsers", "run"]

DEFAULT_BUS = "nats://127.0.0.1:4222"
TOKEN_ENV = "LEAN_DATA_GATEWAY_TOKEN"


def add_parsers(sub: Any, common: Any) -> None:
    """Add the ``collect`` and ``serve`` commands to the ``lean-data`` parser.

    ``common(parser, default_output)`` adds the options every command shares.
    """
    collect = sub.add_parser(
        "collect", help="record feeds into storage and publish them to NATS JetStream"
    )
    _sources(collect)
    collect.add_argument(
        "--binance",
        nargs="+",
        default=[],
        metavar="SYMBOL",
        help="also record these symbols' 1m klines from Binance's public streams (e.g. BTCUSDT)",
    )
    collect.add_argument("--binance-ws-url", default=None, help=argparse.SUPPRESS)
    collect.add_argument("--binance-rest-url", default=None, help=argparse.SUPPRESS)
    collect.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop live streams after this many seconds (default: until Ctrl-C)",
    )
    _bus(collect, required=False)
    collect.add_argument(
        "--stop-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="at the end, wait at most this long for the bus to take its backlog (what it "
        "could not take is counted in the summary; default: stop_timeout_s of --config, 30)",
    )
    collect.add_argument(
        "--serve",
        default=None,
        metavar="HOST:PORT",
        help="also run the WebSocket gateway there while collecting",
    )
    _token(collect)
    common(collect, "lean_data_collect")
    serve = sub.add_parser("serve", help="serve bars to WebSocket clients, /metrics and /ready")
    _sources(serve)
    _bus(serve, required=False)
    serve.add_argument(
        "--symbols", nargs="+", default=[], metavar="SYMBOL", help="the bus symbols to serve"
    )
    serve.add_argument(
        "--durable",
        default="lean-data-serve",
        help="the bus consumer's durable name: a restarted serve resumes where it stopped",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free)")
    _token(serve)
    common(serve, "lean_data_serve")


def _sources(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE", help="files to replay")
    parser.add_argument("--demo", action="store_true", help="replay the bundled real data")


def _bus(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--bus",
        default=os.environ.get("LEAN_DATA_BUS_URL") or None,
        required=required,
        metavar="URL",
        help=f"NATS server with JetStream, e.g. {DEFAULT_BUS} (default: $LEAN_DATA_BUS_URL)",
    )
    parser.add_argument("--prefix", default="lean", help="subject prefix (default: lean)")
    parser.add_argument(
        "--stream", default=None, help="JetStream stream name (default: from the prefix)"
    )


def _token(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        metavar="VAR",
        help=f"environment variable holding the gateway's bearer token (default: {TOKEN_ENV}; "
        "unset: no token asked)",
    )


def run(args: argparse.Namespace, replay: ReplayFeed | None, storing: Storing) -> int:
    """Run ``collect`` or ``serve`` with the checked replay feed (None without files)."""
    if args.command == "collect":
        if replay is None and not args.binance:
            raise ConfigError("collect needs something to record: FILE..., --demo or --binance")
        return runner.run(_collect(args, replay, storing), config=storing.base)
    if replay is None and not (args.bus and args.symbols):
        raise ConfigError(
            "serve needs data: --bus URL --symbols SYMBOL... (a collector's bus), FILE... or --demo"
        )
    return runner.run(_serve(args, replay, storing), config=storing.base)


async def _collect(args: argparse.Namespace, replay: ReplayFeed | None, storing: Storing) -> int:
    config = storing.config()
    if args.stop_timeout is not None:
        if not args.stop_timeout > 0:
            raise ConfigError(f"--stop-timeout: expected seconds > 0, got {args.stop_timeout}")
        config = dataclasses.replace(config, stop_timeout_s=args.stop_timeout)
    engine = DataEngine(config)
    feeds: list[DataFeed] = [] if replay is None else [replay]
    live = _binance(args)
    if live is not None:
        feeds.append(live)
    for feed in feeds:
        engine.add_feed(feed)
        symbols = replay.symbols if feed is replay and replay is not None else args.binance
        for symbol in symbols:
            await engine.subscribe_symbol(symbol, feed.name)
    publisher = _publisher(args)
    if publisher is not None:
        engine.add_sink(publisher)
    stop = asyncio.Event()
    with _stopping_on_signals(stop):
        async with engine:
            gateway = None
            if args.serve:
                host, _, port = args.serve.rpartition(":")
                gateway = await engine.serve(host or "127.0.0.1", int(port), token=_secret(args))
                _say(f"gateway: {gateway.url}")
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
            if replay is not None and live is None:
                waits.append(asyncio.ensure_future(replay.wait_finished()))
            elif args.duration is not None:
                waits.append(asyncio.ensure_future(asyncio.sleep(args.duration)))
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await engine.wait_idle()
    _summary(engine.get_metrics(), storing, args.bus)
    return 0


async def _serve(args: argparse.Namespace, replay: ReplayFeed | None, storing: Storing) -> int:
    config = dataclasses.replace(storing.config(), db_path=None, database_url=None)  # no storage
    engine = DataEngine(config)
    if replay is not None:
        engine.add_feed(replay)
        for symbol in replay.symbols:
            await engine.subscribe_symbol(symbol, replay.name)
    if args.bus and args.symbols:
        from lean_data.bus import BusFeed

        bus = BusFeed("bus", args.bus, prefix=args.prefix, stream=args.stream, durable=args.durable)
        engine.add_feed(bus)
        for symbol in args.symbols:
            await engine.subscribe_symbol(symbol, bus.name)
    stop = asyncio.Event()
    with _stopping_on_signals(stop):
        async with engine:
            gateway = await engine.serve(args.host, args.port, token=_secret(args))
            _say(f"serving {gateway.url} (Ctrl-C stops)")
            await stop.wait()
    return 0


def _binance(args: argparse.Namespace) -> DataFeed | None:
    if not args.binance:
        return None
    from lean_data.feeds.binance import BINANCE_REST_URL, BINANCE_WS_URL, BinanceDataFeed

    return BinanceDataFeed(
        "binance",
        ws_url=args.binance_ws_url or BINANCE_WS_URL,
        rest_url=args.binance_rest_url or BINANCE_REST_URL,
    )


def _publisher(args: argparse.Namespace) -> Any:
    if not args.bus:
        return None
    from lean_data.bus import BusPublisher

    return BusPublisher(args.bus, prefix=args.prefix, stream=args.stream)


def _secret(args: argparse.Namespace) -> str | None:
    return os.environ.get(args.token_env) or None


@contextlib.contextmanager
def _stopping_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (the engine then stops cleanly: nothing lost)."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _summary(metrics: dict[str, Any], storing: Storing, bus: str | None) -> None:
    engine = metrics.get("engine", {})
    outcomes = engine.get("outcomes", {})
    shown = "  ".join(f"{name} {count:,}" for name, count in outcomes.items() if count)
    _say(f"items: {shown or 'none'}")
    for name, stats in metrics.get("sinks", {}).items():
        _say(f"sink {name}: " + "  ".join(_shown(k, v) for k, v in stats.items() if v != ""))
    storage = metrics.get("storage", {})
    _say(f"storage rows written (bars, metrics, errors): {storage.get('rows_written', 0):,}")
    if bus is None:
        _say("bus: none (pass --bus URL to publish)")
    _say("\n".join(storing.lines()))


def _shown(key: str, value: object) -> str:
    if isinstance(value, bool):
        return f"{key} {'yes' if value else 'no'}"
    if isinstance(value, int):
        return f"{key} {value:,}"
    return f"{key} {value}"
