"""The code passes the project's linters: ruff everywhere, mypy strict on the core package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_tool(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *arguments], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)


def test_ruff_passes() -> None:
    result = run_tool("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_core() -> None:
    result = run_tool("mypy", "shared")
    assert result.returncode == 0, result.stdout + result.stderr
