"""Real pyOCD against the simulated probe: pyOCD finds it through its ``pyocd.probe``
entry point, connects over the modelled SW-DP and drives the emulated core; the
console is read with real pyserial on the board's pseudo-terminal."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pyocd = pytest.importorskip("pyocd")
serial = pytest.importorskip("serial")

from pyocd.core import exceptions  # noqa: E402
from pyocd.core.helpers import ConnectHelper  # noqa: E402
from pyocd.core.target import Target  # noqa: E402

from hwut.backends.simlab import PROBES, SimulatedProbes, read_config  # noqa: E402

from .simulated_lab import registered_board  # noqa: E402

BUILD = Path(__file__).resolve().parents[2] / "fixtures" / "build"
UID = "hwutsim-nucleo-f303re-test"


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def probe() -> Iterator:
    """An emulated NUCLEO-F303RE running hello.elf behind a registered simulated probe;
    afterwards nothing of it is left: no thread, no file descriptor."""
    threads, fds = set(threading.enumerate()), _open_fds()
    with registered_board(UID, firmware=BUILD / "hello.elf", realtime=False) as board:
        yield board
    assert set(threading.enumerate()) <= threads, "a thread outlived the probe"
    assert _open_fds() <= fds, "a file descriptor outlived the probe"


def _session(**options):
    return ConnectHelper.session_with_chosen_probe(
        unique_id=UID, target_override="cortex_m", blocking=False, options=options or None)


def test_pyocd_lists_the_simulated_probe(probe):
    found = ConnectHelper.get_all_connected_probes(blocking=False, unique_id=UID)
    assert [p.unique_id for p in found] == [UID]
    assert found[0].description == "HWUT simulated SWD probe"


def test_a_missing_probe_is_none_not_a_wait():
    assert ConnectHelper.session_with_chosen_probe(
        unique_id="hwutsim-not-there", target_override="cortex_m", blocking=False) is None


def test_memory_through_the_ap(probe):
    with _session() as session:
        target = session.target
        assert target.cores[0].has_fpu
        target.write32(0x2000_0100, 0x1234_5678)
        assert target.read32(0x2000_0100) == 0x1234_5678
        target.write16(0x2000_0102, 0xABCD)
        target.write8(0x2000_0100, 0xEF)
        assert target.read32(0x2000_0100) == 0xABCD_56EF
        data = [(i * 7) & 0xFF for i in range(6000)]  # crosses the AP's 4 KiB pages
        target.write_memory_block8(0x2000_0FF3, data)
        assert target.read_memory_block8(0x2000_0FF3, len(data)) == data
        assert target.read32(0x0800_0000) == int.from_bytes((BUILD / "hello.bin").read_bytes()[:4],
                                                           "little")
        with pytest.raises(exceptions.TransferFaultError):
            target.read32(0x3000_0000)  # nothing there: a bus fault, sticky error cleared
        assert target.read32(0x2000_0100) == 0xABCD_56EF


def test_halt_registers_step_resume(probe):
    with _session(connect_mode="attach") as session:
        target = session.target
        assert target.get_state() == Target.State.RUNNING
        target.halt()
        assert target.get_state() == Target.State.HALTED
        regs = dict(zip(("r0", "sp", "pc", "xpsr", "msp", "psp", "control", "primask"),
                        target.read_core_registers_raw(
                            ["r0", "sp", "pc", "xpsr", "msp", "psp", "control", "primask"])))
        assert 0x0800_0000 <= regs["pc"] < 0x0808_0000
        assert regs["xpsr"] & (1 << 24) and regs["sp"] == regs["msp"]
        target.write_core_register("r0", 0xCAFE_F00D)
        assert target.read_core_register("r0") == 0xCAFE_F00D
        target.write_core_register("s3", 0x3F80_0000)
        assert target.read_core_register_raw("s3") == 0x3F80_0000
        # step a straight-line instruction: the PC advances by its size
        code = 0x2000_0400
        target.write_memory_block8(code, [0x00, 0xBF,                 # nop (2 bytes)
                                          0x4F, 0xF0, 0x2A, 0x00,     # mov.w r0, #42 (4 bytes)
                                          0xFE, 0xE7])                # b .
        target.write_core_register("pc", code)
        target.step()
        assert target.read_core_register("pc") == code + 2
        target.step()
        assert target.read_core_register("pc") == code + 6
        assert target.read_core_register("r0") == 42
        target.resume()
        assert target.get_state() == Target.State.RUNNING
        target.halt()
        assert target.read_core_register("pc") == code + 6  # spinning on `b .`


def test_reset_halt_stops_at_the_reset_handler(probe):
    with _session() as session:
        target = session.target
        target.reset_and_halt()
        assert target.get_state() == Target.State.HALTED
        assert target.read_core_register("pc") == target.read32(0x0800_0004) & ~1
        assert target.read_core_register("msp") == target.read32(0x0800_0000)
        target.reset()
        assert target.get_state() == Target.State.RUNNING


def test_hardware_reset_through_nrst(probe):
    with _session(reset_type="hw") as session:
        target = session.target
        target.reset_and_halt()
        assert target.get_state() == Target.State.HALTED
        assert target.read_core_register("pc") == target.read32(0x0800_0004) & ~1


def test_console_through_pyserial_while_the_core_runs(probe):
    port = serial.Serial(probe.console_path, 115200, timeout=5)
    try:
        with _session(connect_mode="attach") as session:
            session.target.reset()
            got = port.read_until(b"count=3\r\n")
    finally:
        port.close()
    assert b"HWUT hello from NUCLEO-F303RE\r\n" in got and got.endswith(b"count=3\r\n")


def test_a_probe_that_vanishes_mid_session(probe):
    session = _session(connect_mode="attach")
    session.open()
    try:
        session.target.halt()
        PROBES.unregister(UID)
        with pytest.raises(exceptions.ProbeError):
            session.target.read32(0x2000_0000)
    finally:
        PROBES.register(UID, probe)
        session.close()


def test_configured_probes_start_on_demand_and_stop(tmp_path):
    threads = set(threading.enumerate())
    link = tmp_path / "console"
    config = tmp_path / "probes.toml"
    config.write_text(f'[[probe]]\nuid = "hwutsim-cfg-0"\nboard = "nucleo-f303re"\n'
                      f'firmware = "{BUILD / "hello.elf"}"\nconsole = "{link}"\nrealtime = false\n')
    assert read_config(config)["hwutsim-cfg-0"]["board"] == "nucleo-f303re"
    registry = SimulatedProbes(environ=lambda: {"HWUT_SIMPROBES": str(config)})
    assert registry.uids() == ["hwutsim-cfg-0"]
    board = registry.board("hwutsim-cfg-0")
    try:
        assert link.is_symlink() and os.readlink(link) == board.console_path
        with serial.Serial(str(link), timeout=5) as port:
            assert b"count=" in port.read_until(b"count=1\r\n")
    finally:
        registry.close_started()
    assert not link.exists()
    assert set(threading.enumerate()) <= threads


def test_pyocd_command_line_finds_a_configured_probe(tmp_path):
    config = tmp_path / "probes.toml"
    config.write_text(f'[[probe]]\nuid = "hwutsim-cli-0"\nfirmware = "{BUILD / "hello.elf"}"\n')
    env = dict(os.environ, HWUT_SIMPROBES=str(config))
    listed = subprocess.run([sys.executable, "-m", "pyocd", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert "hwutsim-cli-0" in listed.stdout, listed.stdout + listed.stderr
    commander = subprocess.run(
        [sys.executable, "-m", "pyocd", "commander", "-u", "hwutsim-cli-0", "-t", "cortex_m",
         "-c", "reset halt", "-c", "read32 0x08000000 8", "-c", "reg pc"],
        env=env, capture_output=True, text=True, timeout=120)
    assert commander.returncode == 0, commander.stdout + commander.stderr
    vectors = (BUILD / "hello.bin").read_bytes()[:8]
    assert f"{int.from_bytes(vectors[:4], 'little'):08x}" in commander.stdout
    reset_handler = int.from_bytes(vectors[4:], "little") & ~1
    assert f"{reset_handler:08x}" in commander.stdout.lower(), commander.stdout


def test_breakpoints_halt_the_core(probe):
    with _session() as session:
        target = session.target
        target.reset_and_halt()
        entry = target.read_core_register("pc")
        # a hardware breakpoint (FPB) a few instructions into the reset handler
        at = entry + 4
        assert target.set_breakpoint(at, Target.BreakpointType.HW)
        target.resume()
        for _ in range(1000):
            if target.get_state() == Target.State.HALTED:
                break
        assert target.get_state() == Target.State.HALTED
        assert target.read_core_register("pc") == at
        assert target.get_halt_reason() == Target.HaltReason.BREAKPOINT
        target.remove_breakpoint(at)
        # a software breakpoint: pyOCD writes a BKPT into SRAM code
        code = 0x2000_0400
        target.write_memory_block8(code, [0x00, 0xBF, 0x00, 0xBF, 0xFE, 0xE7])  # nop; nop; b .
        target.write_core_register("pc", code)
        assert target.set_breakpoint(code + 2, Target.BreakpointType.SW)
        target.resume()
        for _ in range(1000):
            if target.get_state() == Target.State.HALTED:
                break
        assert target.read_core_register("pc") == code + 2
        target.remove_breakpoint(code + 2)
        assert target.read16(code + 2) == 0xBF00  # the instruction is back


def test_a_target_that_stops_answering(probe):
    with _session() as session:
        target = session.target
        target.halt()
        probe.dp.responding = False
        with pytest.raises(exceptions.TransferError):
            target.read32(0x2000_0000)
        probe.dp.responding = True
        target.write32(0x2000_0000, 7)
        assert target.read32(0x2000_0000) == 7


def test_a_simulated_lab_served_to_other_processes(tmp_path):
    """`pyocd server` serves a configured board (started when listed) over pyOCD's
    remote-probe protocol; another process connects to remote:localhost:PORT and
    reads the console at the configured path, as a lab host's jobs would."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    link = tmp_path / "console"
    config = tmp_path / "lab.toml"
    config.write_text(f'[[probe]]\nuid = "hwutsim-lab-0"\nfirmware = "{BUILD / "hello.elf"}"\n'
                      f'console = "{link}"\nstart = "listed"\n')
    server = subprocess.Popen([sys.executable, "-m", "pyocd", "server", "-u", "hwutsim-lab-0",
                               "-p", str(port)], env=dict(os.environ, HWUT_SIMPROBES=str(config)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time
        deadline = time.monotonic() + 30
        while not link.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert link.is_symlink(), "the lab's board did not start"
        with serial.Serial(str(link), timeout=5) as console:
            session = None
            while session is None and time.monotonic() < deadline:
                try:
                    session = ConnectHelper.session_with_chosen_probe(
                        unique_id=f"remote:localhost:{port}", target_override="cortex_m",
                        blocking=False, options={"connect_mode": "attach"})
                except (exceptions.Error, OSError):  # the server is not listening yet
                    time.sleep(0.2)
                    continue
                try:
                    session.open()
                except (exceptions.Error, OSError):
                    session.close()
                    session = None
                    time.sleep(0.2)
            assert session is not None
            try:
                # the board prints from its start, maybe before the port was open: once it
                # has counted past 0, the next count=0 can only come after the reset
                lines = (console.read_until(b"\r\n") for _ in range(50))
                assert any(re.search(rb"count=[1-9]\d*\r\n$", line) for line in lines)
                session.target.reset()
                assert b"HWUT hello from NUCLEO-F303RE" in console.read_until(b"count=0\r\n")
            finally:
                session.close()
    finally:
        server.send_signal(signal.SIGINT)  # as ^C: pyOCD exits, the board stops
        server.wait(timeout=30)
    assert not link.is_symlink()  # the board's console went with it


def test_the_lab_can_be_imported_before_pyocd():
    """pyOCD loads its plug-ins when it is first imported; the plug-in imports the lab.
    Code that registers boards first and imports pyOCD afterwards must work."""
    script = ("import hwut.backends.simlab as lab\n"
              "from pyocd.core.helpers import ConnectHelper\n"
              "import hwut.backends.simprobe as plugin\n"
              "assert plugin.PROBES is lab.PROBES\n"
              "from pyocd.target import TARGET\n"
              "assert 'stm32f303retx' in TARGET\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
