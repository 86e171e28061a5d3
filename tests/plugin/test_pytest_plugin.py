"""The pytest plugin (issue 16) used from a pytest run inside the tests (pytester): a
local HWUT server per session, the sim backend, our fixture firmware."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

BUILD = Path(__file__).resolve().parents[2] / "fixtures" / "build"


@pytest.fixture
def plugin_args(request: pytest.FixtureRequest) -> list[str]:
    """Load the plugin by name unless its entry point (pytest11) already did."""
    if request.config.pluginmanager.has_plugin("hwut"):
        return []
    return ["-p", "hwut.pytest_plugin"]


def test_plugin_runs_firmware_expects_lines_and_reports_junit(pytester, plugin_args):
    pytester.makepyfile(test_fw=f'''
        import pytest

        HELLO = {str(BUILD / "hello.elf")!r}
        EXIT3 = {str(BUILD / "semihost_exit.elf")!r}

        def test_expect_in_order(hwut_board):
            run = hwut_board.run(HELLO, limit=5)
            assert run.expect("SYSCLK=") == "SYSCLK=72000000"
            assert run.expect(r"^count=(\\d)$", regex=True) == "count=0"
            assert run.expect("count=3") == "count=3"
            run.cancel()

        def test_verdict(hwut_board):
            run = hwut_board.run(EXIT3, limit=2, exit_code=3, expect=["ok"])
            assert run.verdict == "passed"
            assert run.result()["exit_code"] == 3

        def test_missing_line_fails_with_the_log(hwut_board):
            run = hwut_board.run(HELLO, limit=1)
            with pytest.raises(AssertionError, match="did not appear before job"):
                run.expect("count=99")
            assert run.result()["stop_reason"] == "limit"

        def test_fails_for_real(hwut_board):
            hwut_board.run(HELLO, limit=1, fail=["count=2"]).expect("count=50")
    ''')
    result = pytester.runpytest(*plugin_args, "--junitxml=report.xml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*did not appear before job*", "*count=2*"])
    report = (pytester.path / "report.xml").read_text()
    assert 'name="hwut_job"' in report and 'name="hwut_board" value="nucleo-f303re"' in report


def test_plugin_options_are_listed(pytester, plugin_args):
    result = pytester.runpytest(*plugin_args, "--help")
    result.stdout.fnmatch_lines(["*--hwut-url*", "*--hwut-board*"])


def test_plugin_runs_several_images_as_one_job_and_scripts_pins(pytester, plugin_args):
    """``run([boot, app])``: one job of two images (issue 13); ``pins=``: scripted levels."""
    pytester.makepyfile(test_multi=f'''
        BOOT = {str(BUILD / "boot_split.elf")!r}
        APP_BIN = {str(BUILD / "boot_app.bin")!r} + "@0x0800A000"
        PINS = {str(BUILD / "pin_levels.elf")!r}

        def test_bootloader_and_application(hwut_board):
            run = hwut_board.run([BOOT, APP_BIN], limit=2, exit_code=0)
            assert run.expect("boot: checksum").startswith("boot: checksum 0x")
            assert run.expect("app: running") == "app: running, vtor=0x0800a000"
            assert run.verdict == "passed"
            job = run.result()
            assert [i["name"] for i in job["images"]] == ["boot_split.elf", "boot_app.bin"]

        def test_pins(hwut_board):
            run = hwut_board.run(PINS, limit=2, pins=["PA0@0:1"])
            assert run.expect("t=50ms") == "t=50ms PA0=1 PA1=0 PA4=1 PC13=1"
    ''')
    result = pytester.runpytest(*plugin_args, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_interactive_tests_write_press_and_expect_in_board_time(pytester, plugin_args):
    """write/press against running jobs; expect's timeout is the board's (virtual) time:
    a line that comes later than that on the board fails, however fast the emulator."""
    pytester.makepyfile(test_interactive=f'''
        import pytest

        ECHO = {str(BUILD / "echo.elf")!r}
        BUTTON = {str(BUILD / "button.elf")!r}
        HELLO = {str(BUILD / "hello.elf")!r}

        def test_echo(hwut_board):
            run = hwut_board.run(ECHO, limit=60, realtime=True)
            assert run.expect("echo ready", timeout=1) == "echo ready"
            sent_at = run.write("hello board\\r")
            assert run.expect("hello board", timeout=2) == "hello board"
            assert run.board_time >= sent_at
            run.write("again\\r")
            assert run.expect("again", timeout=2) == "again"

        def test_button(hwut_board):
            run = hwut_board.run(BUTTON, limit=60, realtime=True)
            run.expect("B1 idle=1", timeout=1)
            run.press("B1", hold=0.25)
            pressed = int(run.expect(r"^pressed at (\\d+) ms$", regex=True, timeout=2).split()[2])
            released = int(run.expect(r"^released at (\\d+) ms$", regex=True,
                                      timeout=2).split()[2])
            assert 245 <= released - pressed <= 255

        def test_virtual_timeout(hwut_board):
            # hello prints count=N every 100 ms of board time: count=5 is 0.5 s after
            # count=0, later than a 0.3 s timeout, whatever the wall clock does
            run = hwut_board.run(HELLO, limit=5)
            run.expect("count=0")
            assert run.expect("count=2", timeout=0.3) == "count=2"
            with pytest.raises(AssertionError, match="within 0.3 s of the board's time"):
                run.expect("count=9", timeout=0.3)

        def test_silent_board_times_out_in_board_time(hwut_board):
            # echo prints nothing without input: the board's time passing ends the wait
            run = hwut_board.run(ECHO, limit=60, realtime=True)
            run.expect("echo ready")
            with pytest.raises(AssertionError, match="within 0.5 s of the board's time"):
                run.expect("never printed", timeout=0.5)
    ''')
    result = pytester.runpytest(*plugin_args, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
