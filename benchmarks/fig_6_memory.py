"""Figure 6: memory. Peak RSS with 1M bars held in ring buffers; RSS during a slow-subscriber soak.

Every measurement runs in a fresh interpreter (this file run as a script, ``PYTHONPATH`` set
to the checkout), so its RSS holds nothing but the workload. Bars are the FTX BTC-PERP
1-minute bars of ``nautilus_trader/btc-perp-20211231-20220201_1m.csv`` (45,031 real bars),
replicated with shifted timestamps; each bar is built as a feed builds it, with its own
float and int objects (the values are read from a compact array, never shared between bars),
and ``emit()`` stamps its receive time.

(a) **1M bars in ring buffers over 1,000 symbols**: ``DataEngine(Config(db_path=None,
buffer_size=1000))``, 1,000 crypto symbols subscribed, 1,000 bars each emitted round-robin
through the whole pipeline (validate, score, continuity, buffer); peak RSS (``ru_maxrss``)
once every bar is buffered. Baselines: the same 1M TradeBar objects built the same way and
kept in a plain ``list``; an empty interpreter with ``lean_data`` imported.

(b) **Soak with a subscriber 10x too slow**: a feed emits at 10k msg/s over 10 symbols
(ticks of 1 ms; under BLOCK the backpressure slows it to the subscriber's pace) into
``DataEngine(Config(db_path=None, buffer_size=1000))`` with one async callback that takes
exactly 10 / 10k s per message on average, for ``ctx.soak_s`` seconds, once under the default
BLOCK policy and once under DROP_OLDEST (the two run side by side in two processes). RSS is
sampled over time; after a warm-up (a quarter of the soak, at most 60 s: queues, buffers and
rolling windows fill) it must stay within 10% of its value at the end of the warm-up.

Target (issue 5): <= 200 MiB for 1M buffered bars; RSS flat (+-10%) during the soak.
"""

from __future__ import annotations

import array
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import BarFeed

from lean_data import Config, DataEngine, TradeBar
from lean_data.config import OverflowPolicy
from lean_data.models import MarketData, with_ts_recv

if TYPE_CHECKING:
    from _common import Context, Result

NAME = "memory: 1M buffered bars, slow-subscriber soak"

DATA = "nautilus_trader/btc-perp-20211231-20220201_1m.csv"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_MINUTE = 60 * 10**9
_TARGET_MIB = 200.0
_FLAT = 0.10
_SOAK_RATE = 10_000.0
_SOAK_SYMBOLS = 10
_SLOWER = 10.0


