"""The habits the project keeps, checked like any other regression (STYLE.md items 1 and 8).

- ``mypy --strict`` on reconciler/ and runtime/ (files and flags in pyproject.toml's ``[tool.mypy]``);
- ``ruff check`` and ``ruff format --check`` (settings in ``[tool.ruff]``: McCabe complexity <= 15);
- import contracts: the pure core imports no I/O (``[tool.importlinter]``), and no import cycle
  anywhere in reconciler/ or runtime/;
- sizes: no module over 600 lines, no class over 300 lines, except those named with their reason
  in docs/architecture.md's "Exceptions" table;
- every package directory ships (pyproject.toml lists it).

Each tool is a test dependency (``pip install -e '.[test]'``); a missing one skips with the reason.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = ("reconciler", "runtime")
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 300


def _run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def _needs(module: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None,
        reason=f"{module} is not installed (pip install -e '.[test]' brings it in)",
    )


@_needs("mypy")
def test_mypy_strict() -> None:
    proc = _run([sys.executable, "-m", "mypy"])
    assert proc.returncode == 0, f"mypy failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"


@_needs("ruff")
def test_ruff_check() -> None:
    proc = _run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."])
    assert proc.returncode == 0, f"ruff check:\n{proc.stdout}{proc.stderr}"


@_needs("ruff")
def test_ruff_format() -> None:
    proc = _run([sys.executable, "-m", "ruff", "format", "--check", "."])
    assert proc.returncode == 0, f"ruff format --check (run `ruff format .`):\n{proc.stdout}{proc.stderr}"


@_needs("importlinter")
def test_import_contracts() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "lint-imports is not on PATH"
    proc = _run([exe, "--no-cache"])
    assert proc.returncode == 0, f"import contracts broken:\n{proc.stdout}{proc.stderr}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@_needs("grimp")
def test_no_import_cycles() -> None:
    import grimp

    graph = grimp.build_graph(*CODE)
    # A package's __init__ re-exporting its own modules is not a cycle between modules.
    edges = {
        m: {i for i in graph.find_modules_directly_imported_by(m) if not m.startswith(i + ".")} for m in graph.modules
    }
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _exceptions() -> set[str]:
    """Paths named in docs/architecture.md's exceptions table (`| path | ... |` rows)."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    part = doc.split("## Exceptions", 1)[1] if "## Exceptions" in doc else ""
    return set(re.findall(r"^\|\s*`?([\w/.:]+)`?\s*\|", part, re.M))


def _sources() -> list[Path]:
    return sorted(p for d in CODE for p in (ROOT / d).rglob("*.py"))


def test_module_and_class_sizes() -> None:
    allowed = _exceptions()
    too_big = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        n = text.count("\n")
        if n > MAX_MODULE_LINES and rel not in allowed:
            too_big.append(f"{rel}: {n} lines (module limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_CLASS_LINES and f"{rel}:{node.name}" not in allowed:
                    too_big.append(f"{rel}:{node.name}: {size} lines (class limit {MAX_CLASS_LINES})")
    assert not too_big, "too big (split it, or name it with a reason in docs/architecture.md):\n" + "\n".join(too_big)


def test_every_package_ships() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        p.parent.relative_to(ROOT).as_posix().replace("/", ".") for d in CODE for p in (ROOT / d).rglob("__init__.py")
    }
    assert on_disk <= listed, f"packages missing from pyproject.toml [tool.setuptools] packages: {on_disk - listed}"
