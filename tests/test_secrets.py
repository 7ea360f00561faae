"""Secrets never print; credentials come from Config or the environment; feeds load lazily."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from lean_data import Config, ConfigError, Credentials, Secret


def test_secret_never_shows_in_str_repr_or_format() -> None:
    secret = Secret("sk-live-123")
    assert secret.reveal() == "sk-live-123"
    for text in (str(secret), repr(secret), f"{secret}", f"{secret!r}", f"{secret:>20}"):
        assert "sk-live" not in text
    assert "sk-live" not in repr(Credentials.of("AKID42", "sk-live-123"))
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)


def test_config_reads_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "PKTEST")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "shh-alpaca")
    monkeypatch.setenv("LEAN_DATA_CREDENTIALS_KRAKEN_KEY_ID", "kid")
    monkeypatch.setenv("LEAN_DATA_CREDENTIALS_KRAKEN_SECRET", "shh-kraken")
    config = Config.from_env()
    assert config.credentials["alpaca"].secret.reveal() == "shh-alpaca"
    assert config.credentials["alpaca"].key_id.reveal() == "PKTEST"
    assert config.credentials["kraken"].secret.reveal() == "shh-kraken"
    assert "shh" not in repr(config)
    assert "PKTEST" not in repr(config)


def test_missing_credentials_name_the_variable_not_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEAN_DATA_CREDENTIALS_KRAKEN_KEY_ID", "kid")
    monkeypatch.delenv("LEAN_DATA_CREDENTIALS_KRAKEN_SECRET", raising=False)
    with pytest.raises(ConfigError, match="LEAN_DATA_CREDENTIALS_KRAKEN_SECRET"):
        Config.from_env()


def test_import_lean_data_loads_no_venue_sdk() -> None:
    code = (
        "import sys, lean_data; "
        "print(sorted(m for m in ('alpaca', 'ccxt', 'aiohttp', 'msgpack', 'pandas', 'asyncpg') "
        "if m in sys.modules)); "
        "lean_data.BinanceDataFeed; print('aiohttp' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True"  # the Binance feed loaded aiohttp only when first used
