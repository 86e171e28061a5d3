"""Talking to a running job from the command line: ``hwut submit --realtime``, ``hwut
write``, ``hwut press`` and ``hwut console`` (the last as a real process with a pipe for
stdin), against the real waitress server and the sim backend in job processes."""
from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import cli_served
import pytest
from cli_served import Served
from fixture_firmware import BUILD
from hypothesis import given
from hypothesis import strategies as st
from test_live_input import follow, http, infra, running

from hwut import console, jobfile
from hwut.client import EXIT_LIMIT, EXIT_USAGE
from hwut.jobs import JobStatus
from hwut.liveinput import MAX_TEXT_BYTES

serve, served = cli_served.serve, cli_served.served  # the fixtures


def submitted(s: Served, firmware: str, *args: str) -> dict:
    result = s.run("submit", str(BUILD / f"{firmware}.elf"), "-b", "nucleo-f303re", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_write_types_escaped_text_into_the_running_echo(served: Served):
    job = submitted(served, "echo", "--limit", "60", "--realtime")
    assert job["realtime"] is True
    running(served, job["id"])
    with http(served) as h:
        follow(h, job["id"], b"echo ready\r\n")
        result = served.run("write", str(job["id"]), r"ping\x21\r")
        assert result.exit_code == 0, result.output
        assert re.search(r"6 bytes sent at board time \d+\.\d{3} s", result.output)
        follow(h, job["id"], b"echo ready\r\nping!\r\n")
        h.delete(f"/jobs/{job['id']}")
    served.env.wait(job["id"], timeout=30)
    assert "6 bytes b'ping!\\r'" in infra(served, job["id"])


def test_write_refusals_are_usage_errors_or_the_servers(served: Served):
    assert served.run("write", "1", r"bad\q").exit_code == EXIT_USAGE
    assert served.run("write", "1", "").exit_code == EXIT_USAGE
    ended = submitted(served, "hello", "--limit", "1")
    served.env.wait(ended["id"], timeout=30)
    result = served.run("write", str(ended["id"]), "x")
    assert result.exit_code != 0 and "409" in result.output and "FINISHED" in result.output


def test_press_holds_the_button_for_the_boards_time(served: Served):
    job = submitted(served, "button", "--limit", "60", "--realtime")
    running(served, job["id"])
    with http(served) as h:
        follow(h, job["id"], b"B1 idle=1\r\n")
        result = served.run("press", str(job["id"]), "B1", "--hold", "0.2")
        assert result.exit_code == 0, result.output
        assert "B1 pressed for 0.2 s" in result.output
        log, _ = follow(h, job["id"], re.compile(rb"released at \d+ ms\r\n"))
        pressed = int(re.search(rb"pressed at (\d+) ms", log)[1])
        released = int(re.search(rb"released at (\d+) ms", log)[1])
        assert 195 <= released - pressed <= 205
        h.delete(f"/jobs/{job['id']}")
    served.env.wait(job["id"], timeout=30)


def _read_until(proc: subprocess.Popen, seen: bytearray, wanted: bytes, timeout: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, (wanted, bytes(seen))
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, (wanted, bytes(seen))
            seen += chunk


def test_console_is_a_terminal_on_the_job_and_ends_with_it(served: Served, tmp_path: Path):
    """The real ``hwut console`` process: what it prints is the board's log, each line
    written to its stdin reaches the board with a CR, the end of stdin does not end it,
    the job's end does, with the job's exit status."""
    job = submitted(served, "echo", "--limit", "6", "--realtime")
    env = {**os.environ, "HWUT_CLIENT_CONFIG": str(tmp_path / "none.toml")}
    for name in ("HWUT_URL", "HWUT_TOKEN", "HWUT_USER", "HWUT_PASSWORD", "HWUT_PROFILE"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwut", "--url", served.url, "--token", served.token("alice"),
         "console", str(job["id"])], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None
    try:
        seen = bytearray()
        _read_until(proc, seen, b"echo ready\r\n", 60)
        proc.stdin.write(b"ping\nhello world\n")
        proc.stdin.close()
        _read_until(proc, seen, b"ping\r\nhello world\r\n", 60)
        proc.wait(timeout=60)
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        proc.kill()
    assert proc.returncode == EXIT_LIMIT, err
    assert bytes(seen).startswith(b"echo ready\r\nping\r\nhello world\r\n")
    assert b"time limit" in err or b"limit" in err, err
    assert served.env.wait(job["id"], timeout=30) is JobStatus.FINISHED


def test_console_line_ends(served: Served):
    assert console.EOLS == {"cr": "\r", "lf": "\n", "crlf": "\r\n"}
    result = served.run("console", "1", "--eol", "nul")
    assert result.exit_code == EXIT_USAGE and "nul" in result.output


@given(st.text(max_size=3000))
def test_pieces_keep_the_text_and_each_fits_one_input(text: str):
    pieces = console.pieces(text)
    assert "".join(pieces) == text
    assert all(0 < len(p.encode()) <= MAX_TEXT_BYTES for p in pieces)


@pytest.mark.parametrize("given_text, typed", [
    (r"help\r", "help\r"), (r"a\\r", "a\\r"), (r"\x41\t\n\0", "A\t\n\0"), ("é", "é")])
def test_escapes(given_text: str, typed: str):
    assert console.unescape(given_text) == typed


@pytest.mark.parametrize("bad", [r"\q", "\\", r"\x4"])
def test_unknown_escapes_are_refused(bad: str):
    with pytest.raises(ValueError, match="escape"):
        console.unescape(bad)


def test_a_job_file_may_ask_for_realtime(tmp_path: Path):
    (tmp_path / "app.elf").write_bytes((BUILD / "echo.elf").read_bytes())
    path = tmp_path / "job.toml"
    path.write_text('image = "app.elf"\nrealtime = true\n')
    assert jobfile.load(path).realtime is True
    path.write_text('image = "app.elf"\n')
    assert jobfile.load(path).realtime is False
    path.write_text('image = "app.elf"\nrealtime = "yes"\n')
    with pytest.raises(jobfile.JobFileError, match="realtime must be true or false"):
        jobfile.load(path)
