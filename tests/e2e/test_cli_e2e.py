"""The CLI against a real waitress server (test backend, so it runs without the emulator)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import httpx
import pytest
from hwut_e2e import admin_token
from hwut_fakes import tiny_bin

from hwut.client import EXIT_CANCELED


def test_first_serve_bootstraps_admin_and_client_config(fake_server):
    assert "password:" in fake_server.banner and "token:" in fake_server.banner
    config = (fake_server.tmp / "client.toml").read_text()
    assert fake_server.url in config and admin_token(fake_server) in config
    r = fake_server.cli("boards")
    assert r.returncode == 0 and "nucleo-f303re" in r.stdout


def test_submit_wait_streams_log_and_exits_zero(fake_server):
    firmware = fake_server.tmp / "fw.bin"
    firmware.write_bytes(tiny_bin())
    r = fake_server.cli("submit", str(firmware), "--board", "nucleo-f303re", "--limit", "1",
                        "--comment", "e2e", "--wait")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HWUT fake start") and "HWUT done" in r.stdout
    assert "FINISHED" in r.stderr
    job_id = int(r.stderr.split()[1])
    status = json.loads(fake_server.cli("status", str(job_id)).stdout)
    assert status["comment"] == "e2e" and status["stop_reason"] == "limit"
    assert "HWUT done" in fake_server.cli("log", str(job_id)).stdout
    assert str(job_id) in fake_server.cli("jobs").stdout
    r = fake_server.cli("cancel", str(job_id))
    assert r.returncode == 1 and "Current job status: FINISHED" in r.stderr


def test_user_add_while_serving_and_bad_upload(fake_server):
    r = fake_server.cli("user", "add", "ci", "--password", "s3cret",
                        "--data-dir", str(fake_server.data_dir))
    assert r.returncode == 0, r.stderr
    token = r.stdout.split("token:")[1].strip()
    auth = httpx.get(f"{fake_server.url}/apiv1/auth_test",
                     headers={"Authorization": f"Bearer {token}"})
    assert auth.json() == {"user": "ci", "role": "user"}
    basic = httpx.get(f"{fake_server.url}/apiv1/auth_test", auth=("ci", "s3cret"))
    assert basic.status_code == 200
    junk = fake_server.tmp / "junk.bin"
    junk.write_bytes(b"not firmware")
    r = fake_server.cli("submit", str(junk), "--board", "nucleo-f303re")
    assert r.returncode == 1 and "415" in r.stderr


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_as_the_document_writes_it(fake_server):
    fake_server.cli("user", "add", "curl", "--password", "pw",
                    "--data-dir", str(fake_server.data_dir))
    firmware = fake_server.tmp / "example.bin"
    firmware.write_bytes(tiny_bin())
    out = subprocess.run(
        ["curl", "-s", "-i", "-u", "curl:pw", "-T", str(firmware), "-X", "PUT",
         f"{fake_server.url}/apiv1/jobs/submit?board=nucleo-f303re&duration_limit_seconds=1"],
        check=False, capture_output=True, text=True, timeout=30, cwd=fake_server.tmp).stdout
    assert "HTTP/1.1 201 Created" in out
    assert "Location: /apiv1/jobs/" in out


def test_wait_shows_queue_position_and_cancel_exit_code(fake_server):
    firmware = fake_server.tmp / "fw.bin"
    firmware.write_bytes(tiny_bin())
    # 300 s of limit at the fake backend's 0.05 scale: 15 s of wall time, ended by cancel
    first = fake_server.cli("submit", str(firmware), "-b", "nucleo-f303re", "-l", "300")
    first_id = json.loads(first.stdout)["id"]
    waiting = subprocess.Popen(
        [sys.executable, "-m", "hwut.cli", "submit", str(firmware), "-b", "nucleo-f303re",
         "-l", "1", "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=fake_server.env, cwd=fake_server.tmp)
    time.sleep(1.0)
    second_id = first_id + 1
    assert fake_server.cli("cancel", str(second_id)).returncode == 0
    _out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == EXIT_CANCELED, err
    assert "waiting, position 1 in the queue" in err
    assert fake_server.cli("cancel", str(first_id)).returncode == 0
