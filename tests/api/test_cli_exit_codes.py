"""The exit-code table, end to end: the real CLI (click's CliRunner, in process) against the
real waitress server in front of the service, jobs on the real sim backend.

One firmware per code class: the committed fixtures, plus tiny BIN images built here
that exit by semihosting with any code (codes the fixtures do not cover: 2, 31, 32,
200, 300, -1).
"""
from __future__ import annotations

import re
import struct
import threading
import time
from collections.abc import Callable

import cli_served
import pytest
from cli_served import Served
from click.testing import CliRunner, Result
from fixture_firmware import FAULT, HELLO_1S, ITM, SEMIHOST, SPIN_LIMIT, image, path

from hwut import client as hc
from hwut.cli import main
from hwut.jobs import JobStatus

serve, served = cli_served.serve, cli_served.served  # the fixtures

FLASH = 0x0800_0000


def exit_image(code: int) -> bytes:
    """A Cortex-M BIN that calls semihosting SYS_EXIT_EXTENDED with ``code`` at once.

    0x00: SP and 15 vectors (reset -> 0x40, the rest -> the loop at 0x46)
    0x40: movs r0, #0x20 / adr r1, block / bkpt 0xAB / b .
    0x48: block = {ADP_Stopped_ApplicationExit, code}
    """
    vectors = [0x2001_0000, FLASH + 0x41] + [FLASH + 0x47] * 14
    thumb = struct.pack("<4H", 0x2020, 0xA101, 0xBEAB, 0xE7FE)
    return struct.pack("<16I", *vectors) + thumb + struct.pack("<Ii", 0x20026, code)


def last_line(result: Result) -> str:
    return result.stderr.strip().splitlines()[-1]


def submit_wait(s: Served, file: str, *extra: str, board: str = "nucleo-f303re") -> Result:
    return s.run("submit", file, "--board", board, "--limit", "1", "--wait", *extra)


# ---- the firmware's own exit code -------------------------------------------------------

@pytest.mark.parametrize("code", [0, 2, 31])
def test_firmware_exit_codes_0_to_31_pass_through(served: Served, code: int):
    r = submit_wait(served, served.write(f"exit{code}.bin", exit_image(code)))
    assert r.exit_code == code, r.output
    assert re.search(rf"job \d+ FINISHED: the firmware exited with code {code}; "
                     rf"exit status {code}$", last_line(r))


@pytest.mark.parametrize("code", [32, 200, 300, -1])
def test_firmware_exit_codes_outside_0_to_31_are_reported_not_wrapped(served: Served,
                                                                       code: int):
    r = submit_wait(served, served.write(f"exit{code}.bin", exit_image(code)))
    assert r.exit_code == hc.EXIT_FIRMWARE_OTHER == 32, r.output
    line = last_line(r)
    assert f"the firmware exited with code {code} (outside 0-31" in line
    assert line.endswith("exit status 32")


def test_fixture_semihost_exit_streams_and_exits_3(served: Served):
    r = submit_wait(served, str(path("semihost_exit", "hex")))
    assert r.exit_code == 3, r.output
    assert r.stdout_bytes == SEMIHOST


# ---- how the job ended ------------------------------------------------------------------

def test_time_limit_reached_exits_42_and_says_so(served: Served):
    r = submit_wait(served, str(path("hello")))
    assert r.exit_code == hc.EXIT_LIMIT == 42, r.output
    assert r.stdout_bytes == HELLO_1S
    assert re.fullmatch(r"job \d+ FINISHED: time limit reached \(1 s\) without the firmware "
                        r"exiting; exit status 42", last_line(r))


def test_a_fault_is_not_presented_as_a_pass(served: Served):
    r = submit_wait(served, str(path("fault", "bin")))
    assert r.exit_code == hc.EXIT_FAULT == 43, r.output
    assert r.stdout_bytes == FAULT
    assert re.fullmatch(r"job \d+ FINISHED: the firmware FAULTED \(HardFault: .* at PC "
                        r"0x[0-9a-f]+\); exit status 43", last_line(r))


def test_infrastructure_error_exits_45(served: Served):
    r = submit_wait(served, str(path("hello")), board="board-raise")
    assert r.exit_code == hc.EXIT_ERROR == 45, r.output
    assert re.fullmatch(r"job \d+ ERROR: infrastructure error, not the firmware's result: "
                        r".*RuntimeError.*; exit status 45", last_line(r)), last_line(r)


