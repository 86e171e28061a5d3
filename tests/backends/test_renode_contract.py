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
    JobFiles,
    RenodeBackend,
    RenodeNotFound,
    RenodeOptions,
    build_script,
    command_line,
    exit_hook,
    find_renode,
    renode_time,
    runner_script,
    semihosting_sites,
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
    files = JobFiles(uart=tmp_path / "u.log", semihosting=tmp_path / "s.log")
    script = build_script(platform=platform, console="sysbus.usart2",
                          firmware=tmp_path / "fw.bin", fmt="bin", files=files,
                          limit_s=1.05, mips=8, hooks=[0x08000200])
    assert script.splitlines() == [
        'mach create "hwut"',
        f"machine LoadPlatformDescription @{platform}",
        f"sysbus LoadBinary @{tmp_path / 'fw.bin'} 0x08000000",
        "sysbus.cpu VectorTableOffset 0x0",
        "sysbus.cpu PerformanceInMips 8",
        "macro reset",
        '"""',
        "    sysbus.cpu VectorTableOffset 0x0",
        '"""',
        f"sysbus.usart2 CreateFileBackend @{tmp_path / 'u.log'} true",
        f"sysbus.cpu.semihosting CreateFileBackend @{tmp_path / 's.log'} true",
        exit_hook(0x08000200),
        "emulation SetGlobalAdvanceImmediately true",
        'emulation RunFor "00:00:01.050000"',
        "quit",
    ]
    runner = tmp_path / "schedule.py"
    script = build_script(platform=platform, console="sysbus.usart2",
                          firmware=tmp_path / "fw.elf", fmt="elf",
                          files=JobFiles(uart=files.uart, semihosting=files.semihosting,
                                         runner=runner), limit_s=1)
    assert script.splitlines()[-2:] == [f"include @{runner}", "quit"]
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
                     firmware=tmp_path / "fw.elf", fmt="elf",
                     files=JobFiles(uart=tmp_path / "u", semihosting=tmp_path / "s"), limit_s=1)


def test_exit_hook_is_one_single_quoted_monitor_argument():
    line = exit_hook(0x0800_01A2)
    head, code = line.split(" '", 1)
    assert head == "sysbus.cpu AddHook 0x080001A2" and code.endswith("'")
    assert "'" not in code[:-1] and "\n" not in code
    compile(code[:-1], "hook", "exec")  # Python 2 and 3 read this line alike


def test_semihosting_sites_are_the_bkpt_0xab_halfwords():
    segments = [(0x0800_0000, bytes([0x00, 0xBF, 0xAB, 0xBE, 0xAB])),  # nop; bkpt 0xab
                (0x2000_0001, bytes([0xAB, 0xAB, 0xBE, 0x00]))]  # odd start: aligned only
    assert semihosting_sites(segments) == [0x0800_0002, 0x2000_0002]
    assert semihosting_sites(segments, limit=1) == [0x0800_0002]
    elf = (BUILD / "semihost_exit.elf")
    from hwut.backends.image import load
    sites = semihosting_sites([(s.address, s.data) for s in load(elf).segments])
    assert sites and all(0x0800_0000 <= a < 0x0808_0000 for a in sites)


def test_runner_schedules_presses_and_input_in_nanoseconds():
    text = runner_script(limit_s=1.0, console="sysbus.usart2", console_base=0x4000_4400,
                         uart_input=b"hi", presses=[("B1", 0.5, 0.7)],
                         buttons={"B1": "sysbus.gpioPortC.B1"}, input_slice_s=0.001)
    compile(text, "schedule", "exec")
    assert "hwut_limit = 1000000000" in text
    assert "hwut_input = [104, 105]" in text
    assert ("hwut_events = [(500000000, 'sysbus.gpioPortC.B1', 'Press'), "
            "(700000000, 'sysbus.gpioPortC.B1', 'Release')]") in text
    assert "0x40004400" in text
    with pytest.raises(ValueError, match="no button 'B2'"):
        runner_script(limit_s=1.0, console="sysbus.usart2", console_base=0x4000_4400,
                      uart_input=b"", presses=[("B2", 0.5, None)],
                      buttons={"B1": "sysbus.gpioPortC.B1"}, input_slice_s=0.001)


