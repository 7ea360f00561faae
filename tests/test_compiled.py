"""The compiled (mypyc) build and its pure-Python fallback say which one is loaded, honestly.

``LEAN_DATA_VARIANT=pure|compiled`` (set by ``.ci/run``) names the variant the installed
build must be: a compiled build that silently fell back to pure Python fails here.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lean_data import __version__
from lean_data.compiled import C_MODULES, MODULES, Variant, is_extension, variant

ROOT = Path(__file__).resolve().parent.parent


def test_version_names_the_loaded_variant() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lean_data.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    described = variant().describe()
    assert out == f"lean-data {__version__} ({described})\n"
    compiled = f"compiled: mypyc, {len(MODULES)} modules; C: slots, frames, rows"
    assert described in ("pure Python", f"{compiled}, SQLite", f"{compiled}; no SQLite headers")


def test_the_variant_is_the_one_ci_asked_for() -> None:
    loaded = variant()
    assert loaded.is_compiled or not loaded.compiled, f"a stale build: {loaded.describe()}"
    expected = os.environ.get("LEAN_DATA_VARIANT")
    if expected == "compiled":
        assert loaded.is_compiled, f"expected the compiled build, loaded {loaded.describe()}"
    elif expected == "pure":
        assert not loaded.compiled, f"expected pure Python, loaded {loaded.describe()}"
    else:
        assert expected is None, f"LEAN_DATA_VARIANT must be pure or compiled, not {expected!r}"


def test_a_module_is_judged_by_the_file_it_was_loaded_from() -> None:
    assert not is_extension("lean_data.compiled")  # never compiled: it does the judging
    assert not is_extension("lean_data.models")  # users subclass the models
    partly = Variant(MODULES[:2], MODULES[2:])
    every = len(MODULES) + len(C_MODULES)
    assert partly.describe().startswith(f"partly compiled: mypyc, 2 of {every} modules")
    assert "rebuild with pip install -e ." in partly.describe()


def test_compiled_classes_are_still_subclassable_where_users_subclass() -> None:
    from lean_data.quality.validator import DataValidator

    class Mine(DataValidator):
        pass

    assert isinstance(Mine(), DataValidator)


def _copy_of_the_sources(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "lean_data", tree / "lean_data", ignore=shutil.ignore_patterns("*.so"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    return tree


def _build(tree: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=tree,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,  # a failed compiled build never fails the install
        timeout=600,
    )


def _loaded_in(tree: Path) -> str:
    code = "from lean_data.compiled import variant; print(variant().describe())"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_lean_data_pure_builds_pure_and_removes_a_stale_compiled_module(tmp_path: Path) -> None:
    tree = _copy_of_the_sources(tmp_path)
    stale = tree / "lean_data" / "series" / "buffer.cpython-311-x86_64-linux-gnu.so"
    stale.write_bytes(b"left by an earlier compiled editable install")
    built = _build(tree, LEAN_DATA_PURE="1")
    assert "LEAN_DATA_PURE=1: installing pure Python" in built.stderr
    assert not stale.exists()
    assert not list(tree.rglob("*.so"))
    assert _loaded_in(tree) == "pure Python"


@pytest.mark.skipif(
    importlib.util.find_spec("mypyc") is None, reason="needs mypyc to get as far as the C build"
)
def test_a_failed_c_build_installs_pure_python_with_one_warning(tmp_path: Path) -> None:
    tree = _copy_of_the_sources(tmp_path)
    built = _build(tree, CC="false", LDSHARED="false")  # a compiler that always fails
    warnings = [line for line in built.stderr.splitlines() if line.startswith("lean_data: ")]
    assert len(warnings) == 1, built.stderr
    assert warnings[0].startswith("lean_data: installing pure Python, not compiled: the C build")
    assert not list(tree.rglob("*.so"))
    assert _loaded_in(tree) == "pure Python"


def test_twin_gives_the_c_function_or_the_pure_one() -> None:
    """lean_data.native.twin: the C module's function when it is built, else the pure twin;
    in the compiled build the C helpers are in use, in the pure one none is."""
    from lean_data.native import twin
    from lean_data.series import buffer

    def pure() -> None:
        pass

    assert twin("lean_data._no_such_module", "pack_bar", pure) is pure
    in_c = buffer._PACK_BAR is not buffer._pack_bar
    if os.environ.get("LEAN_DATA_VARIANT") == "compiled":
        assert in_c
    elif os.environ.get("LEAN_DATA_VARIANT") == "pure":
        assert not in_c


@pytest.mark.skipif(
    importlib.util.find_spec("mypyc") is None, reason="needs mypyc to get as far as the C build"
)
def test_without_sqlites_headers_the_rest_is_built_and_the_version_says_so(
    tmp_path: Path,
) -> None:
    tree = _copy_of_the_sources(tmp_path)
    # one mypyc module keeps the build short; the SQLite module as on a machine whose
    # compiler finds no sqlite3.h
    compiled = tree / "lean_data" / "compiled.py"
    text = compiled.read_text()
    start = text.index("MODULES: tuple[str, ...] = (")
    end = text.index(")\n", start) + 2
    compiled.write_text(
        text[:start] + 'MODULES: tuple[str, ...] = ("lean_data.inbox",)\n' + text[end:]
    )
    source = tree / "lean_data" / "_sqlite_rows.c"
    source.write_text(source.read_text().replace("<sqlite3.h>", "<no_such_sqlite3.h>"))
    built = _build(tree)
    warnings = [line for line in built.stderr.splitlines() if line.startswith("lean_data: ")]
    assert len(warnings) == 1, built.stderr
    assert warnings[0].startswith("lean_data: building without lean_data._sqlite_rows")
    assert "libsqlite3-dev" in warnings[0]
    assert not list(tree.rglob("_sqlite_rows*.so"))
    described = _loaded_in(tree)
    assert described == "compiled: mypyc, 1 modules; C: slots, frames, rows; no SQLite headers"
