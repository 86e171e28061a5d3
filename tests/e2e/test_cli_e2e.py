"""The CLI against a real waitress server running fixture firmware on the sim backend."""
from __future__ import annotations

import json

import httpx
from fixture_firmware import FAULT, HELLO_1S, SEMIHOST, SPIN_LIMIT, path
from hwut_e2e import admin_token, read_until, wait_ended

from hwut.client import EXIT_CANCELED, EXIT_FAULT


def test_first_serve_bootstraps_admin_and_client_config(server):
    assert "password:" in server.banner and "token:" in server.banner
    config = (server.tmp / "client.toml").read_text()
    assert server.url in config and admin_token(server) in config
    r = server.cli("boards")
    assert r.returncode == 0 and "nucleo-f303re" in r.stdout
    # each instance with its backend and whether that backend can run here
    assert "nucleo-f303re#0" in r.stdout and "sim" in r.stdout and " available" in r.stdout


def test_submit_wait_streams_log_and_exits_zero(server):
    r = server.cli_bytes("submit", str(path("hello")), "--board", "nucleo-f303re",
                         "--limit", "1", "--comment", "e2e", "--wait")
    assert r.returncode == 0, r.stderr
    assert r.stdout == HELLO_1S
    err = r.stderr.decode()
    assert "FINISHED (stop reason limit" in err
    job_id = int(err.split()[1])
    status = json.loads(server.cli("status", str(job_id)).stdout)
    assert status["comment"] == "e2e" and status["stop_reason"] == "limit"
    assert status["format"] == "elf" and status["time_used_seconds"] == 1.0
    assert server.cli_bytes("log", str(job_id)).stdout == HELLO_1S
    assert str(job_id) in server.cli("jobs").stdout
    r = server.cli("cancel", str(job_id))
    assert r.returncode == 1 and "Current job status: FINISHED" in r.stderr


def test_submit_wait_exits_with_the_firmware_exit_code(server):
    r = server.cli_bytes("submit", str(path("semihost_exit", "hex")), "-b", "nucleo-f303re",
                         "-l", "1", "--wait")
    assert r.returncode == 3, r.stderr
    assert r.stdout == SEMIHOST
    assert b"FINISHED (stop reason exit, exit code 3" in r.stderr
    r = server.cli_bytes("submit", str(path("fault", "bin")), "-b", "nucleo-f303re",
                         "-l", "1", "--wait")
    assert r.returncode == EXIT_FAULT, r.stderr
    assert r.stdout == FAULT
    assert b"HardFault" in r.stderr


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
    assert r.returncode == 1 and "415" in r.stderr


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
        assert seen and seen[-1].strip() == f"job {first_id + 1} waiting, position 1 in the queue"
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
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"echo ready\r\nhey\r\n"
    r = server.cli_bytes("submit", str(path("button")), "--board", "nucleo-f303re",
                         "--limit", "1", "--press", "B1@0.25-0.5", "--wait")
    assert r.returncode == 0, r.stderr
    assert b"pressed at 24" in r.stdout and b"released at 49" in r.stdout
