"""How many documents of a real-world corpus gitship's loader accepts, and why it rejects the rest.

Usage: python bench/corpus.py FOLDER [--json] [--by-file] [--root WORKTREE]

Every ``*.yaml`` / ``*.yml`` file under FOLDER (a checkout of e.g. github.com/kubernetes/examples)
is loaded with gitship's loader alone (``reconciler.manifests.load.load_file``: parse, kind check,
strict fields, defaults, validation), one file at a time, as the daemon loads a file of a revision.
A file counts as accepted when it loads whole. A document counts as accepted when no error names
it. Where the loader has it (``reconciler.manifests.crd``), the custom resources of the accepted
files are then checked against the CustomResourceDefinitions of the whole folder, as if the folder
were one repository. Rejections are counted by reason: the kind and apiVersion gitship does not
serve, or the first field error of the document.

Nothing runs: no daemon, no git. ``--root`` measures another checkout's loader (before and after a
change: ``--root /work/main`` against this worktree).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent

_KIND = re.compile(r"kind '([^']*)' with apiVersion '([^']*)'")
_API = re.compile(r"apiVersion '([^']*)' with kind '([^']*)'")


def reason(e: Any) -> str:
    """A short, countable reason for one error (a ManifestError)."""
    if "no CustomResourceDefinition" in e.message and (m := _KIND.search(e.message)):
        return f"custom resource {m.group(1)} ({m.group(2)}) without its CRD in the folder"
    if m := _KIND.search(e.message):
        return f"kind {m.group(1)} ({m.group(2)}) not served"
    if m := _API.search(e.message):
        return f"kind {m.group(2)} as apiVersion {m.group(1)}"
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "…", e.message)
    return f"{e.field or '-'}: {text[:70]}"


def documents_in(text: str) -> int:
    """Non-empty YAML documents of a file (0 when it does not parse)."""
    try:
        return sum(1 for d in yaml.safe_load_all(text) if d is not None)
    except yaml.YAMLError:
        return 0


def measure(folder: Path) -> dict[str, Any]:
    from reconciler.errors import RevisionRejected
    from reconciler.manifests.load import load_file

    files = sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    out: dict[str, Any] = {"files": len(files), "files_accepted": 0, "documents": 0, "documents_accepted": 0}
    reasons: Counter[str] = Counter()
    per_file: dict[str, str] = {}
    loaded: list[Any] = []
    for path in files:
        rel = str(path.relative_to(folder))
        data = path.read_bytes()
        total = documents_in(data.decode("utf-8", "replace"))
        out["documents"] += total
        try:
            manifests = load_file(rel, data, {})
        except RevisionRejected as rejected:
            bad = {e.document for e in rejected.errors}
            out["documents_accepted"] += max(0, total - len(bad))
            first: dict[int, Any] = {}
            for e in rejected.errors:
                first.setdefault(e.document, e)
            for e in first.values():
                reasons[reason(e)] += 1
            per_file[rel] = reason(rejected.errors[0])
            continue
        loaded.append((rel, manifests))
    _custom_resources(loaded, out, reasons, per_file)
    out["reasons"] = dict(reasons.most_common())
    out["per_file"] = per_file
    return out


def _custom_resources(loaded: list[Any], out: dict[str, Any], reasons: Counter[str], per_file: dict[str, str]) -> None:
    """Accepted files' custom resources against the folder's CRDs (where the loader defers them)."""
    try:
        from reconciler.manifests import crd
        from reconciler.manifests.load import supported_kinds
    except ImportError:  # a loader without custom resources: every file loaded whole is accepted
        crd = None
    everything = [m for _, ms in loaded for m in ms]
    bad_docs: set[tuple[str, int]] = set()
    if crd is not None:
        _, errors = crd.resolve(everything, supported_kinds())
        for e in errors:
            if (e.file, e.document) not in bad_docs:
                bad_docs.add((e.file, e.document))
                reasons[reason(e)] += 1
            per_file.setdefault(e.file, reason(e))
    for rel, ms in loaded:
        rejected_here = {d for f, d in bad_docs if f == rel}
        out["documents_accepted"] += len(ms) - len(rejected_here)
        if not rejected_here:
            out["files_accepted"] += 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument("--by-file", action="store_true", help="list each rejected file with its first reason")
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose loader to measure")
    args = p.parse_args(argv)
    sys.path.insert(0, str(args.root.resolve()))
    res = measure(args.folder)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"files:     {res['files_accepted']} of {res['files']} accepted")
    print(f"documents: {res['documents_accepted']} of {res['documents']} accepted")
    print("rejected documents by reason:")
    for r, n in res["reasons"].items():
        print(f"  {n:4d}  {r}")
    if args.by_file:
        for f, r in sorted(res["per_file"].items()):
            print(f"  {f}: {r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
