"""Fixture firmware on a REAL Renode, compared with our simulator's output.

Runs wherever a real ``renode`` is found (``renode`` on PATH, or renode-run's
copy); skipped with the reason otherwise. The contract stand-in
(tests/backends/renode_standin) does not count: its ``--version`` carries a
marker and is skipped here. The jobs and the documented differences are
bench/renode_compare.py's (which prints the whole comparison table): every
fixture it does not list as a difference must give the simulator's job log
and outcome on Renode.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hwut.backends.base import RunRequest, StopReason
from hwut.backends.renode import RenodeBackend, RenodeNotFound, find_renode
from hwut.backends.sim import SimBackend

pytestmark = pytest.mark.renode

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "fixtures" / "build"
BOARD = "nucleo-f303re"
STANDIN_MARKER = "HWUT-RENODE-STANDIN"


def _compare_module():
    spec = importlib.util.spec_from_file_location("renode_compare",
                                                  ROOT / "bench" / "renode_compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


COMPARE = _compare_module()
SAME = sorted(name for name, job in COMPARE.FIXTURES.items()
              if name not in COMPARE.DIFFERENCES and job.board == BOARD)


def real_renode() -> tuple[Path | None, str]:
    """The real Renode executable, or None and why not."""
    try:
        renode = find_renode({})
    except RenodeNotFound as exc:
        return None, str(exc)
    try:
        done = subprocess.run([str(renode), "--version"], capture_output=True, text=True,
                              timeout=60, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{renode} --version failed: {exc}"
    if STANDIN_MARKER in done.stdout + done.stderr:
        return None, f"{renode} is HWUT's test stand-in, not Renode"
    if done.returncode != 0:
        return None, f"{renode} --version exited with status {done.returncode}"
    return renode, done.stdout.strip()


@pytest.fixture(scope="module")
def renode() -> Path:
    """Found once per module, when a test needs it (never at collection time)."""
    found, why = real_renode()
    if found is None:
        pytest.skip(f"no real Renode: {why}")
    return found


def renode_backend(renode: Path, **options) -> RenodeBackend:
    return RenodeBackend(BOARD, {"renode_path": str(renode), **options})


def run(backend, name: str, job) -> tuple[bytes, object]:
    out = bytearray()
    outcome = backend.run(RunRequest(BUILD / f"{name}.elf", "elf", BOARD, job.limit_s,
                                     out.extend, threading.Event(), uart_input=job.uart_input,
                                     presses=job.presses))
    return bytes(out), outcome


@pytest.mark.parametrize("name", SAME)
def test_job_log_and_outcome_match_the_simulator(renode, name):
    job = COMPARE.FIXTURES[name]
    expected, sim_outcome = run(SimBackend(BOARD), name, job)
    got, outcome = run(renode_backend(renode), name, job)
    assert (outcome.reason, outcome.exit_code) == (sim_outcome.reason, sim_outcome.exit_code), \
        f"{outcome.detail}\n{outcome.infra_log}"
    assert got == expected, outcome.infra_log


def test_the_platform_loads_without_warnings_about_our_wiring(renode):
    """No E15 (unnamed outputs), no missing reset macro, VTOR at 0."""
    _, outcome = run(renode_backend(renode), "core_system", COMPARE.FIXTURES["core_system"])
    log = outcome.infra_log
    assert "Error E" not in log and "No action for reset" not in log, log
    assert "VectorTableOffset 0x0" in log


def test_semihosting_exit_code_and_text(renode):
    job = COMPARE.FIXTURES["semihost_exit"]
    expected, sim_outcome = run(SimBackend(BOARD), "semihost_exit", job)
    got, outcome = run(renode_backend(renode), "semihost_exit", job)
    assert outcome.reason is StopReason.EXIT and outcome.exit_code == sim_outcome.exit_code == 3
    assert got == expected


def test_without_exit_hooks_the_detail_says_renode_reports_no_exit(renode):
    job = COMPARE.FIXTURES["semihost_exit"]
    _, outcome = run(renode_backend(renode, semihosting_exit=False), "semihost_exit",
                     COMPARE.Job(0.2))
    assert outcome.reason is StopReason.LIMIT and outcome.exit_code is None
    assert "Renode reports no semihosting exit" in outcome.detail
    assert job.limit_s >= 0.2


def test_availability_names_the_version(renode):
    found = RenodeBackend.availability({"renode_path": str(renode)})
    assert found.ok and "Renode" in found.detail
