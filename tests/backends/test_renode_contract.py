"""The Renode backend keeps the backend contract, checked against a stand-in ``renode``.

The stand-in (tests/backends/renode_standin/renode, a test double) accepts only
Renode's documented command line and the monitor commands the backend
generates, and produces console output by running the firmware on our own
simulator. So this exercises the backend's real path: script generation,
process start, UART file streaming, cancel, SIGTERM/SIGKILL, pid file, cleanup.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hwut.backends.base import CancelReason, CancelToken, OptionError, RunRequest, StopReason
from hwut.backends.registry import load_backends
from hwut.backends.renode import (
    RenodeBackend,
    RenodeNotFound,
    build_script,
    command_line,
    find_renode,
    renode_time,
)

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "fixtures" / "build"
EXPECTED = ROOT / "fixtures" / "expected"
STANDIN = Path(__file__).resolve().parent / "renode_standin" / "renode"
BOARD = "nucleo-f303re"


@pytest.fixture(autouse=True)
def standin_env(monkeypatch):
    """The stand-in runs under this interpreter (HWUT installed) with default behaviour."""
    monkeypatch.setenv("RENODE_STANDIN_PYTHON", sys.executable)
    for name in ("FAIL", "HANG", "SEMIHOSTING", "SLICE_S"):
        monkeypatch.delenv(f"RENODE_STANDIN_{name}", raising=False)
    monkeypatch.setenv("RENODE_STANDIN_DELAY_S", "0.002")  # the streaming test slows it down


def backend(tmp_path: Path, **options) -> RenodeBackend:
    opts = {"renode_path": str(STANDIN), "work_dir": str(tmp_path)}
    opts.update(options)
    return RenodeBackend(BOARD, opts)


def request(name: str, limit: float, *, fmt: str = "elf", sink=None, cancel=None,
            path: Path | None = None) -> RunRequest:
    return RunRequest(path or BUILD / f"{name}.{fmt}", fmt, BOARD, limit,
                      sink or (lambda data: None), cancel or CancelToken())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for_pid(work: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid_file in work.glob("hwut-renode-*/renode.pid"):
            text = pid_file.read_text().strip()
            if text:
                return int(text)
        time.sleep(0.02)
    raise AssertionError("the stand-in wrote no pid file")


def run_in_thread(b: RenodeBackend, req: RunRequest) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def work():
        result["outcome"] = b.run(req)

    worker = threading.Thread(target=work)
    worker.start()
    return worker, result


# -- what the backend hands to Renode ------------------------------------------------------
def test_script_and_command_line_follow_renode_documentation(tmp_path):
    platform = tmp_path / "board.repl"
    script = build_script(platform=platform, console="sysbus.usart2",
                          firmware=tmp_path / "fw.bin", fmt="bin", uart_file=tmp_path / "u.log",
                          limit_s=1.05, mips=72)
    assert script.splitlines() == [
        'mach create "hwut"',
        f"machine LoadPlatformDescription @{platform}",
        f"sysbus LoadBinary @{tmp_path / 'fw.bin'} 0x08000000",
        "sysbus.cpu VectorTableOffset 0x08000000",
        "sysbus.cpu PerformanceInMips 72",
        f"sysbus.usart2 CreateFileBackend @{tmp_path / 'u.log'} true",
        "emulation SetGlobalAdvanceImmediately true",
        'emulation RunFor "00:00:01.050000"',
        "quit",
    ]
    argv = command_line(Path("/opt/renode/renode"), tmp_path / "job.resc", tmp_path / "r.pid")
    assert argv == ["/opt/renode/renode", "--disable-xwt", "--console", "--plain", "--port", "-2",
                    "--pid-file", str(tmp_path / "r.pid"), str(tmp_path / "job.resc")]


def test_time_limits_use_renodes_interval_format():
    assert renode_time(1.05) == "00:00:01.050000"
    assert renode_time(0.0000015) == "00:00:00.000002"
    assert renode_time(3725.5) == "01:02:05.500000"


def test_paths_renode_cannot_parse_are_refused(tmp_path):
    with pytest.raises(ValueError, match="spaces"):
        build_script(platform=tmp_path / "a b.repl", console="sysbus.usart2",
                     firmware=tmp_path / "fw.elf", fmt="elf", uart_file=tmp_path / "u",
                     limit_s=1)


# -- running ------------------------------------------------------------------------------------
def test_hello_streams_while_running_and_matches_the_expected_text(tmp_path, monkeypatch):
    monkeypatch.setenv("RENODE_STANDIN_DELAY_S", "0.02")  # ~0.5 s for 1 s of virtual time
    chunks: list[tuple[float, bytes]] = []
    outcome = backend(tmp_path).run(
        request("hello", 1, sink=lambda d: chunks.append((time.monotonic(), d))))
    finished = time.monotonic()
    assert outcome.reason is StopReason.LIMIT, outcome.detail
    assert b"".join(d for _, d in chunks) == (EXPECTED / "hello.txt").read_bytes()
    assert len(chunks) > 1  # streamed as the file grew, not read once at the end
    assert chunks[0][0] < finished - 0.1
    assert outcome.time_used_s == pytest.approx(1)
    assert 'emulation RunFor "00:00:01.000000"' in outcome.infra_log
    assert "Renode is quitting" in outcome.infra_log  # Renode's own output, apart from the UART
    assert list(tmp_path.iterdir()) == []  # the job directory is gone


@pytest.mark.parametrize("fmt,load", [("bin", "sysbus LoadBinary @"), ("hex", "sysbus LoadHEX @")])
def test_bin_and_hex_load_paths(tmp_path, fmt, load):
    out = bytearray()
    outcome = backend(tmp_path).run(request("blink", 0.3, fmt=fmt, sink=out.extend))
    assert outcome.reason is StopReason.LIMIT, outcome.detail
    assert out == b"tick 1 led=1\r\n"
    assert load in outcome.infra_log
    assert "sysbus.cpu VectorTableOffset 0x08000000" in outcome.infra_log


def test_renode_found_first_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{STANDIN.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = bytearray()
    outcome = RenodeBackend(BOARD, {"work_dir": str(tmp_path)}).run(
        request("blink", 0.3, sink=out.extend))
    assert outcome.reason is StopReason.LIMIT and out == b"tick 1 led=1\r\n"
    assert str(STANDIN) in outcome.infra_log


def test_a_hung_renode_is_ended_by_the_runs_token(tmp_path, monkeypatch):
    # the scheduler's deadline reaches the backend as a cancel with that reason
    monkeypatch.setenv("RENODE_STANDIN_HANG", "1")
    cancel = CancelToken()
    worker, result = run_in_thread(backend(tmp_path), request("hello", 1, cancel=cancel))
    pid = wait_for_pid(tmp_path)
    cancel.cancel(CancelReason.DEADLINE, "the job did not end within 1 s of wall time")
    worker.join(10)
    assert result["outcome"].reason is StopReason.CANCEL
    assert not alive(pid)


def test_sigkill_follows_when_sigterm_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("RENODE_STANDIN_HANG", "ignore-term")
    cancel = CancelToken()
    b = backend(tmp_path, term_grace_s=0.3)
    worker, result = run_in_thread(b, request("hello", 1, cancel=cancel))
    pid = wait_for_pid(tmp_path)
    cancel.cancel(CancelReason.USER)
    worker.join(10)
    assert result["outcome"].reason is StopReason.CANCEL
    assert not alive(pid)


@pytest.mark.parametrize("options,message", [
    ({"wall_factor": 10.0}, "unknown options of backend renode: wall_factor"),
    ({"term_grace_s": "3"}, "option term_grace_s must be a number >= 0, not '3'"),
    ({"extra_commands": "quit"}, "option extra_commands must be a list of strings"),
    ({"monitor_on_console": 1}, "option monitor_on_console must be true or false, not 1"),
])
def test_options_are_typed_and_checked(options, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        RenodeBackend.check_options(options)


def test_a_failing_start_is_an_infrastructure_error_with_renodes_message(tmp_path, monkeypatch):
    monkeypatch.setenv("RENODE_STANDIN_FAIL", "Fatal: the .NET runtime could not be loaded")
    outcome = backend(tmp_path).run(request("hello", 1))
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "status 1" in outcome.detail
    assert "the .NET runtime could not be loaded" in outcome.detail
    assert "the .NET runtime could not be loaded" in outcome.infra_log


def test_a_monitor_error_ends_renode_and_reports_the_message(tmp_path):
    missing = tmp_path / "missing.elf"
    t = time.monotonic()
    outcome = backend(tmp_path).run(
        request("hello", 300, path=missing))
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "Could not find file" in outcome.detail and str(missing) in outcome.detail
    assert time.monotonic() - t < 5  # Renode idles after a script error; we do not wait for it


def test_a_platform_error_is_reported(tmp_path, monkeypatch):
    platforms = tmp_path / "platforms"
    platforms.mkdir()
    (platforms / "nucleo_f303re.repl").write_text(
        '// hwut-console: sysbus.usart2\nusing "./no_such_soc.repl"\n')
    monkeypatch.setattr("hwut.backends.renode.platform_dir", lambda: platforms)
    work = tmp_path / "work"
    work.mkdir()
    outcome = backend(work).run(request("hello", 1))
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "no_such_soc.repl" in outcome.detail


def test_extra_commands_reach_renode_after_the_platform(tmp_path, monkeypatch):
    monkeypatch.setenv("RENODE_STANDIN_SEMIHOSTING", "1")
    extra = ['machine LoadPlatformDescriptionFromString "semihosting: UART.SemihostingUart @ cpu"']
    outcome = backend(tmp_path, extra_commands=extra).run(request("semihost_exit", 5))
    assert outcome.reason is StopReason.EXIT and outcome.exit_code == 3, outcome.detail
    script = outcome.infra_log.split("--- script ---\n")[1]
    assert script.splitlines()[4] == extra[0]  # after the platform, the firmware, the speed
    bad = backend(tmp_path, extra_commands=['machine LoadPlatformDescriptionFromString "x: Y @ nope"'])
    outcome = bad.run(request("semihost_exit", 5))
    assert outcome.reason is StopReason.INFRASTRUCTURE and "nope" in outcome.detail


def test_monitor_hidden_when_configured(tmp_path):
    out = bytearray()
    outcome = backend(tmp_path, monitor_on_console=False).run(
        request("blink", 0.3, sink=out.extend))
    assert outcome.reason is StopReason.LIMIT and out == b"tick 1 led=1\r\n"
    assert "--console" not in outcome.infra_log.splitlines()[0]


def test_without_a_semihosting_handler_the_job_runs_to_its_limit(tmp_path):
    outcome = backend(tmp_path).run(request("semihost_exit", 0.2))
    assert outcome.reason is StopReason.LIMIT and outcome.exit_code is None


def test_unknown_board_is_an_infrastructure_error(tmp_path):
    b = RenodeBackend("stm32f3discovery", {"renode_path": str(STANDIN)})
    outcome = b.run(RunRequest(BUILD / "hello.elf", "elf", "stm32f3discovery", 1,
                               lambda d: None, threading.Event()))
    assert outcome.reason is StopReason.INFRASTRUCTURE and "no Renode platform" in outcome.detail


# -- nothing is left behind ----------------------------------------------------------------------
def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_exception_in_the_sink_still_kills_renode_and_cleans_up(tmp_path):
    seen: dict = {}
    fds = _open_fds()

    def sink(data: bytes) -> None:
        seen["pid"] = wait_for_pid(tmp_path)
        raise RuntimeError("the job log is gone")

    with pytest.raises(RuntimeError, match="job log is gone"):
        backend(tmp_path).run(request("echo", 300, sink=sink))
    assert not alive(seen["pid"])
    assert list(tmp_path.iterdir()) == []
    assert _open_fds() == fds


# -- finding Renode and availability -----------------------------------------------------------------
def test_availability_reports_the_version(tmp_path):
    found = RenodeBackend.availability({"renode_path": str(STANDIN)})
    assert found.ok and "Renode v1.16.1" in found.detail and str(STANDIN) in found.detail


def test_availability_without_renode(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    missing = RenodeBackend.availability({})
    assert not missing.ok and "Renode not found" in missing.detail
    configured = RenodeBackend.availability({"renode_path": str(tmp_path / "renode")})
    assert not configured.ok and "does not exist" in configured.detail
    outcome = RenodeBackend(BOARD, {}).run(request("hello", 1))
    assert outcome.reason is StopReason.INFRASTRUCTURE and "Renode not found" in outcome.detail


def test_a_renode_that_fails_version_is_unavailable(monkeypatch):
    monkeypatch.setenv("RENODE_STANDIN_PYTHON", "/nonexistent/python")
    result = RenodeBackend.availability({"renode_path": str(STANDIN)})
    assert not result.ok


def test_renode_runs_installed_copy_is_found(tmp_path):
    package = tmp_path / ".config" / "renode" / "renode-run.download" / "renode_1.16.1"
    package.mkdir(parents=True)
    shutil.copy(STANDIN, package / "renode")
    (tmp_path / ".config" / "renode" / "renode-run.json").write_text(json.dumps(
        {"version": "2.1", "default": str(package),
         "installations": {str(package): {"version": "1.16.1"}}}))
    assert find_renode({}, which=lambda name: None, home=tmp_path) == package / "renode"
    with pytest.raises(RenodeNotFound, match="renode-run"):
        find_renode({}, which=lambda name: None, home=tmp_path / "elsewhere")


def test_found_through_the_entry_point_group():
    found = load_backends()
    if "renode" not in found:
        pytest.skip('entry point not registered yet: add renode = "hwut.backends.renode:RenodeBackend"')
    assert found["renode"] is RenodeBackend


# -- the stand-in refuses what Renode refuses ---------------------------------------------------------
def run_standin(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "job.resc"
    path.write_text(script)
    return subprocess.run([str(STANDIN), *args, str(path)], cwd=tmp_path, capture_output=True,
                          check=False, text=True, stdin=subprocess.DEVNULL, timeout=30)


PLATFORM = ROOT / "sim" / "renode" / "nucleo_f303re.repl"


@pytest.mark.parametrize("line,error", [
    ("emulaton RunFor \"1\"", "Unknown command"),
    ('mach create "hwut', "Unbalanced quote"),
    ("mach create \"a\" \"b\"", "Parameters did not match"),
    (f"machine LoadPlatformDescription @{PLATFORM} extra", "Parameters did not match"),
    ("machine LoadPlatformDescription @/nonexistent/board.repl", "Could not find file"),
    ("emulation RunFor \"1s\"", "Could not parse"),
    ("emulation RunFor 00:00:01", "quoted string"),
    ("cpu VectorTableOffset 0x08000000", "using sysbus"),
    ("sysbus.usart9 CreateFileBackend @/tmp/x true", "Could not find device"),
    ("sysbus LoadBinary @" + str(BUILD / "blink.bin"), "Parameters did not match"),
])
def test_standin_rejects_invalid_scripts(tmp_path, line, error):
    script = (f'mach create "hwut"\nmachine LoadPlatformDescription @{PLATFORM}\n'
              if not line.startswith(("mach ", "machine ")) else "")
    if line.startswith("machine "):
        script = 'mach create "hwut"\n'
    done = run_standin(tmp_path, script + line + "\nquit\n")
    assert "There was an error executing command" in done.stdout
    assert error in done.stdout


def test_standin_rejects_unknown_options(tmp_path):
    done = run_standin(tmp_path, "quit\n", "--disable-gui", "--headless")
    assert done.returncode == 1 and "Unknown option: --headless" in done.stderr


def test_standin_accepts_both_gui_flags_and_writes_its_pid(tmp_path):
    done = run_standin(tmp_path, "quit\n", "--disable-gui", "--disable-xwt", "-p",
                       "-P", "-2", "--pid-file", str(tmp_path / "pid"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "pid").read_text().isdigit()