def test_cancel_while_waiting_on_a_running_job_exits_44(served: Served):
    jobs = served.env.service.store.jobs

    def cancel_when_running() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            running = [j for j in jobs.live_jobs() if j.status is JobStatus.RUNNING]
            if running:
                served.env.service.scheduler.cancel(running[0].id, by="admin")
                return
            time.sleep(0.02)

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    r = served.run("submit", str(path("spin")), "-b", "nucleo-f303re", "-l", str(SPIN_LIMIT),
                   "--wait")
    canceller.join()
    assert r.exit_code == hc.EXIT_CANCELED == 44, r.output
    assert re.fullmatch(r"job \d+ CANCELED: canceled by admin; exit status 44", last_line(r))


def test_gave_up_waiting_exits_46_and_says_why_it_waited(serve: Callable[..., Served]):
    s = serve(start=False)  # no worker runs: the job stays WAITING
    started = time.monotonic()
    r = submit_wait(s, str(path("hello")), "--timeout", "0.5")
    assert time.monotonic() - started < 10
    assert r.exit_code == hc.EXIT_TIMEOUT == 46, r.output
    lines = r.stderr.splitlines()
    assert re.fullmatch(r"job (\d+) waiting: position 1 in the queue for nucleo-f303re",
                        lines[1]), lines
    job_id = lines[0].split()[1]
    assert f"gave up waiting for job {job_id} after 0.5 s (still WAITING: position 1" \
           in lines[-1]
    assert f"hwut cancel {job_id}" in lines[-1]
    assert s.env.service.store.jobs.get(int(job_id)).status is JobStatus.WAITING


def test_wait_says_when_no_instance_of_the_board_can_run_the_job(serve: Callable[..., Served]):
    """A board can lose its instances while a job waits (the submit checked them): the
    job is put in the store directly, as it was before the board lost them."""
    s = serve(start=False)
    jobs = s.env.service.store.jobs
    none = jobs.submit("alice", "board-none", 1, image("hello"), "elf")
    missing = jobs.submit("alice", "board-missing", 1, image("hello"), "elf")
    settings = hc.Settings(s.url, token=s.token("alice"))
    with hc.Client(settings) as client:
        said: list[str] = []
        with pytest.raises(hc.WaitTimeout) as err:
            client.wait(none.id, on_wait=said.append, timeout=0.2, poll=0.05)
        assert said == ["no instance of board board-none exists on the server"]
        assert err.value.exit_code == hc.EXIT_TIMEOUT
        said.clear()
        with pytest.raises(hc.WaitTimeout):
            client.wait(missing.id, on_wait=said.append, timeout=0.2, poll=0.05)
        assert said[0].startswith("no instance of board board-missing is available "
                                  "(board-missing#0: backend 'not-installed'")


# ---- requests that fail -----------------------------------------------------------------

def test_usage_errors_exit_64_not_clicks_2(served: Served):
    r = served.run("submit", str(path("hello")))  # no --board
    assert r.exit_code == hc.EXIT_USAGE == 64
    assert "Missing option '--board'" in r.output
    assert served.run("no-such-command").exit_code == 64
    assert served.run("jobs", "--limit", "many").exit_code == 64
    assert served.run("user", "revoke", "alice").exit_code == 64  # neither TOKEN nor --all
    r = served.run("--profile", "nope", "jobs")
    assert r.exit_code == 64 and "no client profile 'nope'" in r.stderr
    assert served.run("--help").exit_code == 0


def test_unreachable_server_exits_69(served: Served):
    r = CliRunner(env={"HWUT_CLIENT_CONFIG": str(served.tmp / "none.toml")}).invoke(
        main, ["--url", "http://127.0.0.1:1", "--token", "x", "jobs"])
    assert r.exit_code == hc.EXIT_UNREACHABLE == 69
    assert r.stderr.startswith("error: cannot reach http://127.0.0.1:1")


def test_authentication_and_permission_exit_77(served: Served):
    job = served.run("submit", str(path("semihost_exit")), "-b", "nucleo-f303re", "-l", "1")
    job_id = re.search(r'"id": (\d+)', job.stdout).group(1)
    r = CliRunner().invoke(main, ["--url", served.url, "--token", "wrong", "jobs"])
    assert r.exit_code == hc.EXIT_AUTH == 77 and "401" in r.stderr
    r = served.run("log", job_id, who="bob")
    assert r.exit_code == 77 and "403" in r.stderr and "another user" in r.stderr


