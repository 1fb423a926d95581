"""What `gitship get` prints beyond one kind's table, as kubectl prints it (kubernetes/kubectl pkg/cmd/get).

* several kinds (``get svc,rs,po``, ``get all``): one table per kind in the order asked, a blank line
  between; when the objects listed are of more than one kind, NAME reads ``kind.group/name``;
* ``-o name``: ``pod/web``, ``deployment.apps/web``;
* ``-o custom-columns=NAME:.metadata.name,...``: the headers as given, ``<none>`` for a missing value,
  several values joined by commas;
* ``--sort-by=JSONPATH``: numbers numerically, strings that are quantities (``100m``, ``2Gi``) by
  amount, other strings lexically, objects without the field first (kubectl's sorter.go);
* ``--watch``: the objects that changed between two looks at the store.

Pure: objects in, text out; ``now`` is a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fractions import Fraction
from functools import cmp_to_key
from typing import Any

from .gofmt import go_sprint
from .jsonpath import JSONPathError, Template, relaxed
from .manifests.model import KINDS
from .printers import MIN_CELL, TableOptions, column_widths, table_lines, table_rows
from .types import Key, Obj

__all__ = [
    "ALL",
    "custom_columns",
    "custom_rows",
    "get_tables",
    "kind_runs",
    "resource_name",
    "sort_objects",
    "changed",
]

# `kubectl get all`: the "all" category, in the order the API server lists it.
ALL = (
    "Pod",
    "ReplicationController",
    "Service",
    "DaemonSet",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "HorizontalPodAutoscaler",
    "CronJob",
    "Job",
)
_GROUP = {
    "Deployment": "apps",
    "ReplicaSet": "apps",
    "DaemonSet": "apps",
    "StatefulSet": "apps",
    "ControllerRevision": "apps",
    "Job": "batch",
    "CronJob": "batch",
    "HorizontalPodAutoscaler": "autoscaling",
}


def kind_group(kind: str, api_version: str | None = None) -> str:
    """``pod``, ``replicaset.apps``: the kind lower-cased, then its API group if it has one."""
    api_version = api_version or KINDS.get(kind)  # the kinds gitship serves know their group
    group = api_version.split("/")[0] if api_version and "/" in api_version else _GROUP.get(kind, "")
    return kind.lower() + (f".{group}" if group else "")


def resource_name(obj: Obj) -> str:
    """One line of ``-o name``."""
    return f"{kind_group(obj['kind'], obj.get('apiVersion'))}/{obj['metadata'].get('name') or '<unknown>'}"


def kind_runs(items: Iterable[tuple[str, Obj]]) -> list[tuple[str, list[Obj]]]:
    """Consecutive objects of one kind grouped: each group is one table."""
    runs: list[tuple[str, list[Obj]]] = []
    for kind, obj in items:
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(obj)
        else:
            runs.append((kind, [obj]))
    return runs


def get_tables(items: Sequence[tuple[str, Obj]], now: float, opts: TableOptions) -> str:
    """The tables of `get` for objects of one or more kinds, in the order given ('' when there are none)."""
    several = len({kind for kind, _ in items}) > 1
    out = []
    for kind, objs in kind_runs(items):
        prefix = f"{kind_group(kind, objs[0].get('apiVersion'))}/" if several else ""
        headers, rows = table_rows(kind, objs, now, _with_prefix(opts, prefix))
        out.append("\n".join(table_lines([headers, *rows], column_widths([headers, *rows], min_cell=MIN_CELL))))
    return "\n\n".join(out)


def _with_prefix(opts: TableOptions, prefix: str) -> TableOptions:
    return TableOptions(opts.wide, opts.show_labels, opts.all_namespaces, opts.label_columns, prefix)


# ---- custom columns ----------------------------------------------------------------------------


def custom_columns(spec: str) -> list[tuple[str, Template]]:
    """``NAME:.metadata.name,IP:.status.podIP`` as (header, template) pairs; JSONPathError when malformed."""
    if not spec:
        raise JSONPathError("custom-columns format specified but no custom columns given")
    columns = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep:
            raise JSONPathError(f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>")
        columns.append((header, Template(relaxed(path))))
    return columns


def custom_cell(template: Template, obj: Obj) -> str:
    values = template.find(obj)
    return ",".join(go_sprint(v) for v in values) if values else "<none>"


def custom_rows(columns: list[tuple[str, Template]], objs: Iterable[Obj]) -> list[list[str]]:
    return [[custom_cell(t, o) for _, t in columns] for o in objs]


# ---- sorting -----------------------------------------------------------------------------------

_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?")
_SUFFIX = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    **{s: Fraction(1000**i) for i, s in enumerate(("k", "M", "G", "T", "P", "E"), 1)},
    **{s: Fraction(1024**i) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
}


def quantity(s: str) -> Fraction | None:
    """A Kubernetes quantity's amount (``100m`` is 1/10, ``1Ki`` 1024), or None when ``s`` is not one."""
    m = _QUANTITY.fullmatch(s)
    if m is None:
        return None
    suffix = m.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return Fraction(m.group(1)) * Fraction(10) ** int(suffix[1:])
    return Fraction(m.group(1)) * _SUFFIX[suffix]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _less(a: Any, b: Any) -> bool:
    """kubectl's isLess on two JSON values; JSONPathError for values it cannot order."""
    if a is None or b is None:
        return a is None and b is not None
    if _number(a) and _number(b):
        return bool(a < b)
    if isinstance(a, str) and isinstance(b, str):
        qa, qb = quantity(a), quantity(b)
        return qa < qb if qa is not None and qb is not None else a < b
    if isinstance(a, list) and isinstance(b, list):
        for x, y in zip(a, b):
            if not _less(x, y):
                return False
        return True
    raise JSONPathError(f"unsortable type: {type(a).__name__}")


def sort_objects(objs: list[Obj], field: str) -> list[Obj]:
    """``--sort-by``: a stable sort on the first value of the JSONPath ``field``; objects without it first."""
    if not objs:
        return objs
    expr = relaxed(field)
    template = Template(expr)
    keys = [template.find(o)[:1] for o in objs]
    if not any(keys):
        raise JSONPathError(f'couldn\'t find any field with path "{expr}" in the list of objects')

    def cmp(i: int, j: int) -> int:
        a, b = keys[i], keys[j]
        if not a or not b:
            return (0 if not b else -1) if not a else 1
        return -1 if _less(a[0], b[0]) else (1 if _less(b[0], a[0]) else 0)

    order = sorted(range(len(objs)), key=cmp_to_key(cmp))
    return [objs[i] for i in order]


# ---- watch -------------------------------------------------------------------------------------


def changed(before: dict[Key, Obj], after: dict[Key, Obj]) -> list[Obj]:
    """What a watch reports between two looks: new and changed objects, then deleted ones as last seen."""
    out = [o for k, o in after.items() if before.get(k) != o]
    return out + [o for k, o in before.items() if k not in after]


def without_managed_fields(obj: Obj) -> Obj:
    """``obj`` without ``metadata.managedFields``, as kubectl prints objects unless asked
    (``--show-managed-fields``; kubectl's get hides them since 1.21)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
