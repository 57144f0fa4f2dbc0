"""Shared fixtures. Build products come from `make venv check-pythons` under $TEXTLESS_BUILD_DIR."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "env"))  # pins, patcher: stdlib tools, not installed
sys.path.insert(0, str(REPO / "tests"))  # support.py

from support import TEXTLESSLIB_MISSING  # noqa: E402


@pytest.fixture(scope="session")
def build_dir() -> Path:
    path = Path(os.environ.get("TEXTLESS_BUILD_DIR", REPO / ".build"))
    if not (path / "src").is_dir():
        pytest.fail(f"{path}/src is missing: run `make venv check-pythons` first (make test does)")
    return path


@pytest.fixture(scope="session")
def env_record() -> dict:
    return json.loads((Path(sys.prefix) / "textless-stack-sources.json").read_text())


@pytest.fixture(scope="session")
def textlesslib_pristine(build_dir) -> Path:
    """The unpatched textlesslib tree; skips (counted, one reason) where it could not be had."""
    path = build_dir / "src" / "textlesslib-pristine"
    if not (path / "textless").is_dir():
        pytest.skip(TEXTLESSLIB_MISSING)
    return path


@pytest.fixture(scope="session")
def textlesslib_installed(textlesslib_pristine) -> None:
    import importlib.util

    if importlib.util.find_spec("textless") is None:
        pytest.fail("textlesslib source was fetched but the package is not installed: rerun make venv")


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    n = sum(1 for r in skipped if TEXTLESSLIB_MISSING in str(r.longrepr))
    if n:
        terminalreporter.write_line(
            f"NOTE: {n} test(s) skipped: {TEXTLESSLIB_MISSING} (set TEXTLESSLIB_SRC to a textlesslib checkout)",
            yellow=True,
        )
