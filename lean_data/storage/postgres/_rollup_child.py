"""``python -m lean_data.storage.postgres._rollup_child``: the rollup worker process.

A module of its own, which nothing imports, so running it does not import the module
that holds :func:`~lean_data.storage.postgres.rollup_worker.main` a second time.
"""

import sys

from lean_data.storage.postgres.rollup_worker import main

if __name__ == "__main__":
    sys.exit(main())
