"""A real headless Chromium (Debian's ``chromium``) driven by Playwright, against the real
waitress server in front of a test service.

Where Chromium or Playwright is missing the tests skip and say why, except under CI
(``CI=true``), where a missing browser is a failure: CI must run them. Screenshots go
to ``$HWUT_SCREENSHOTS`` when set (CI prints the folder), else under pytest's tmp dir.
"""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))

from cli_served import serve  # noqa: E402,F401
from service_fixtures import make_env  # noqa: E402,F401

CHROMIUM = os.environ.get("HWUT_CHROMIUM", "/usr/bin/chromium")


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set HWUT_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is missing (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    why = _missing()
    if why is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the browser tests: {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    # as root (CI containers) Chromium refuses to start with its sandbox
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("HWUT_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own session storage) whose page errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(30_000)
    yield page
    context.close()
    assert not errors, f"the page's script failed: {errors}"
