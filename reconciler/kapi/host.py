"""What the API server needs of the running daemon (reconciler/daemon.py Daemon has it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from reconciler.reconcile import Reconciler
    from reconciler.store import Store
    from runtime.base import Runtime


class Daemon(Protocol):
    """What the API server needs of the running daemon."""

    runtime: Runtime
    reconciler: Reconciler
    store: Store
    state_dir: str
    repo_dir: str
    branch: str

    def wake_source(self) -> None: ...

    def writer(self) -> Any: ...
