"""Config.from_env: what each variable accepts, what it refuses, and the doc of every field."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from lean_data.config import Config, OverflowPolicy, ValidationConfig
from lean_data.errors import ConfigError

DOC = Path(__file__).parent.parent / "docs" / "configuration.md"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("Yes", True), (" on ", True),
     ("false", False), ("False", False), ("0", False), ("NO", False), ("off", False)],
)  # fmt: skip
def test_booleans_accept_the_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv("LEAN_DATA_STORE_INVALID", raw)
    monkeypatch.setenv("LEAN_DATA_CONTINUITY", raw)
    config = Config.from_env()
    assert (config.store_invalid, config.continuity) == (expected, expected)


@pytest.mark.parametrize("raw", ["flase", "", "2", "y", "enabled", "truee"])
def test_a_boolean_that_is_no_boolean_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("LEAN_DATA_STORE_INVALID", raw)
    with pytest.raises(ConfigError) as error:
        Config.from_env()
    assert str(error.value) == (
        f"LEAN_DATA_STORE_INVALID={raw!r} is not valid: expected a boolean: "
        "true/false, 1/0, yes/no or on/off"
    )


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [("LEAN_DATA_BUFFER_SIZE", "10k", "an integer"),
     ("LEAN_DATA_BUFFER_SIZE", "1.5", "an integer"),
     ("LEAN_DATA_BUFFER_SIZE", "", "an integer"),
     ("LEAN_DATA_STOP_TIMEOUT_S", "soon", "a finite number"),
     ("LEAN_DATA_STOP_TIMEOUT_S", "nan", "a finite number"),
     ("LEAN_DATA_STOP_TIMEOUT_S", "inf", "a finite number"),
     ("LEAN_DATA_OVERFLOW_POLICY", "drop", "one of block, drop_oldest, conflate"),
     ("LEAN_DATA_VALIDATION_WINDOW", "many", "an integer"),
     ("LEAN_DATA_VALIDATION_EXTREME_MOVE_SIGMA", "twelve", "a finite number")],
)  # fmt: skip
def test_a_number_or_choice_that_does_not_parse_names_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, expected: str
) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ConfigError) as error:
        Config.from_env()
    assert str(error.value) == f"{variable}={raw!r} is not valid: expected {expected}"


def test_values_that_parse_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAN_DATA_BUFFER_SIZE", " 2_000 ")
    monkeypatch.setenv("LEAN_DATA_STOP_TIMEOUT_S", "2.5")
    monkeypatch.setenv("LEAN_DATA_OVERFLOW_POLICY", "CONFLATE")
    monkeypatch.setenv("LEAN_DATA_CACHE_DIR", "none")
    monkeypatch.setenv("LEAN_DATA_DB_PATH", "/data/bars.db")
    monkeypatch.setenv("LEAN_DATA_VALIDATION_WINDOW", "50")
    monkeypatch.setenv("LEAN_DATA_VALIDATION_WIDE_SPREAD_RATIO", "0.01")
    config = Config.from_env(retention_days=7.0)
    assert config.buffer_size == 2000
    assert config.stop_timeout_s == 2.5
    assert config.overflow_policy is OverflowPolicy.CONFLATE
    assert config.cache_dir is None
    assert config.db_path == "/data/bars.db"
    assert config.validation == ValidationConfig(window=50, wide_spread_ratio=0.01)
    assert config.retention_days == 7.0


def test_an_out_of_range_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAN_DATA_INBOX_SIZE", "0")
    with pytest.raises(ConfigError, match=r"Config.inbox_size must be a positive integer, got 0"):
        Config.from_env()


def test_every_setting_is_documented() -> None:
    doc = DOC.read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", doc, flags=re.MULTILINE))
    for cls in (Config, ValidationConfig):
        missing = [f.name for f in fields(cls) if f.name not in documented]
        assert missing == [], f"{cls.__name__} fields missing from {DOC.name}: {missing}"
