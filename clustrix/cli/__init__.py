"""The ``clustrix`` command line: job records, configuration and dry-run job scripts.

``main`` is the console script. Each command lives in its own module with a
``register(app)`` function (see `app.COMMANDS`); expected errors (clustrix's own,
missing files, bad permissions) end in a one-line message and exit status 1, bad
usage in exit status 2, never a traceback.
"""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
