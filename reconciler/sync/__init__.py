"""The reconcile pass's decisions, apart from its actions (pure: no I/O, no clock, no randomness).

``decide(PassInput) -> Changes`` (sync/decide.py) is the whole pass; the executor that carries
``Changes`` out through the runtime, the proxy, the DNS zone and the store is
reconciler/reconcile.py.
"""

from .decide import decide
from .model import (
    Changes,
    Ids,
    Listener,
    Memory,
    Observed,
    PassInput,
    PodStart,
    PodStop,
    Problem,
    ProxyRule,
    Settings,
    ZoneInput,
    what_changes,
)
from .objects import lost_pods, template_commits
from .services import allocation_errors, backends_for

__all__ = [
    "Changes",
    "Ids",
    "Listener",
    "Memory",
    "Observed",
    "PassInput",
    "PodStart",
    "PodStop",
    "Problem",
    "ProxyRule",
    "Settings",
    "ZoneInput",
    "allocation_errors",
    "backends_for",
    "decide",
    "lost_pods",
    "template_commits",
    "what_changes",
]