# ---------------------------------------------------------------------------- both sides
class Bars:
    """Real OHLCV rows (a flat array of 5 floats per row) turned into fresh TradeBars.

    Symbol ``k`` starts at row ``k * stride`` and walks the rows in order, wrapping around
    with shifted times, so each symbol's series is gap-free and increasing.
    """

    def __init__(self, values: array.array[float], start_ns: int, symbols: list[str]) -> None:
        self.values = values
        self.rows = len(values) // 5
        self.start = start_ns
        self.symbols = symbols
        self.stride = max(1, self.rows // len(symbols))

    def bar(self, k: int, i: int) -> TradeBar:
        """Bar ``i`` of symbol ``k``: new float and int objects, as a parser makes them."""
        n = k * self.stride + i
        base = 5 * (n % self.rows)
        v = self.values
        return TradeBar(
            self.symbols[k],
            self.start + n * _MINUTE,
            v[base],
            v[base + 1],
            v[base + 2],
            v[base + 3],
            v[base + 4],
        )

    def round_robin(self, per_symbol: int) -> Iterator[TradeBar]:
        """Every symbol's bar 0, then every symbol's bar 1, ..."""
        for i in range(per_symbol):
            for k in range(len(self.symbols)):
                yield self.bar(k, i)


def rss_mib() -> float:
    """Current RSS of this process, MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    """Peak RSS of this process, MiB: ``VmHWM`` of /proc/self/status.

    Not ``ru_maxrss``: Linux carries that over from the parent across fork and exec, so a
    child of a large runner would report the runner's size.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("expected a VmHWM line in /proc/self/status, found none")


# ---------------------------------------------------------------------------- children
def symbols_for(count: int) -> list[str]:
    """``count`` distinct crypto symbols (``C0000/USD`` ...)."""
    return [f"C{k:04d}/USD" for k in range(count)]


async def fill_engine(bars: Bars, per_symbol: int) -> dict[str, Any]:
    """Emit every bar through the engine; measure once all of them are buffered."""
    engine = DataEngine(Config(db_path=None, buffer_size=per_symbol))
    feed = BarFeed("ftx")
    engine.add_feed(feed)
    await engine.start()
    for symbol in bars.symbols:
        await engine.subscribe_symbol(symbol)
    emit = feed.emit
    for bar in bars.round_robin(per_symbol):
        await emit(bar)
    await engine.wait_idle()
    out: dict[str, Any] = {"rss": rss_mib(), "peak": peak_mib()}
    out["held"] = sum(len(engine.get_latest(s, per_symbol)) for s in bars.symbols)
    out["invalid"] = engine.get_metrics()["engine"]["invalid"]
    await engine.stop()
    return out


def fill_list(bars: Bars, per_symbol: int) -> dict[str, Any]:
    """The same bars, receive time stamped as emit does, kept in a plain list."""
    kept: list[TradeBar] = []
    for bar in bars.round_robin(per_symbol):
        kept.append(with_ts_recv(bar, time.time_ns()))
    return {"rss": rss_mib(), "peak": peak_mib(), "held": len(kept)}


async def soak(bars: Bars, policy: str, seconds: float, every: float) -> dict[str, Any]:
    """Feed at 10k msg/s into a subscriber 10x slower; sample RSS every ``every`` s."""
    loop = asyncio.get_running_loop()
    engine = DataEngine(
        Config(
            db_path=None,
            buffer_size=1000,
            overflow_policy=OverflowPolicy(policy),
            stop_timeout_s=1.0,
        )
    )
    feed = BarFeed("ftx")
    engine.add_feed(feed)
    interval = _SLOWER / _SOAK_RATE
    due = 0.0

    async def slow(symbol: str, data: MarketData, quality: Any) -> None:
        nonlocal due
        now = loop.time()
        due = max(due, now - 0.1) + interval  # paced on average; no burst after idling
        if due > now:
            await asyncio.sleep(due - now)

    subscriber = engine.add_data_callback(slow)
    assert subscriber is not None
    await engine.start()
    for symbol in bars.symbols:
        await engine.subscribe_symbol(symbol)
    samples: list[tuple[float, float, int, int, int]] = []
    produced = 0
    start = loop.time()

    async def sample() -> None:
        while True:
            samples.append(
                (loop.time() - start, rss_mib(), produced, subscriber.delivered, subscriber.dropped)
            )
            await asyncio.sleep(every)

    sampler = asyncio.create_task(sample())
    nsym = len(bars.symbols)
    emit = feed.emit
    end = start + seconds
    while (now := loop.time()) < end:
        due_count = int((now - start) * _SOAK_RATE)
        while produced < due_count and (produced % 100 or loop.time() < end):
            await emit(bars.bar(produced % nsym, produced // nsym))  # waits under BLOCK
            produced += 1
        await asyncio.sleep(0.001)
    sampler.cancel()
    samples.append(
        (loop.time() - start, rss_mib(), produced, subscriber.delivered, subscriber.dropped)
    )
    await engine.stop()
    return {"policy": policy, "samples": samples, "peak": peak_mib(), "seconds": seconds}


def child_main(argv: list[str]) -> None:
    """Run one measurement (``empty``, ``list``, ``engine`` or ``soak``); print JSON."""
    mode, values_path, start_ns, nsym, per_symbol = argv[:5]
    out: dict[str, Any]
    if mode == "empty":
        out = {"rss": rss_mib(), "peak": peak_mib()}
    else:
        values: array.array[float] = array.array("d")
        with open(values_path, "rb") as handle:
            values.frombytes(handle.read())
        bars = Bars(values, int(start_ns), symbols_for(int(nsym)))
        if mode == "list":
            out = fill_list(bars, int(per_symbol))
        elif mode == "engine":
            out = asyncio.run(fill_engine(bars, int(per_symbol)))
        else:
            policy, seconds, every = argv[5], float(argv[6]), float(argv[7])
            out = asyncio.run(soak(bars, policy, seconds, every))
    import json  # after measuring: nothing the measurement did not need is loaded before

    print(json.dumps(out))


# ---------------------------------------------------------------------------- parent
def _command(args: list[str]) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) if not path else f"{ROOT}{os.pathsep}{path}"
    return [sys.executable, str(Path(__file__).resolve()), "--child", *args], env


def _finish(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    import json

    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(
            f"figure 6 child {what!r} exited {proc.returncode}, expected 0: {stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def _start(args: list[str]) -> subprocess.Popen[str]:
    cmd, env = _command(args)
    return subprocess.Popen(
        cmd, env=env, cwd=tempfile.gettempdir(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _child(args: list[str]) -> dict[str, Any]:
    return _finish(_start(args), args[0])


def write_values(csv_path: Path, target: Path) -> int:
    """Store the CSV's OHLCV as a flat float array for the children; return the first time."""
    from fig_3_queue import load_rows

    rows = load_rows(csv_path)
    values = array.array("d")
    for _, o, h, lo, c, v in rows:
        values.extend((float(o), float(h), float(lo), float(c), float(v)))
    target.write_bytes(values.tobytes())
    return rows[0][0]


def flatness(samples: list[list[float]], warmup_s: float) -> dict[str, float]:
    """Start, end and max RSS, the reference after warm-up and the largest deviation from it."""
    rss = [s[1] for s in samples]
    after = [s[1] for s in samples if s[0] >= warmup_s] or rss[-1:]
    ref = after[0]
    return {
        "start": rss[0],
        "end": rss[-1],
        "max": max(rss),
        "ref": ref,
        "max_dev": max(abs(x - ref) for x in after) / ref,
    }


def run(ctx: Context) -> list[Result]:
    """Measure figure 6 and return its result rows."""
    from _common import Result

    csv_path = ctx.require_data(DATA)
    nsym = ctx.scale(1_000, 20)
    per_symbol = ctx.scale(1_000, 50)
    soak_s = min(ctx.soak_s, 2.0) if ctx.quick else ctx.soak_s
    warmup_s = min(60.0, soak_s / 4)
    every = max(0.2, min(5.0, soak_s / 120))
    with tempfile.TemporaryDirectory() as tmp:
        values = Path(tmp) / "ftx_btc_perp_ohlcv.f64"
        start = str(write_values(csv_path, values))
        common = [str(values), start]
        soak_args = [str(_SOAK_SYMBOLS), "0"]
        soaks = {
            policy: _start(["soak", *common, *soak_args, policy, str(soak_s), str(every)])
            for policy in (OverflowPolicy.BLOCK.value, OverflowPolicy.DROP_OLDEST.value)
        }
        empty = _child(["empty", *common, "0", "0"])
        listed = _child(["list", *common, str(nsym), str(per_symbol)])
        engine = _child(["engine", *common, str(nsym), str(per_symbol)])
        soaked = {policy: _finish(proc, f"soak {policy}") for policy, proc in soaks.items()}
    total = nsym * per_symbol
    if engine["held"] != total or listed["held"] != total:
        raise RuntimeError(
            f"expected {total:,} bars held, found {engine['held']:,} in the engine's buffers "
            f"and {listed['held']:,} in the list"
        )
    per_bar = (engine["peak"] - empty["peak"]) * 2**20 / total
    per_bar_list = (listed["peak"] - empty["peak"]) * 2**20 / total
    out = [
        Result(
            f"6 {total:,} bars in ring buffers ({nsym:,} symbols)", "peak RSS MiB",
            engine["peak"], f"{total:,} TradeBars in a list", listed["peak"],
            higher_is_better=False, target=f"<= {_TARGET_MIB:.0f} MiB",
            met=None if ctx.quick else engine["peak"] <= _TARGET_MIB,
            notes=f"empty interpreter + lean_data {empty['peak']:.1f} MiB; net "
            f"{per_bar:.0f} B/bar (list {per_bar_list:.0f} B/bar); {engine['invalid']} invalid",
            extra={"engine": engine, "list": listed, "empty": empty},
        )
    ]  # fmt: skip
    for policy, got in soaked.items():
        flat = flatness(got["samples"], warmup_s)
        last = got["samples"][-1]
        produced, delivered, dropped = last[2], last[3], last[4]
        out.append(
            Result(
                f"6 soak {soak_s:.0f}s, subscriber 10x slow, {policy}", "RSS MiB at end",
                flat["end"], f"RSS after {warmup_s:.0f}s warm-up", flat["ref"],
                higher_is_better=False, target="flat +-10% after warm-up",
                met=None if ctx.quick else flat["max_dev"] <= _FLAT,
                notes=f"start {flat['start']:.1f}, max {flat['max']:.1f}, max deviation "
                f"{flat['max_dev']:.1%}; emitted {produced:,} ({produced / soak_s:,.0f}/s), "
                f"delivered {delivered:,} ({delivered / soak_s:,.0f}/s), dropped {dropped:,}",
                extra={"flatness": flat, "samples": got["samples"], "peak": got["peak"]},
            )
        )  # fmt: skip
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
