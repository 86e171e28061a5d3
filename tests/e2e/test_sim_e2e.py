"""The whole pipeline on the embedded emulator: ``hwut serve`` with the shipped config,
the fixture firmware submitted with the CLI and with curl exactly as the document shows."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import httpx
import pytest
from fixture_firmware import HELLO_1S
from hwut_e2e import HELLO, Server, admin_token, wait_ended

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hwut.backends.sim") is None or not HELLO.exists(),
    reason="needs the sim backend (backends/sim.py) and fixtures/build/hello.elf")


@pytest.fixture
def sim_server(tmp_path):
    server = Server(tmp_path).start()  # the shipped default config: sim backend
    yield server
    server.stop()


def test_cli_submit_wait(sim_server):
    r = sim_server.cli_bytes("submit", str(HELLO), "--board", "nucleo-f303re", "--limit", "1",
                             "--wait")
    assert r.stdout == HELLO_1S, r.stderr
    assert r.returncode == 42, r.stderr  # the time limit reached (hwut.client.EXIT_LIMIT)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_submit(sim_server):
    sim_server.cli("user", "add", "curl", "--password", "pw",
                   "--data-dir", str(sim_server.data_dir))
    url = sim_server.url
    shutil.copy(HELLO, sim_server.tmp / "example.elf")
    out = subprocess.run(
        ["curl", "-s", "-i", "-u", "curl:pw", "-T", "example.elf", "-X", "PUT",
         f"{url}/apiv1/jobs/submit?board=nucleo-f303re&duration_limit_seconds=1"],
        check=False, capture_output=True, text=True, timeout=30, cwd=sim_server.tmp).stdout
    assert "HTTP/1.1 201 Created" in out, out
    location = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.lower().startswith("location:"))
    job_id = int(location.rsplit("/", 1)[1])
    job = wait_ended(url, job_id, {"Authorization": f"Bearer {admin_token(sim_server)}"},
                     timeout=60)
    assert job["status"] == "FINISHED", job
    r = httpx.get(f"{url}/apiv1/jobs/{job_id}/is_finished", auth=("curl", "pw"))
    assert r.status_code == 204
    assert job["stop_reason"] == "limit" and job["owner"] == "curl"
    log = subprocess.run(["curl", "-s", "-u", "curl:pw", "-X", "GET",
                          f"{url}/apiv1/jobs/{job_id}/log"],
                         check=False, capture_output=True, timeout=30).stdout
    assert log == HELLO_1S


def test_demo_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hwut.cli", "demo"], check=False, capture_output=True,
                       timeout=120, cwd=tmp_path)
    assert r.stdout == HELLO_1S, r.stderr
    assert r.returncode == 0 and b"FINISHED: time limit reached (1 s)" in r.stderr