def test_options_are_checked_once_when_the_instance_is_made():
    settings = RenodeOptions.from_mapping({"wall_factor": 3, "extra_commands": ["x"]})
    assert settings.wall_factor == 3.0 and settings.extra_commands == ("x",)
    assert settings.semihosting_exit is True  # the declared default
    with pytest.raises(OptionError, match="unknown"):
        RenodeBackend(BOARD, {"nope": 1})
    assert not RenodeBackend.availability({"nope": 1}).ok


def test_the_wall_allowance_is_start_up_plus_an_allowance_per_virtual_second():
    # the scheduler adds it to the job's wall and CPU budget (its one deadline)
    assert RenodeBackend.extra_wall_s(0.5, {"startup_allowance_s": 20, "wall_factor": 100}) \
        == 70.0
    assert RenodeBackend.extra_wall_s(0, {}) == 60.0


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
    assert "sysbus.cpu VectorTableOffset 0x0\n" in outcome.infra_log


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
    ({"wall_facter": 10.0}, "unknown options of backend renode: wall_facter"),
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
    outcome = backend(tmp_path, extra_commands=[f"sysbus LoadELF @{missing}"]).run(
        request("hello", 300))
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "Could not find file" in outcome.detail and str(missing) in outcome.detail
    assert time.monotonic() - t < 5  # Renode idles after a script error; we do not wait for it


def test_a_missing_executable_fails_before_renode_starts(tmp_path):
    missing = tmp_path / "missing.elf"
    outcome = backend(tmp_path).run(request("hello", 300, path=missing))
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert outcome.detail.startswith("cannot prepare the Renode job") and str(missing) in outcome.detail
    assert "$ " not in outcome.infra_log  # no Renode was started


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


def test_semihosting_output_and_exit_through_the_exit_hooks(tmp_path):
    """The default: hooks at the image's BKPT 0xAB report the exit code; the
    semihosting text comes from the semihosting UART's file into the job log."""
    out = bytearray()
    outcome = backend(tmp_path).run(request("semihost_exit", 5, sink=out.extend))
    assert outcome.reason is StopReason.EXIT and outcome.exit_code == 3, outcome.detail
    assert outcome.detail == "firmware exited with code 3"
    assert bytes(out) == (EXPECTED / "semihost_exit.txt").read_bytes()
    assert "sysbus.cpu AddHook 0x" in outcome.infra_log
    assert "hwut-semihosting-exit code=3" in outcome.infra_log
    assert 0 < outcome.time_used_s < 0.01


def test_semihosting_exit_when_renode_reports_it(tmp_path, monkeypatch):
    """A newer Renode's own exit line is honoured when our hooks are off."""
    monkeypatch.setenv("RENODE_STANDIN_SEMIHOSTING", "1")
    outcome = backend(tmp_path, semihosting_exit=False).run(request("semihost_exit", 5))
    assert outcome.reason is StopReason.EXIT and outcome.exit_code == 3
    assert "Program exited with reason" in outcome.infra_log
    assert "AddHook" not in outcome.infra_log


def test_extra_commands_reach_renode_after_the_platform(tmp_path):
    extra = ['machine LoadPlatformDescriptionFromString "ld9: Miscellaneous.LED @ gpioPortB 9"']
    outcome = backend(tmp_path, extra_commands=extra).run(request("semihost_exit", 5))
    assert outcome.reason is StopReason.EXIT and outcome.exit_code == 3, outcome.detail
    script = outcome.infra_log.split("--- script ---\n")[1].splitlines()
    # after the platform, the firmware, VTOR, the speed and the reset macro
    assert script.index(extra[0]) == script.index("macro reset") + 4
    bad = backend(tmp_path, extra_commands=['machine LoadPlatformDescriptionFromString "x: Y @ nope"'])
    outcome = bad.run(request("semihost_exit", 5))
    assert outcome.reason is StopReason.INFRASTRUCTURE and "nope" in outcome.detail


def test_monitor_hidden_when_configured(tmp_path):
    out = bytearray()
    outcome = backend(tmp_path, monitor_on_console=False).run(
        request("blink", 0.3, sink=out.extend))
    assert outcome.reason is StopReason.LIMIT and out == b"tick 1 led=1\r\n"
    assert "--console" not in outcome.infra_log.splitlines()[0]


