"""The ``lean-data`` command line: options, input checks and one-line errors
(:mod:`~lean_data.cli.commands`), and the replay it runs (:mod:`~lean_data.cli.run`).

It sits on top of everything else and nothing in the library imports it.
"""

from lean_data.cli.commands import DEMO_DATA, demo_files, main

__all__ = ["DEMO_DATA", "demo_files", "main"]