def test_refused_requests_exit_65(served: Served):
    r = served.run("submit", served.write("junk.bin", b"not firmware"), "-b", "nucleo-f303re")
    assert r.exit_code == hc.EXIT_REFUSED == 65 and re.match(r"error: 4\d\d ", r.stderr)
    r = served.run("submit", str(path("hello")), "-b", "no-such-board")
    assert r.exit_code == 65 and "unknown board" in r.stderr
    r = served.run("status", "999")
    assert r.exit_code == 65 and "404" in r.stderr


def test_a_10_mb_input_is_refused_cleanly_before_upload(served: Served):
    before = served.env.service.store.jobs.count()
    r = served.run("submit", str(path("echo")), "-b", "nucleo-f303re", "-l", "1",
                   "--input", "x" * (10 * 1024 * 1024), "--wait")
    assert r.exit_code == hc.EXIT_REFUSED, r.output
    assert r.stderr.strip() == ("error: --input is 10485760 bytes; the server accepts at "
                                "most 4096 bytes of console input")
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit)
    assert served.env.service.store.jobs.count() == before  # nothing reached the server


def test_comment_and_limit_are_checked_before_upload(served: Served):
    before = served.env.service.store.jobs.count()
    r = served.run("submit", str(path("hello")), "-b", "nucleo-f303re", "-c", "c" * 1001)
    assert r.exit_code == 65 and "--comment is 1001 characters" in r.stderr
    r = served.run("submit", str(path("hello")), "-b", "nucleo-f303re", "-l", "301")
    assert r.exit_code == 65 and "the time limit is 301 s; the server accepts 1-300 s" \
        in r.stderr
    assert served.env.service.store.jobs.count() == before


def test_executable_size_is_checked_against_the_servers_option(serve: Callable[..., Served]):
    s = serve(limits_max_executable_bytes=1024)
    r = s.run("submit", str(path("hello")), "-b", "nucleo-f303re")
    size = path("hello").stat().st_size
    assert r.exit_code == 65
    assert r.stderr.strip() == (f"error: the executable is {size} bytes; the server accepts "
                                "at most 1024 (limits.max_executable_bytes)")


def test_limits_route(served: Served):
    r = served.env.get("/apiv1/limits")
    assert r.json == {"max_executable_bytes": 5 * 1024 * 1024, "min_duration_seconds": 1,
                      "max_duration_seconds": 300, "default_duration_seconds": 60,
                      "max_input_bytes": 4096, "max_comment_chars": 1000,
                      "max_presses": 64, "max_images": 8, "max_pins": 64}


# ---- listing and the other artifacts ----------------------------------------------------

def test_jobs_shows_board_status_stop_reason_and_exit_code(served: Served):
    assert submit_wait(served, str(path("semihost_exit"))).exit_code == 3
    assert submit_wait(served, str(path("fault"))).exit_code == 43
    r = served.run("jobs")
    assert r.exit_code == 0, r.output
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["ID", "CREATED", "BOARD", "STATUS", "STOP", "EXIT", "OWNER"]
    assert rows[0].split()[3:] == ["nucleo-f303re", "FINISHED", "fault", "-", "alice"]
    assert rows[1].split()[3:] == ["nucleo-f303re", "FINISHED", "exit", "3", "alice"]


def test_other_and_infra_log_commands(served: Served):
    r = submit_wait(served, str(path("itm_printf")))
    assert r.exit_code == 0, r.output  # it prints over ITM, then exits 0
    job_id = r.stderr.split()[1]
    assert served.run("other", job_id).stdout_bytes == ITM
    assert served.run("log", job_id, "--kind", "other").stdout_bytes == ITM
    infra = served.run("infra-log", job_id)
    assert infra.exit_code == 0 and "virtual time" in infra.stdout
    assert served.run("log", job_id, "-k", "infra").stdout == infra.stdout
    assert served.run("log", job_id).stdout_bytes == b""
    r = served.run("other", job_id, who="bob")
    assert r.exit_code == 77
    r = submit_wait(served, str(path("hello")))
    r = served.run("other", r.stderr.split()[1])
    assert r.exit_code == 65 and "has no trace file" in r.stderr


def test_a_board_that_cannot_run_jobs_exits_69(served: Served):
    r = served.run("submit", str(path("hello")), "-b", "board-missing")
    assert r.exit_code == hc.EXIT_UNREACHABLE == 69, r.output
    assert r.stderr.startswith("error: 503 ") and "not-installed" in r.stderr
