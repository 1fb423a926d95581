"""Where gitship keeps its state: one function every process (daemon and CLI) agrees on.

A module of its own, with no imports of gitship's, so that a CLI command finds the state dir
without loading the daemon.
"""

from __future__ import annotations

import os


def default_state_dir() -> str:
    """``GITSHIP_STATE_DIR``, else ``~/.gitship``."""
    return os.environ.get("GITSHIP_STATE_DIR") or os.path.join(os.path.expanduser("~"), ".gitship")
