"""Objects stored without effect (manifests/inert.py): which kinds, the fields git declares, the event.

Pure helpers for ``sync/objects.py``. Such an object is created, updated and pruned as git says,
like a ConfigMap; no controller acts on it. Its creation records one Warning event ``NoEffect``
("stored; has no effect on this runtime"), which ``gitship status`` counts.
"""

from __future__ import annotations

from ..manifests.inert import NO_EFFECT_MESSAGE, NO_EFFECT_REASON, OBJECT_FIELDS
from ..manifests.model import without_effect as without_effect
from ..types import Obj
from .work import Work


def has_spec(obj: Obj) -> bool:
    """Whether the object's kind keeps what git declares under ``spec`` (then it has a generation
    and a status, as a PodDisruptionBudget does); a ServiceAccount, a Role or a binding does not."""
    return "spec" in obj


def declared_fields(obj: Obj) -> tuple[str, ...]:
    """The top-level fields git declares of an object stored without effect, spec aside
    (``rules`` of a Role, ``roleRef`` and ``subjects`` of a binding, ``value`` of a PriorityClass)."""
    if not without_effect(str(obj.get("kind", ""))):
        return ()
    return tuple(k for k in obj if k not in OBJECT_FIELDS and k != "spec")


def no_effect_event(w: Work, obj: Obj, namespace: str) -> None:
    """The Warning event of an object stored without effect, at its creation."""
    kind = str(obj.get("kind", ""))
    if without_effect(kind):
        w.event("Warning", NO_EFFECT_REASON, kind, namespace, obj["metadata"]["name"], NO_EFFECT_MESSAGE)
