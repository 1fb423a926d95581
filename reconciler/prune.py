"""Safe pruning: whether a revision may delete what it would delete (pure: plain data in, a verdict out).

Where it sits: between load + validate and the plan (reconciler/ops/prune.py carries the verdict out
in the daemon; `gitship plan` prints it). Two rules:

* **keep**: an applied object annotated ``gitship.io/prune: disabled`` stays in the desired state
  when its manifest leaves git (as Flux's ``kustomize.toolkit.fluxcd.io/prune: disabled`` and Argo
  CD's ``Prune=false``): ``keep_disabled`` carries it over, unchanged, and names it.
* **hold**: a revision that would delete every applied object (when there is at least one), or more
  than ``threshold`` percent of them (default 50), is held: not applied, so what runs keeps running,
  until its commit carries the trailer ``Gitship-Allow-Prune: true`` or `gitship approve REV` records
  an approval. ``threshold`` None ("off") never holds.

The count is over the desired-state objects of the applied revision (what git declared), not over what
controllers made from them (ReplicaSets, Pods): those follow their owners.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .annotation_keys import PRUNE  # per object: "disabled" keeps it when its manifest goes
from .types import Key, Obj

DISABLED = "disabled"
ALLOW_TRAILER = "Gitship-Allow-Prune"  # a commit-message trailer: "Gitship-Allow-Prune: true"
DEFAULT_THRESHOLD = 50.0
OFF = "off"
SHOWN = 10  # objects named in a held revision's message; the rest are counted

_TRUE = ("true", "yes", "1")


def parse_threshold(text: str | float | int | None) -> float | None:
    """``--prune-threshold`` / gitship.yaml's ``pruneThreshold``: a percentage 0-100, or "off" (None).
    Raises ValueError naming what is accepted."""
    if text is None:
        return DEFAULT_THRESHOLD
    if text is False:  # YAML 1.1 reads a bare `off` as false
        return None
    if isinstance(text, str) and text.strip().lower() == OFF:
        return None
    if isinstance(text, bool):
        raise ValueError(f"must be a percentage from 0 to 100 or {OFF!r}, not {text!r}")
    try:
        value = float(str(text).strip().rstrip("%"))
    except ValueError:
        raise ValueError(f"must be a percentage from 0 to 100 or {OFF!r}, not {text!r}") from None
    if not 0 <= value <= 100:
        raise ValueError(f"must be a percentage from 0 to 100 or {OFF!r}, not {text!r}")
    return value


def effective_threshold(flag: str | None, repo: str | float | None) -> float | None:
    """The operator's flag wins; else the revision's gitship.yaml; else the default (50)."""
    if flag not in (None, ""):
        return parse_threshold(flag)
    return parse_threshold(repo if repo not in (None, "") else None)


def would_hold(live: int, deleting: int, threshold: float | None) -> bool:
    """Deleting ``deleting`` of ``live`` applied objects: all of them (when any), or more than ``threshold``%."""
    if threshold is None or live <= 0 or deleting <= 0:
        return False
    return deleting >= live or deleting * 100 > threshold * live


def prune_disabled(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(PRUNE, "")).strip().lower() == DISABLED


def keep_disabled(applied: Mapping[Key, Obj], desired: dict[Key, Obj]) -> list[Key]:
    """Add to ``desired`` (in place) every applied object gone from git whose annotation disables its
    pruning, as applied (the same dict: the plan sees no change); returns their keys, sorted."""
    kept = sorted(k for k, obj in applied.items() if k not in desired and prune_disabled(obj))
    for k in kept:
        desired[k] = applied[k]
    return kept


def ref(key: Key) -> str:
    """``kind/name``, or ``kind/namespace/name`` outside ``default`` (as plan.Action.ref)."""
    kind, ns, name = key
    return f"{kind.lower()}/{name}" if ns in ("default", "") else f"{kind.lower()}/{ns}/{name}"


def listed(keys: Iterable[Key], shown: int = SHOWN) -> str:
    """The first ``shown`` objects by name, and how many more."""
    refs = [ref(k) for k in keys]
    head = ", ".join(refs[:shown])
    return head + (f" (and {len(refs) - shown} more)" if len(refs) > shown else "")


@dataclass(frozen=True)
class Verdict:
    """What a revision would prune and whether it is held. ``allowed_by``: "" (not needed or not
    given), "trailer" (the commit's Gitship-Allow-Prune) or "approval" (`gitship approve`)."""

    live: int
    deletes: tuple[Key, ...]
    threshold: float | None
    over: bool  # over the threshold (held unless allowed)
    allowed_by: str = ""
    kept: tuple[Key, ...] = field(default=())

    @property
    def held(self) -> bool:
        return self.over and not self.allowed_by

    def message(self, short: str) -> str:
        n, live = len(self.deletes), self.live
        rule = "all of them" if n >= live else f"more than {self.threshold:g}%"
        text = f"revision {short} would delete {n} of {live} objects ({rule}): {listed(self.deletes)}"
        if self.allowed_by:
            by = f"the commit trailer {ALLOW_TRAILER}" if self.allowed_by == "trailer" else "`gitship approve`"
            return f"{text}; allowed by {by}"
        return (
            f"{text}; held: commit with the trailer '{ALLOW_TRAILER}: true' "
            f"or run `gitship approve {short}` to apply it"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "live": self.live,
            "deletes": [ref(k) for k in self.deletes],
            "threshold": self.threshold,
            "held": self.held,
            "allowedBy": self.allowed_by or None,
            "kept": [ref(k) for k in self.kept],
        }


def decide(
    applied: Collection[Key],
    desired: Collection[Key],
    threshold: float | None,
    allowed_by: str = "",
    kept: Iterable[Key] = (),
) -> Verdict:
    """The verdict for taking ``applied`` to ``desired`` (keys of the desired-state objects; ``desired``
    already holds the kept ones). ``allowed_by`` counts only when the revision is over the threshold."""
    deletes = tuple(sorted(k for k in applied if k not in desired))
    over = would_hold(len(applied), len(deletes), threshold)
    return Verdict(len(applied), deletes, threshold, over, allowed_by if over else "", tuple(kept))


_TRAILER = re.compile(rf"^{ALLOW_TRAILER}\s*:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def allows_prune(message: str) -> bool:
    """Whether a commit message's trailer block (its last paragraph) says ``Gitship-Allow-Prune: true``."""
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:  # a subject alone has no trailers (as git interpret-trailers reads them)
        return False
    return any(v.lower() in _TRUE for v in _TRAILER.findall(paragraphs[-1]))
