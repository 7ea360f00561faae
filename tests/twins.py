"""The implementations of a function that has a C twin: both must pass the same tests."""

from __future__ import annotations

import os
from typing import Any

import pytest


def twins(pure: Any, chosen: Any, c_name: str) -> list[Any]:
    """``[pure]``, and ``chosen`` (what the package calls: ``lean_data.native.twin``'s pick)
    when it is the C twin; in the compiled variant of the suite the C twin must be chosen
    (``c_name`` names it in the failure)."""
    if chosen is not pure:
        return [pure, chosen]
    if os.environ.get("LEAN_DATA_VARIANT") == "compiled":
        pytest.fail(f"the compiled build must use {c_name}")
    return [pure]
