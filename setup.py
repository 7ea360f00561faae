"""Build lean_data; compile its pure hot-path modules with mypyc when this machine can.

Everything else is in ``pyproject.toml``. The modules listed in ``lean_data/compiled.py``
are compiled when mypy (mypyc) is importable, ``LEAN_DATA_PURE`` is not ``1`` and the C build
succeeds. Otherwise the install goes on with the same modules as plain Python, with one
warning saying why: a compiled build is an optimisation, never a requirement. An optional
C module (``OPTIONAL_C_MODULES``: the SQLite binding, which needs SQLite's headers) that
fails to build is left out alone, with its own warning.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
GROUP = "lean_data"  # the shared library is lean_data__mypyc
# Commands that build extensions; the others (egg_info, dist_info, sdist) need metadata only,
# so they skip mypyc's type check and C generation.
BUILDING = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


def _warn(why: str) -> None:
    print(f"lean_data: installing pure Python, not compiled: {why}", file=sys.stderr)
    _remove_inplace_builds()


def _lists() -> dict[str, Any]:
    return runpy.run_path(str(HERE / "lean_data" / "compiled.py"))


def _names() -> list[str]:
    """Every compiled module: mypyc's (MODULES), then the hand-written C ones (C_MODULES,
    OPTIONAL_C_MODULES)."""
    lists = _lists()
    return [*lists["MODULES"], *lists["C_MODULES"], *lists["OPTIONAL_C_MODULES"]]


def _mypyc_modules() -> list[str]:
    return [str(Path(*name.split("."))) + ".py" for name in _lists()["MODULES"]]


def _c_extensions() -> list[Any]:
    from setuptools import Extension

    lists = _lists()
    return [
        Extension(
            name,
            [str(Path(*name.split("."))) + ".c"],
            libraries=list(lists["C_LIBRARIES"].get(name, ())),
        )
        for name in (*lists["C_MODULES"], *lists["OPTIONAL_C_MODULES"])
    ]


def _remove_inplace_builds() -> None:
    """Delete compiled modules an earlier editable install left beside the sources.

    They would shadow the ``.py`` files this pure install is meant to run.
    """
    stale = [*HERE.glob(f"{GROUP}__mypyc.*")]
    for name in _names():
        stale += Path(HERE, *name.split(".")[:-1]).glob(name.rsplit(".", 1)[1] + ".*.so")
        stale += Path(HERE, *name.split(".")[:-1]).glob(name.rsplit(".", 1)[1] + ".*.pyd")
    for path in stale:
        print(f"lean_data: removing the stale compiled module {path}", file=sys.stderr)
        path.unlink()


def _ext_modules() -> list[Any]:
    if not BUILDING & set(sys.argv[1:]):
        return []
    if os.environ.get("LEAN_DATA_PURE") == "1":
        print("lean_data: LEAN_DATA_PURE=1: installing pure Python", file=sys.stderr)
        _remove_inplace_builds()
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        _warn(f"mypyc is not importable ({exc})")
        return []
    try:
        return [*mypycify(_mypyc_modules(), opt_level="3", group_name=GROUP), *_c_extensions()]
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error: still install
        _warn(f"mypyc failed ({exc!r})")
        return []


class OptionalBuildExt(build_ext):
    """Build the compiled modules, or none of them: a failed build installs pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, missing headers, a compiler error...
            self._remove_outputs()
            _warn(f"the C build failed ({exc})")

    def build_extensions(self) -> None:
        self.left_out: set[str] = set()
        super().build_extensions()
        # what was left out is not copied into the tree nor listed among the outputs
        self.extensions = [ext for ext in self.extensions if ext.name not in self.left_out]

    def build_extension(self, ext: Any) -> None:
        if ext.name not in _lists()["OPTIONAL_C_MODULES"]:
            super().build_extension(ext)
            return
        try:
            super().build_extension(ext)
        except Exception as exc:  # SQLite's headers or library missing: build the rest
            self.left_out.add(ext.name)
            for path in {self.get_ext_fullpath(ext.name), self._inplace_path(ext)}:
                if path and os.path.exists(path):
                    os.remove(path)
            print(
                f"lean_data: building without {ext.name} ({exc}); for it, install SQLite's "
                "headers (Debian: libsqlite3-dev) and reinstall",
                file=sys.stderr,
            )

    def _remove_outputs(self) -> None:
        # A shim whose shared library did not build would fail at import: drop them all.
        for ext in self.extensions:
            for path in {self.get_ext_fullpath(ext.name), self._inplace_path(ext)}:
                if path and os.path.exists(path):
                    os.remove(path)
        shutil.rmtree(os.path.join(self.build_temp, "lean_data"), ignore_errors=True)

    def _inplace_path(self, ext: Any) -> str:
        build_py = self.get_finalized_command("build_py")
        return str(self._get_inplace_equivalent(build_py, ext)[0])


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
