"""A ``physical`` board instance served by a real waitress server, on a simulated bench
(``SimBench``: an emulated board, its simulated probe served over pyOCD's remote-probe
protocol, its console on a pty) in this process, so that a test can break the bench.
Each job runs in its own process through real pyOCD and pyserial.

Here: retries of infrastructure errors (the count in the job), the offline rule (after
N errors in a row the instance takes no job; `hwut boards` and the API show it), and
an admin putting it back (`hwut board online`, the API)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("pyocd")
pytest.importorskip("serial")

from hwut.backends.simboard import BenchConfig, SimBench  # noqa: E402
from hwut.config import BoardConfig, Config, load_config  # noqa: E402
from hwut.service import build_service, make_server  # noqa: E402

BUILD = Path(__file__).resolve().parents[2] / "fixtures" / "build"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[SimBench]:
    with SimBench(BenchConfig(port=free_port(), console=tmp_path / "console",
                              uid="hwutsim-lab-test")) as bench:
        yield bench


class Lab:
    """The server, its admin token, and helpers to submit and wait."""

    def __init__(self, tmp: Path, options: dict[str, Any], **board: Any) -> None:
        base = load_config(environ={})
        boards = (BoardConfig("nucleo-f303re", "physical", 1, options, "stm32f303re", **board),)
        config = Config(dict(base.values), boards, base.microcontrollers).with_values(
            data_dir=str(tmp / "data"), scheduler_poll_seconds=0.05)
        self.service = build_service(config)
        _, _, token = self.service.store.users.add("admin", admin=True)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.server = make_server(self.service, "127.0.0.1", 0, 4).start()
        self.service.start()
        self.url = self.server.url + "/apiv1"
        self.env = {**os.environ, "HWUT_URL": self.server.url, "HWUT_TOKEN": token,
                    "HWUT_CLIENT_CONFIG": str(tmp / "client.toml")}

    def submit(self, firmware: str = "hello.elf", limit: int = 1) -> int:
        r = httpx.put(f"{self.url}/jobs/submit", headers=self.headers,
                      params={"board": "nucleo-f303re", "duration_limit_seconds": limit},
                      content=(BUILD / firmware).read_bytes(), timeout=30)
        assert r.status_code in (200, 201), r.text
        return int(r.json()["id"])

    def wait(self, job_id: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = httpx.get(f"{self.url}/jobs/{job_id}", headers=self.headers).json()
            if job["status"] in ("FINISHED", "ERROR", "CANCELED"):
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.1)

    def instance(self) -> dict[str, Any]:
        boards = httpx.get(f"{self.url}/targets/boards", params={"extended": "true"},
                           headers=self.headers).json()
        return next(b for b in boards if b["name"] == "nucleo-f303re")["instances"][0]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hwut.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=60)

    def close(self) -> None:
        self.server.stop()
        self.service.stop()


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Any]:
    labs: list[Lab] = []

    def factory(options: dict[str, Any], **board: Any) -> Lab:
        labs.append(Lab(tmp_path / f"lab{len(labs)}", options, **board))
        return labs[-1]

    yield factory
    for lab in labs:
        lab.close()


def test_a_job_runs_through_the_server(bench, make_lab):
    lab = make_lab({"probe": bench.probe_uid, "serial": bench.console})
    job = lab.wait(lab.submit("hello.elf"))
    assert (job["status"], job["stop_reason"], job["retries"]) == ("FINISHED", "limit", 0), job
    log = httpx.get(f"{lab.url}/jobs/{job['id']}/log", headers=lab.headers).content
    assert log.startswith(b"HWUT hello from NUCLEO-F303RE\r\nSYSCLK=72000000\r\ncount=0\r\n")
    infra = httpx.get(f"{lab.url}/jobs/{job['id']}/infra_log", headers=lab.headers).text
    assert "programmed" in infra and "first console byte" in infra


def test_retry_then_offline_then_online(bench, make_lab):
    """A probe that is not there: each job is tried twice (retries 1, the job says so),
    and the third error in a row takes the instance offline; an admin puts it back and
    the next job runs on the bench."""
    absent = f"remote:localhost:{free_port()}"
    lab = make_lab({"probe": absent, "serial": bench.console}, retries=1, offline_after=3)
    first = lab.wait(lab.submit())
    assert (first["status"], first["retries"]) == ("ERROR", 1), first
    assert f"probe {absent} cannot be reached" in first["detail"]
    assert "after 1 retry" in first["detail"]
    infra = httpx.get(f"{lab.url}/jobs/{first['id']}/infra_log", headers=lab.headers).text
    assert infra.startswith("attempt 1 on nucleo-f303re#0 failed: probe")
    assert lab.instance()["consecutive_failures"] == 2

    second = lab.wait(lab.submit())
    assert second["status"] == "ERROR" and second["retries"] == 0, second
    assert "instance nucleo-f303re#0 is now offline after 3 infrastructure errors" \
        in second["detail"]
    instance = lab.instance()
    assert instance["state"] == "offline", instance
    assert instance["summary"].startswith("offline: 3 infrastructure errors in a row")
    listed = lab.cli("boards")
    assert listed.returncode == 0, listed.stderr
    assert "nucleo-f303re#0" in listed.stdout and "offline: 3 infrastructure" in listed.stdout
    refused = httpx.put(f"{lab.url}/jobs/submit", headers=lab.headers,
                        params={"board": "nucleo-f303re", "duration_limit_seconds": 1},
                        content=(BUILD / "hello.elf").read_bytes())
    assert refused.status_code == 503 and "offline" in refused.text

    # the operator fixes the bench (here: the server is told the right probe) and puts
    # the instance back with the CLI
    back = lab.cli("board", "online", "nucleo-f303re#0")
    assert back.returncode == 0, back.stderr
    assert "nucleo-f303re#0" in back.stdout and "idle" in back.stdout
    assert lab.instance()["state"] == "idle" and lab.instance()["consecutive_failures"] == 0


def test_the_api_takes_instances_offline_and_back(bench, make_lab):
    lab = make_lab({"probe": bench.probe_uid, "serial": bench.console})
    url = f"{lab.url}/targets/boards/nucleo-f303re"
    r = httpx.post(f"{url}/offline", headers=lab.headers, json={})
    assert r.status_code == 200 and r.json()["instances"][0]["state"] == "offline"
    assert r.json()["available"] is False
    r = httpx.post(f"{url}/online", headers=lab.headers, json={"instance": "nucleo-f303re#0"})
    assert r.status_code == 200 and r.json()["instances"][0]["state"] == "idle"
    r = httpx.post(f"{url}/online", headers=lab.headers, json={"instance": "nucleo-f303re#9"})
    assert r.status_code == 400 and "nucleo-f303re#0" in r.json()["description"]
    r = httpx.post(f"{lab.url}/targets/boards/no-such/online", headers=lab.headers)
    assert r.status_code == 404


def test_a_flaky_bench_is_retried_and_the_job_finishes(bench, make_lab):
    """A transient failure (the first attempt cannot program the flash, the second can):
    the retry runs the job again from the start and it FINISHES."""
    lab = make_lab({"probe": bench.probe_uid, "serial": bench.console}, retries=1,
                   offline_after=3)
    assert bench.board is not None
    flash = bench.board.machine.peripherals["FLASH"]
    flash.worn_pages.add(0x0800_0000)  # the first attempt cannot program ...
    program = flash.program_halfword

    def heal_after_first_failure(address: int, value: int) -> bool:
        done = program(address, value)
        if not done:
            flash.worn_pages.clear()  # ... and the second can
        return bool(done)

    flash.program_halfword = heal_after_first_failure
    job = lab.wait(lab.submit())
    job_id = job["id"]
    assert (job["status"], job["retries"]) == ("FINISHED", 1), job
    log = httpx.get(f"{lab.url}/jobs/{job_id}/log", headers=lab.headers).content
    assert log.startswith(b"HWUT hello from NUCLEO-F303RE")  # the last attempt's log only
    infra = httpx.get(f"{lab.url}/jobs/{job_id}/infra_log", headers=lab.headers).text
    assert "attempt 1 on nucleo-f303re#0 failed: flash programming failed" in infra
    assert lab.instance()["consecutive_failures"] == 0


def test_console_input_is_typed_into_the_port_and_presses_are_refused(bench, make_lab):
    """`input=` at submit reaches the firmware through the serial port (echo returns
    it as on the sim); `press=` is refused before anything runs, naming the backend: a
    lab's board has no finger on its button."""
    lab = make_lab({"probe": bench.probe_uid, "serial": bench.console})
    board = httpx.get(f"{lab.url}/targets/boards/nucleo-f303re", params={"extended": "true"},
                      headers=lab.headers).json()
    assert board["capabilities"] == {"console_input": True, "presses": False, "pins": False,
                                     "live_input": True, "live_presses": False}, board
    refusals = {
        ("press", "B1@0.5", "button"): "cannot run scripted button presses ('press'): its "
                                       "backend, physical, does not support them",
        ("pin", "PA0@0:1", "pin_levels"): "cannot drive pins ('pin'): its backend, physical, "
                                          "does not support scripted pin levels"}
    for (param, value, firmware), why in refusals.items():
        refused = httpx.put(f"{lab.url}/jobs/submit", headers=lab.headers,
                            params={"board": "nucleo-f303re", "duration_limit_seconds": 1,
                                    param: value},
                            content=(BUILD / f"{firmware}.elf").read_bytes())
        assert refused.status_code == 400, refused.text
        assert refused.json()["description"] == f"board nucleo-f303re {why}"
    r = httpx.put(f"{lab.url}/jobs/submit", headers=lab.headers,
                  params={"board": "nucleo-f303re", "duration_limit_seconds": 1,
                          "input": "ab\rc"},
                  content=(BUILD / "echo.elf").read_bytes(), timeout=30)
    assert r.status_code == 201, r.text
    job = lab.wait(int(r.json()["id"]))
    assert (job["status"], job["stop_reason"]) == ("FINISHED", "limit"), job
    log = httpx.get(f"{lab.url}/jobs/{job['id']}/log", headers=lab.headers).content
    assert log == b"echo ready\r\nab\r\nc"  # what the sim prints with this input
    infra = httpx.get(f"{lab.url}/jobs/{job['id']}/infra_log", headers=lab.headers).text
    assert "console input: 4 of 4 bytes typed from" in infra
