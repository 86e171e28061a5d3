"""The CI examples (issue 16) run as a CI runner would run them: examples/hwut-ci.sh,
which both pipelines call after ``pip install``, with HWUT installed in this venv (the
install step itself needs a package index, which the tests do not reach)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import xmlschema
from fixture_firmware import path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "hwut-ci.sh"
SCHEMA = xmlschema.XMLSchema(str(REPO / "tests" / "junit.xsd"))


def run_script(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bindir = str(Path(sys.executable).parent)
    environ = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), **env}
    environ.pop("HWUT_URL", None)
    environ.pop("HWUT_TOKEN", None)
    return subprocess.run(["bash", str(SCRIPT)], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=300, check=False)


def test_both_pipelines_install_with_pip_and_run_the_script():
    for name in ("github-actions.yml", "gitlab-ci.yml"):
        text = (REPO / "examples" / name).read_text()
        assert 'pip install "$HWUT_PACKAGE"' in text, name
        assert "bash examples/hwut-ci.sh" in text, name
        assert "hwut-report.xml" in text, name


def test_the_script_passes_the_shipped_firmware_and_writes_junit(tmp_path: Path):
    done = run_script(tmp_path)
    assert done.returncode == 0, done.stderr + (tmp_path / ".hwut" / "server.log").read_text()
    assert done.stdout.startswith("HWUT hello from NUCLEO-F303RE")
    assert "PASSED" in done.stderr.splitlines()[-1]
    SCHEMA.validate(str(tmp_path / "hwut-report.xml"))
    # the server is gone with the script
    assert subprocess.run(["pgrep", "-f", str(tmp_path / ".hwut" / "data")],
                          capture_output=True, check=False).returncode == 1


def test_the_script_fails_a_firmware_that_misses_its_lines(tmp_path: Path):
    done = run_script(tmp_path, FIRMWARE=str(path("fault")))
    assert done.returncode == 41, done.stderr
    assert "FAILED" in done.stderr
    SCHEMA.validate(str(tmp_path / "hwut-report.xml"))
