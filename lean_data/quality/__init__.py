"""Data quality: the verdict on every item.

It owns the quality levels and verdicts (:mod:`~lean_data.quality.levels`), the stateless
screen every item passes first (:mod:`~lean_data.quality.screen`), the value rules
(:mod:`~lean_data.quality.rules`), the stateful checks against a series' recent window
(:mod:`~lean_data.quality.checks`, :mod:`~lean_data.quality.state`), the validator that
combines them (:mod:`~lean_data.quality.validator`) and the per-series quality counters
(:mod:`~lean_data.quality.tracker`). Pure and synchronous; imports only the core modules.
"""

from lean_data.quality.levels import DataQualityLevel, Verdict
from lean_data.quality.tracker import QualityTracker
from lean_data.quality.validator import DataValidator

__all__ = ["DataQualityLevel", "DataValidator", "QualityTracker", "Verdict"]