def test_without_exit_hooks_the_job_runs_to_its_limit_and_says_why(tmp_path):
    outcome = backend(tmp_path, semihosting_exit=False).run(request("semihost_exit", 0.2))
    assert outcome.reason is StopReason.LIMIT and outcome.exit_code is None
    assert "Renode reports no semihosting exit" in outcome.detail
    assert "semihosting_exit is off" in outcome.detail
    plain = backend(tmp_path, semihosting_exit=False).run(request("blink", 0.3))
    assert plain.reason is StopReason.LIMIT and plain.detail == ""  # no semihosting in blink


def test_console_input_reaches_the_firmware_once_it_listens(tmp_path):
    out = bytearray()
    req = RunRequest(BUILD / "echo.elf", "elf", BOARD, 0.1, out.extend, threading.Event(),
                     uart_input=b"ab\rc")
    outcome = backend(tmp_path).run(req)
    assert outcome.reason is StopReason.LIMIT, outcome.detail
    assert bytes(out) == (EXPECTED / "echo.txt").read_bytes() + b"ab\r\nc"
    assert "include @" in outcome.infra_log and "--- schedule.py ---" in outcome.infra_log


def test_presses_at_their_virtual_times(tmp_path):
    import re
    out = bytearray()
    req = RunRequest(BUILD / "button.elf", "elf", BOARD, 1.0, out.extend, threading.Event(),
                     presses=(("B1", 0.5, 0.7),))
    outcome = backend(tmp_path).run(req)
    assert outcome.reason is StopReason.LIMIT, outcome.detail
    m = re.fullmatch(rb"B1 idle=1\r\npressed at (\d+) ms\r\nreleased at (\d+) ms\r\n", bytes(out))
    assert m, bytes(out)
    assert "(500000000, 'sysbus.gpioPortC.B1', 'Press')" in outcome.infra_log
    bad = RunRequest(BUILD / "button.elf", "elf", BOARD, 1.0, out.extend, threading.Event(),
                     presses=(("B7", 0.5, None),))
    outcome = backend(tmp_path).run(bad)
    assert outcome.reason is StopReason.INFRASTRUCTURE and "no button 'B7'" in outcome.detail


def test_renode_accepts_what_the_sim_backend_accepts():
    from hwut.backends.sim import SimBackend
    ours, sims = RenodeBackend.board_info(BOARD), SimBackend.board_info(BOARD)
    assert ours is not None and sims is not None
    assert (ours.console_input, ours.presses) == (sims.console_input, sims.presses) == (True, True)
    assert ours.buttons == sims.buttons


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


def test_standin_refuses_a_usart_connection_without_its_output_named(tmp_path):
    """Renode 1.15.3's answer to ``-> nvic@37`` on STM32F7_USART, which has two outputs."""
    soc = (ROOT / "sim" / "renode" / "stm32f303re.repl").read_text()
    broken = soc.replace("    IRQ -> nvic@37\n", "    -> nvic@37\n", 1)
    assert broken != soc
    (tmp_path / "stm32f303re.repl").write_text(broken)
    (tmp_path / "nucleo_f303re.repl").write_text(PLATFORM.read_text())
    done = run_standin(tmp_path, f'mach create "hwut"\nmachine LoadPlatformDescription '
                                 f'@{tmp_path / "nucleo_f303re.repl"}\nquit\n')
    assert ("Error E15: Ambiguous choice of default interrupt. There are the following "
            "properties of GPIO type available: [IRQ, ReceiveDmaRequest]") in done.stdout


def test_standin_accepts_the_real_platform_and_the_job_script_lines(tmp_path):
    script = (f'mach create "hwut"\nmachine LoadPlatformDescription @{PLATFORM}\n'
              f"sysbus LoadELF @{BUILD / 'semihost_exit.elf'}\nsysbus.cpu VectorTableOffset 0x0\n"
              'macro reset\n"""\n    sysbus.cpu VectorTableOffset 0x0\n"""\n'
              f"sysbus.cpu.semihosting CreateFileBackend @{tmp_path / 's.log'} true\n"
              "sysbus.cpu AddHook 0x08000200 'x = 1'\nquit\n")
    done = run_standin(tmp_path, script)
    assert done.returncode == 0 and "There was an error" not in done.stdout, done.stdout
