"""A wheel builds, installs into a fresh venv (no extras, not editable) and runs the demo.

Slow (it builds the native module and installs the dependencies into a new venv), so
marked; CI runs it with everything else.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(ROOT)], check=True, timeout=600)
    (found,) = out.glob("hwut-*.whl")
    return found


def test_the_wheel_holds_one_top_level_package_and_the_demo_firmware(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"hwut", next(t for t in tops if t.endswith(".dist-info"))}, tops
    assert "hwut/demo/hello.elf" in names
    assert (zipfile.ZipFile(wheel).read("hwut/demo/hello.elf")
            == (ROOT / "fixtures" / "build" / "hello.elf").read_bytes())
    assert {"hwut/sim/renode/stm32f303re.repl", "hwut/sim/renode/nucleo_f303re.repl",
            "hwut/default_config.toml", "hwut/backends/sim.py"} <= set(names)
    assert any(n.startswith("hwut/sim/_native") for n in names), "native module not built"


def test_installed_from_the_wheel_the_demo_runs_anywhere(wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [str(wheel)], check=True, timeout=600)
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert not {"sim", "backends", "fixtures"} & {p.name for p in site.iterdir()}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HWUT_", "PYTHON"))}
    env["HWUT_CLIENT_CONFIG"] = str(tmp_path / "client.toml")
    done = subprocess.run([str(venv / "bin" / "hwut"), "demo"], cwd=elsewhere, env=env,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.startswith(b"HWUT hello from NUCLEO-F303RE\r\n"), done.stdout[:200]
    assert b"FINISHED" in done.stderr
