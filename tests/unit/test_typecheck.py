"""The pure core type-checks under ``mypy --strict`` (STYLE.md item 8).

The files and flags live in pyproject.toml's ``[tool.mypy]``; this test only runs mypy from the
project root so that a type error in the core fails the unit suite like any other regression.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy is not installed (pip install -e '.[test]' brings it in)",
)
def test_pure_core_passes_mypy_strict() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"mypy failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
