"""Several sources: their specification, who owns an object, and who waits for whom (pure).

Where it sits: under ``manifests/model.py`` (``sources:`` of gitship.yaml) and the sources layer
(reconciler/sources/runner.py), which composes every source's objects into the one desired state
the reconciler takes. A source is ``{name, url, branch, path, interval, dependsOn}``; the repository
given to `gitship up` is the source named ``default``.

* ``parse_sources``: the list as written (in gitship.yaml or a `--sources FILE`), checked: names are
  DNS-1123 labels and unique, ``default`` is taken, ``dependsOn`` names listed sources, no cycles.
* ``ownership_conflicts``: an object belongs to one source; a second source declaring it is an error
  naming both sources, both files and the object, and that source's revision is not applied.
* ``waiting_on`` / ``apply_order``: Flux's Kustomization ``dependsOn``: a source is reconciled only
  once every source it depends on is Ready.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ManifestError
from reconciler.types import Key

DEFAULT = "default"  # the repository `gitship up REPO` names
_KEYS = ("name", "url", "branch", "path", "interval", "dependsOn")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

Bad = Callable[[str, str], ManifestError]


@dataclass(frozen=True)
class SourceSpec:
    name: str
    url: str  # a local repository path or a git URL
    branch: str | None = None  # None: the repository's current branch (a URL: its default branch)
    path: str = ""  # the folder of the repository that holds the manifests
    interval: float = 30.0  # seconds between fetches of a URL
    depends_on: tuple[str, ...] = ()


def _spec(entry: Any, p: str, bad: Bad) -> SourceSpec:
    if not isinstance(entry, dict):
        raise bad(p, "must be a mapping with name and url")
    for k in entry:
        if k not in _KEYS:
            raise bad(f"{p}.{k}", f"unknown field; supported fields: {', '.join(_KEYS)}")
    name, url = entry.get("name"), entry.get("url")
    if not isinstance(name, str) or not _LABEL.match(name) or len(name) > 63:
        raise bad(f"{p}.name", f"Invalid value: {name!r}: a lowercase DNS-1123 label (a-z, 0-9, '-')")
    if not isinstance(url, str) or not url:
        raise bad(f"{p}.url", "Required value: a repository path or git URL")
    branch, path = entry.get("branch"), entry.get("path", "")
    if branch is not None and (not isinstance(branch, str) or not branch):
        raise bad(f"{p}.branch", "must be a branch name")
    if not isinstance(path, str):
        raise bad(f"{p}.path", "must be a folder of the repository")
    interval = entry.get("interval", 30.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        raise bad(f"{p}.interval", "must be a positive number of seconds")
    deps = entry.get("dependsOn") or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise bad(f"{p}.dependsOn", "must be a list of source names")
    return SourceSpec(name, url, branch, path.strip("/"), float(interval), tuple(deps))


def parse_sources(raw: Any, bad: Bad) -> list[SourceSpec]:
    """The ``sources:`` list, checked (ManifestError through ``bad(field, message)``)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad("sources", "must be a list of {name, url, branch, path, interval, dependsOn}")
    specs: list[SourceSpec] = []
    seen: set[str] = {DEFAULT}
    for i, entry in enumerate(raw):
        spec = _spec(entry, f"sources[{i}]", bad)
        if spec.name in seen:
            why = "the repository given to `gitship up`" if spec.name == DEFAULT else "another source"
            raise bad(f"sources[{i}].name", f"Duplicate value: {spec.name!r} (already {why})")
        seen.add(spec.name)
        specs.append(spec)
    for i, spec in enumerate(specs):
        for j, dep in enumerate(spec.depends_on):
            if dep not in seen:
                raise bad(f"sources[{i}].dependsOn[{j}]", f"Not found: no source named {dep!r}")
            if dep == spec.name:
                raise bad(f"sources[{i}].dependsOn[{j}]", "a source cannot depend on itself")
    cycle = find_cycle({s.name: s.depends_on for s in specs})
    if cycle:
        raise bad("sources", f"dependsOn forms a cycle: {' -> '.join(cycle)}")
    return specs


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """A dependency cycle as ``[a, b, ..., a]``, or [] when there is none."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(n: str) -> list[str]:
        state[n] = 1
        stack.append(n)
        for d in deps.get(n, ()):
            if state.get(d) == 1:
                return [*stack[stack.index(d) :], d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return []

    for n in sorted(deps):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return []


def apply_order(specs: Iterable[SourceSpec]) -> list[str]:
    """Names in an order where every source comes after those it depends on (ties by name)."""
    deps = {s.name: set(s.depends_on) for s in specs}
    done: list[str] = []
    while len(done) < len(deps):
        ready = sorted(n for n, d in deps.items() if n not in done and d <= set(done) | (d - deps.keys()))
        if not ready:  # a cycle: parse_sources refuses them; keep the rest in name order
            done.extend(sorted(n for n in deps if n not in done))
            break
        done.extend(ready)
    return done


def waiting_on(spec: SourceSpec, ready: Mapping[str, bool]) -> list[str]:
    """The sources ``spec`` depends on that are not Ready (unknown ones count as not Ready)."""
    return [d for d in spec.depends_on if not ready.get(d, False)]


Position = tuple[str, int]  # file, line


def ownership_conflicts(
    source: str, declared: Mapping[Key, Position], owners: Mapping[Key, tuple[str, str, int]]
) -> list[ManifestError]:
    """One error per object ``source`` declares that another source owns (``owners``: key -> (source,
    file, line)), naming the object, both sources and both files."""
    errors: list[ManifestError] = []
    for key, (file, line) in sorted(declared.items(), key=lambda kv: (kv[1], kv[0])):
        owner = owners.get(key)
        if owner is None or owner[0] == source:
            continue
        other, ofile, oline = owner
        kind, ns, name = key
        obj = f"{kind} {ns}/{name}" if ns else f"{kind} {name}"
        errors.append(
            ManifestError(
                file,
                f"{obj} is already owned by source {other!r} ({ofile}:{oline}); "
                f"source {source!r} cannot declare it too",
                line,
                0,
                "metadata.name",
            )
        )
    return errors
