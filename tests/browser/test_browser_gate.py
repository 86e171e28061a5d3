"""Without Chromium the browser tests skip and say why, except under CI, where they fail."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def run_without_chromium(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["HWUT_CHROMIUM"] = "/nonexistent/chromium"
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider",
         "tests/browser/test_web_page.py", "-k", "refused"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_locally_a_missing_chromium_skips_with_the_reason():
    result = run_without_chromium(None)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert "no Chromium at /nonexistent/chromium" in result.stdout


def test_under_ci_a_missing_chromium_fails():
    result = run_without_chromium("true")
    assert result.returncode != 0, result.stdout
    assert "CI must run the browser tests: no Chromium at /nonexistent/chromium" in result.stdout
