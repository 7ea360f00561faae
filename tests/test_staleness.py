"""The staleness judgement, apart from any connection: StalenessWatch.check is pure."""

from __future__ import annotations

from lean_data.feeds.staleness import Stale, StalenessWatch

S = 1_000_000_000


def _watch(
    cadences: dict[str, float], closed: set[str], last_seen: dict[str, int]
) -> StalenessWatch:
    def stale_after_s(symbol: str, now_ns: int) -> float | None:
        return None if symbol in closed else 3 * cadences[symbol]

    return StalenessWatch(cadences.get, stale_after_s, last_seen)


def test_silence_longer_than_the_window_is_stale_and_names_the_symbol() -> None:
    watch = _watch({"BTCUSDT": 1.0, "ETHUSDT": 1.0}, set(), {"BTCUSDT": 10 * S})
    # ETHUSDT never sent: it is judged from its subscription time (0), BTCUSDT from 10 s.
    assert watch.check({"BTCUSDT": 0, "ETHUSDT": 0}, 4 * S) == (Stale("ETHUSDT", 4.0, 3.0), None)
    assert watch.check({"BTCUSDT": 0}, 12 * S) == (None, 1 * S)


def test_symbols_without_a_cadence_are_never_judged() -> None:
    watch = _watch({}, set(), {})
    assert watch.check({"SPY": 0}, 10**6 * S) == (None, None)


def test_a_closed_market_pauses_the_clock_until_it_reopens() -> None:
    closed = {"SPY"}
    watch = _watch({"SPY": 60.0}, closed, {})
    assert watch.check({"SPY": 0}, 1000 * S) == (None, 60 * S)  # look again within a cadence
    closed.clear()  # it opens: silence counts from the last time it was seen closed
    assert watch.check({"SPY": 0}, 1100 * S) == (None, 80 * S)
    assert watch.check({"SPY": 0}, 1181 * S) == (Stale("SPY", 181.0, 180.0), None)
