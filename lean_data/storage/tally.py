"""Quality tallies of stored rows: counts per level and the average score, overall and per
feed (:meth:`~lean_data.storage.queries.Queries.quality_summary`)."""

from __future__ import annotations

from typing import Any, Final

from lean_data.quality.levels import DataQualityLevel
from lean_data.storage import schema as sch

__all__ = ["fold_quality"]

_LEVEL_NAMES: Final = (*(level.name for level in DataQualityLevel), "UNSCORED")


class _QualityTally:
    """Row counts per quality level and the sum of scores, for quality_summary."""

    def __init__(self) -> None:
        self.levels = dict.fromkeys(_LEVEL_NAMES, 0)
        self.scored = 0
        self.score_sum = 0.0

    def add(self, level: str | None, count: int, score_sum: float) -> None:
        self.levels[level or "UNSCORED"] += count
        if level is not None:
            self.scored += count
            self.score_sum += score_sum

    def as_dict(self) -> dict[str, Any]:
        average = self.score_sum / self.scored if self.scored else None
        return {"rows": sum(self.levels.values()), "average_score": average, "levels": self.levels}


def fold_quality(rows: list[sch.Row]) -> dict[str, Any]:
    """Fold ``QUALITY_BY_FEED`` rows into overall and per-feed tallies."""
    total = _QualityTally()
    feeds: dict[str, _QualityTally] = {}
    for feed, level, count, score_sum in rows:
        for tally in (total, feeds.setdefault(feed, _QualityTally())):
            tally.add(level, count, score_sum)
    return total.as_dict() | {"feeds": {name: feeds[name].as_dict() for name in sorted(feeds)}}
