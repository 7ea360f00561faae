"""``python -m lean_data.cli``: the same as the ``lean-data`` command."""

import sys

from lean_data.cli.commands import main

sys.exit(main())
