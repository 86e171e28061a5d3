"""Fixture firmware on a REAL Renode, compared with our simulator's output.

Runs wherever a real ``renode`` is found (``renode`` on PATH, or renode-run's
copy); skipped with the reason otherwise. The contract stand-in
(tests/backends/renode_standin) does not count: its ``--version`` carries a
marker and is skipped here.
"""
from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from hwut.backends.base import RunRequest, StopReason
from hwut.backends.renode import RenodeBackend, RenodeNotFound, find_renode
from hwut.backends.sim import SimBackend

pytestmark = pytest.mark.renode

BUILD = Path(__file__).resolve().parents[2] / "fixtures" / "build"
BOARD = "nucleo-f303re"
STANDIN_MARKER = "HWUT-RENODE-STANDIN"


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


def run(backend, name: str, limit: float) -> tuple[bytes, object]:
    out = bytearray()
    outcome = backend.run(RunRequest(BUILD / f"{name}.elf", "elf", BOARD, limit, out.extend,
                                     threading.Event()))
    return bytes(out), outcome


@pytest.mark.parametrize("name,limit", [("hello", 1), ("blink", 1), ("hal_clock", 0.6)])
def test_uart_output_matches_the_simulator(renode, name, limit):
    expected, _ = run(SimBackend(BOARD), name, limit)
    got, outcome = run(RenodeBackend(BOARD, {"renode_path": str(renode)}), name, limit)
    assert outcome.reason is StopReason.LIMIT, f"{outcome.detail}\n{outcome.infra_log}"
    assert got == expected, outcome.infra_log


def test_semihost_exit(renode):
    """Renode's semihosting lives outside our platform file (it differs between versions).

    Without a semihosting handler there is no console text and no exit: the
    job must still end cleanly at its limit. With the newer handler configured
    through ``extra_commands`` the exit code must be the simulator's.
    """
    expected, sim_outcome = run(SimBackend(BOARD), "semihost_exit", 5)
    got, outcome = run(RenodeBackend(BOARD, {"renode_path": str(renode)}), "semihost_exit", 1)
    assert outcome.reason in (StopReason.LIMIT, StopReason.EXIT), outcome.infra_log
    if outcome.reason is StopReason.EXIT:
        assert outcome.exit_code == sim_outcome.exit_code == 3
    if got:
        assert got == expected


def test_availability_names_the_version(renode):
    found = RenodeBackend.availability({"renode_path": str(renode)})
    assert found.ok and "Renode" in found.detail
