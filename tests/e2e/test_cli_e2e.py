"""The CLI against a real waitress server running fixture firmware on the sim backend."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
from fixture_firmware import FAULT, HELLO_1S, SEMIHOST, SPIN_LIMIT, path
from hwut_e2e import Server, admin_token, read_until, wait_ended

from hwut.client import (
    EXIT_CANCELED,
    EXIT_FAULT,
    EXIT_LIMIT,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)


def test_first_serve_bootstraps_admin_and_client_config(server):
    assert "password:" in server.banner and "token:" in server.banner
    config = (server.tmp / "client.toml").read_text()
    assert server.url in config and admin_token(server) in config
    r = server.cli("boards")
    assert r.returncode == 0 and "nucleo-f303re" in r.stdout
    # each instance with its backend and whether that backend can run here
    assert "nucleo-f303re#0" in r.stdout and "sim" in r.stdout and " idle" in r.stdout


def test_submit_wait_streams_log_and_exits_42_at_the_limit(server):
    r = server.cli_bytes("submit", str(path("hello")), "--board", "nucleo-f303re",
                         "--limit", "1", "--comment", "e2e", "--wait")
    assert r.returncode == EXIT_LIMIT, r.stderr
    assert r.stdout == HELLO_1S
    err = r.stderr.decode()
    assert err.splitlines()[-1].endswith(" FINISHED: time limit reached (1 s) without the "
                                         "firmware exiting; exit status 42")
    job_id = int(err.split()[1])
    status = json.loads(server.cli("status", str(job_id)).stdout)
    assert status["comment"] == "e2e" and status["stop_reason"] == "limit"
    assert status["format"] == "elf" and status["time_used_seconds"] == 1.0
    assert server.cli_bytes("log", str(job_id)).stdout == HELLO_1S
    assert str(job_id) in server.cli("jobs").stdout
    r = server.cli("cancel", str(job_id))
    assert r.returncode == EXIT_REFUSED and "Current job status: FINISHED" in r.stderr


def test_submit_wait_exits_with_the_firmware_exit_code(server):
    r = server.cli_bytes("submit", str(path("semihost_exit", "hex")), "-b", "nucleo-f303re",
                         "-l", "1", "--wait")
    assert r.returncode == 3, r.stderr
    assert r.stdout == SEMIHOST
    assert b"FINISHED: the firmware exited with code 3; exit status 3" in r.stderr
    r = server.cli_bytes("submit", str(path("fault", "bin")), "-b", "nucleo-f303re",
                         "-l", "1", "--wait")
    assert r.returncode == EXIT_FAULT, r.stderr
    assert r.stdout == FAULT
    assert b"FINISHED: the firmware FAULTED (HardFault" in r.stderr


def test_user_add_while_serving_and_bad_upload(server):
    r = server.cli("user", "add", "ci", "--password", "s3cret",
                   "--data-dir", str(server.data_dir))
    assert r.returncode == 0, r.stderr
    token = r.stdout.split("token:")[1].strip()
    auth = httpx.get(f"{server.url}/apiv1/auth_test",
                     headers={"Authorization": f"Bearer {token}"})
    assert auth.json() == {"user": "ci", "role": "user"}
    basic = httpx.get(f"{server.url}/apiv1/auth_test", auth=("ci", "s3cret"))
    assert basic.status_code == 200
    junk = server.tmp / "junk.bin"
    junk.write_bytes(b"not firmware")
    r = server.cli("submit", str(junk), "--board", "nucleo-f303re")
    assert r.returncode == EXIT_REFUSED and re.match(r"error: 4\d\d ", r.stderr)


def test_wait_shows_queue_position_and_cancel_exit_code(server):
    # spin on the only instance: RUNNING until canceled, so the next job waits
    first = server.cli("submit", str(path("spin")), "-b", "nucleo-f303re",
                       "-l", str(SPIN_LIMIT))
    first_id = json.loads(first.stdout)["id"]
    headers = {"Authorization": f"Bearer {admin_token(server)}"}
    assert wait_ended(server.url, first_id, headers, statuses=("RUNNING",))["status"] == "RUNNING"
    waiting = server.cli_background("submit", str(path("hello")), "-b", "nucleo-f303re",
                                    "-l", "1", "--wait")
    try:
        assert waiting.stderr is not None
        seen = read_until(waiting.stderr, "in the queue")
        assert seen and seen[-1].strip() == (f"job {first_id + 1} waiting: position 1 in the "
                                             "queue for nucleo-f303re")
        assert server.cli("cancel", str(first_id + 1)).returncode == 0
        out, err = waiting.communicate(timeout=30)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == EXIT_CANCELED, err
    assert out == "" and "CANCELED" in err
    status = json.loads(server.cli("status", str(first_id)).stdout)
    assert status["status"] == "RUNNING"
    assert server.cli("cancel", str(first_id)).returncode == 0
    r = server.cli("log", str(first_id))
    assert r.returncode == 0 and r.stdout == ""  # spin prints nothing


def test_submit_with_console_input_and_a_button_press(server):
    r = server.cli_bytes("submit", str(path("echo")), "--board", "nucleo-f303re",
                         "--limit", "1", "--input", "hey\r", "--wait")
    assert r.returncode == EXIT_LIMIT, r.stderr
    assert r.stdout == b"echo ready\r\nhey\r\n"
    r = server.cli_bytes("submit", str(path("button")), "--board", "nucleo-f303re",
                         "--limit", "1", "--press", "B1@0.25-0.5", "--wait")
    assert r.returncode == EXIT_LIMIT, r.stderr
    assert b"pressed at 24" in r.stdout and b"released at 49" in r.stdout


def serve_process(server: Server, data_dir: Path, *extra: str) -> subprocess.Popen[str]:
    """Another ``hwut serve`` with the same client config as ``server``."""
    return subprocess.Popen([sys.executable, "-m", "hwut.cli", "serve", "--port", "0",
                             "--data-dir", str(data_dir), "--config", str(server.config),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=server.env, cwd=server.tmp)


def test_a_second_serve_does_not_overwrite_the_saved_url_and_token(server):
    before = (server.tmp / "client.toml").read_text()
    refused = serve_process(server, server.tmp / "other")
    out, err = refused.communicate(timeout=30)
    assert refused.returncode == EXIT_USAGE, err
    assert "not serving: the client profile 'default'" in err
    assert f"data dir {server.data_dir}" in err and "hwut serve --profile NAME" in err
    assert (server.tmp / "client.toml").read_text() == before

    second = serve_process(server, server.tmp / "other", "--profile", "second")
    try:
        assert second.stdout is not None
        seen = read_until(second.stdout, "HWUT serving on")
        assert "as profile 'second'; use it with `hwut --profile second ...`" in "".join(seen)
        url = re.search(r"HWUT serving on (\S+)", seen[-1]).group(1)
        config = tomllib.loads((server.tmp / "client.toml").read_text())["profiles"]
        assert config["default"]["url"] == server.url
        assert (config["second"]["url"], config["second"]["data_dir"]) == (
            url, str((server.tmp / "other").resolve()))
        assert server.cli("--profile", "second", "jobs").returncode == 0
        env = {**server.env, "HWUT_PROFILE": "second"}
        r = subprocess.run([sys.executable, "-m", "hwut.cli", "user", "list", "--server"],
                           env=env, capture_output=True, text=True, timeout=30)
        assert r.stdout.startswith(f"users of the server {url}:"), r.stderr
        r = server.cli("user", "list", "--server")
        assert r.stdout.startswith(f"users of the server {server.url}:"), r.stderr
    finally:
        second.terminate()
        second.wait(10)


def test_process_exit_codes_for_usage_and_an_unreachable_server(server):
    r = server.cli("submit", str(path("hello")))
    assert r.returncode == EXIT_USAGE and "Missing option '--board'" in r.stderr
    r = server.cli("--url", "http://127.0.0.1:1", "jobs")
    assert r.returncode == EXIT_UNREACHABLE
    assert r.stderr.startswith("error: cannot reach http://127.0.0.1:1")
    assert "Traceback" not in r.stderr
