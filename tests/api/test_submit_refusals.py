"""A submit the service cannot run is refused at once, with the reason (issue 10).

503 when no instance of the board can run jobs (none configured, backend missing,
broken or unavailable); 400 for what the board can check before a run (unknown
query parameters, buttons, console input or presses its backend cannot feed, an
executable that needs memory the board lacks); 415 for what is no executable at all.
Boards that exist only in the targets API and deleted boards strand no job.
"""
from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fixture_firmware import SEMIHOST, expected, image
from hwut_testenv import BOARDS, FAST_HASHER, Env, make_config

from hwut.backends.registry import load_backends
from hwut.config import BoardConfig
from hwut.jobs import JobStatus
from hwut.service import build_service

STANDIN = Path(__file__).resolve().parents[1] / "backends" / "renode_standin" / "renode"
SIM_BOARDS = (
    BoardConfig("nucleo-f303re", "sim", 1, {}),
    BoardConfig("stm32f3discovery", "sim", 1, {}),
)


def only_nothing_stored(env: Env) -> None:
    assert env.service.store.jobs.count() == 0


# ---- 503: no instance can run the board's jobs ------------------------------------------

def test_a_board_with_no_instance_is_503_with_the_reason(idle_env):
    r = idle_env.submit(board="board-none")
    assert r.status_code == 503
    assert r.json == {"title": "Service Unavailable", "description":
                      "Not accepted: board board-none has no instance that can run jobs: the "
                      "server config gives it 0 instances."}
    assert r.headers["retry-after"] == "60"
    only_nothing_stored(idle_env)


def test_a_board_whose_backend_is_not_installed_is_503(idle_env):
    r = idle_env.submit(board="board-missing")
    assert r.status_code == 503
    assert r.json["description"].startswith(
        "Not accepted: board board-missing has no instance that can run jobs: board-missing#0 "
        "unavailable: backend 'not-installed' is not installed; installed: ")
    only_nothing_stored(idle_env)


def test_renode_missing_is_503_quoting_why(make_env):
    boards = (BoardConfig("nucleo-f303re", "renode", 2,
                          {"renode_path": "/nonexistent/renode"}),)
    env = make_env(start=False, boards=boards)
    r = env.submit()
    assert r.status_code == 503
    why = "renode_path '/nonexistent/renode' does not exist"
    assert r.json["description"] == (
        "Not accepted: board nucleo-f303re has no instance that can run jobs: "
        f"nucleo-f303re#0 unavailable: {why}; nucleo-f303re#1 unavailable: {why}.")
    board = env.get("/apiv1/targets/boards/nucleo-f303re", params={"extended": "true"}).json
    assert board["available"] is False
    assert board["unavailable_reason"] in r.json["description"]
    assert [i["summary"] for i in board["instances"]] == [f"unavailable: {why}"] * 2


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An installed backend plug-in whose module fails to import (a missing dependency)."""
    site = tmp_path / "site"
    dist = site / "hwut_broken-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hwut-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[hwut.backends]\nbroken = hwut_broken_backend:BrokenBackend\n")
    (site / "hwut_broken_backend.py").write_text("import capstone_not_here  # noqa\n")
    monkeypatch.syspath_prepend(str(site))
    yield "broken"
    sys.modules.pop("hwut_broken_backend", None)


def test_a_backend_that_fails_to_import_is_unavailable_not_missing(tmp_path, broken_plugin):
    installed = load_backends()
    assert "broken" not in installed and "sim" in installed
    assert installed.failures["broken"] == (
        "ModuleNotFoundError: No module named 'capstone_not_here'")
    config = make_config(tmp_path / "data-broken", boards=(BoardConfig("lab", "broken", 1, {}),))
    service = build_service(config, installed, password_hasher=FAST_HASHER)
    try:
        env = Env(service)
        board = env.get("/apiv1/targets/boards/lab", params={"extended": "true"}).json
        why = ("backend 'broken' failed to load: "
               "ModuleNotFoundError: No module named 'capstone_not_here'")
        assert board["instances"][0]["summary"] == f"unavailable: {why}"
        assert board["instances"][0]["availability"] == {"ok": False, "detail": why}
        assert "not installed" not in str(board)
        r = env.submit(board="lab")
        assert r.status_code == 503
        assert r.json["description"] == (
            f"Not accepted: board lab has no instance that can run jobs: lab#0 unavailable: "
            f"{why}.")
    finally:
        service.stop()


def test_a_board_created_through_the_targets_api_strands_no_job(env):
    admin = env.headers["admin"]
    assert env.client.simulate_post("/apiv1/targets/boards", json={"name": "lab-board"},
                                    headers=admin).status_code == 201
    r = env.submit(board="lab-board")
    assert r.status_code == 503
    assert "the server config does not serve it" in r.json["description"]
    board = env.get("/apiv1/targets/boards/lab-board", params={"extended": "1"}).json
    assert board["available"] is False and board["instances"] == []


def test_deleting_a_board_cancels_the_jobs_waiting_for_it(env):
    admin = env.headers["admin"]
    env.client.simulate_post("/apiv1/targets/boards", json={"name": "lab-board"},
                             headers=admin)
    stranded = [env.stranded_job(board="lab-board"), env.stranded_job(user="bob",
                                                                       board="lab-board")]
    other = env.stranded_job(board="board-none")
    r = env.client.simulate_delete("/apiv1/targets/boards/lab-board", headers=admin)
    assert r.status_code == 204
    for job_id in stranded:
        job = env.service.store.jobs.get(job_id)
        assert job.status is JobStatus.CANCELED
        assert job.detail == "canceled by admin: board lab-board deleted"
    assert env.service.store.jobs.get(other).status is JobStatus.WAITING


def test_a_served_board_cannot_be_deleted(env):
    r = env.client.simulate_delete("/apiv1/targets/boards/nucleo-f303re",
                                   headers=env.headers["admin"])
    assert r.status_code == 409
    assert "the server config gives it 1 instance(s)" in r.json["description"]


def test_jobs_left_waiting_for_an_unserved_board_fail_at_start(make_env):
    env = make_env(start=False)
    stranded = env.stranded_job(board="board-none")
    waiting = env.submit(firmware="semihost_exit").json["id"]
    env.service.start()
    job = env.service.store.jobs.get(stranded)
    assert job.status is JobStatus.ERROR
    assert job.detail == ("board board-none has no instance that can run jobs: the server "
                          "config gives it 0 instances")
    assert env.wait(waiting) is JobStatus.FINISHED
    assert env.log(waiting) == SEMIHOST


# ---- 400: what the board can check at submit ---------------------------------------------

@pytest.mark.parametrize("typo", ["duration_limit", "Board", "timeout"])
def test_unknown_query_parameters_are_refused(idle_env, typo):
    r = idle_env.client.simulate_put(
        "/apiv1/jobs/submit", params={"board": "nucleo-f303re", typo: "1"},
        body=image("hello"), headers=idle_env.headers["alice"])
    assert r.status_code == 400
    assert r.json["description"] == (
        f"unknown query parameter(s) {typo!r}; allowed: board, duration_limit_seconds, "
        "comment, input, press, trace, realtime, expect, expect_regex, fail, fail_regex, ordered, "
        "exit_code, on_limit, run_to_end, parse, expect_pin, pin")
    only_nothing_stored(idle_env)


def test_buttons_are_those_of_the_board_asked_for(make_env):
    env = make_env(start=False, boards=SIM_BOARDS)
    r = env.submit(board="stm32f3discovery", firmware="disco_hello", press="B2@0.1")
    assert r.status_code == 400
    assert r.json["description"] == "board stm32f3discovery has no button 'B2'; its buttons: B1"
    r = env.submit(board="stm32f3discovery", firmware="disco_hello", press="B1@0.1-0.2")
    assert r.status_code == 201, r.text


@pytest.fixture
def renode_env(make_env: Callable[..., Env], tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Env:
    """nucleo-f303re on the renode backend, available (the stand-in answers --version)."""
    monkeypatch.setenv("RENODE_STANDIN_PYTHON", sys.executable)
    boards = (BoardConfig("nucleo-f303re", "renode", 1,
                          {"renode_path": str(STANDIN), "work_dir": str(tmp_path)}),)
    return make_env(start=False, boards=boards)


def test_renode_takes_console_input_and_presses_like_the_sim(renode_env):
    """Both backends accept the same job: Renode feeds input and presses too."""
    instance = renode_env.service.scheduler.instances[0]
    assert instance.state == "idle", instance.availability
    board = renode_env.get("/apiv1/targets/boards/nucleo-f303re",
                           params={"extended": "true"}).json
    assert board["capabilities"] == {"console_input": True, "presses": True, "pins": True,
                                     "live_input": False, "live_presses": False}
    assert renode_env.submit(input="hello\n").status_code == 201
    assert renode_env.submit(press="B1@0.1").status_code == 201
    r = renode_env.submit(press="B9@0.1")
    assert r.status_code == 400 and "B9" in r.json["description"]
    assert renode_env.submit(pin="PA0@0:1").status_code == 201
    r = renode_env.submit(pin="PI0@0:1")
    assert r.status_code == 400 and "no pin 'PI0'" in r.json["description"]


def test_images_are_checked_against_the_board_asked_for(make_env):
    """256 KiB + 4 bytes: fits the nucleo's F303RE, not the discovery's F303VC."""
    env = make_env(start=False, boards=SIM_BOARDS)
    big = image("disco_hello", "bin").ljust(256 * 1024 + 4, b"\xff")
    r = env.submit(board="stm32f3discovery", body=big)
    assert r.status_code == 400
    assert r.json["description"] == (
        "The executable does not fit board stm32f3discovery: BIN places 262148 bytes at "
        "0x08000000-0x08040003, outside the board's flash and RAM (0x00000000+0x40000, "
        "0x08000000+0x40000, 0x10000000+0x2000, 0x20000000+0xa000)")
    assert env.submit(board="nucleo-f303re", body=big).status_code == 201
    # a nucleo image's stack (0x20010000) is past the discovery's 40 KiB of SRAM
    r = env.submit(board="stm32f3discovery", firmware="hello")
    assert r.status_code == 400
    assert "initial stack pointer 0x20010000) does not point into RAM of this board" \
        in r.json["description"]
    r = env.submit(board="stm32f3discovery", body=b"not firmware")
    assert r.status_code == 415  # no executable at all, for any board


def test_the_discovery_runs_its_firmware_through_the_service(make_env):
    env = make_env(boards=SIM_BOARDS)
    job_id = env.submit(board="stm32f3discovery", firmware="disco_hello", limit=1).json["id"]
    assert env.wait(job_id) is JobStatus.FINISHED
    assert env.log(job_id) == expected("disco_hello")
    job = env.get(f"/apiv1/jobs/{job_id}").json
    assert (job["stop_reason"], job["exit_code"]) == ("exit", 0)
    mcu = env.get("/apiv1/targets/microcontrollers/stm32f303vc").json
    assert (mcu["flash_bytes"], mcu["ram_bytes"]) == (256 * 1024, 40 * 1024)
    board = env.get("/apiv1/targets/boards/stm32f3discovery").json
    assert (board["microcontroller"], board["console"], board["buttons"]) == \
        ("stm32f303vc", "USART1", ["B1"])


def test_an_initial_sp_with_its_low_bits_set_is_accepted_and_runs(env):
    """The core ignores SP bits [1:0] at reset: 0x2000FFFF is a valid initial SP."""
    body = bytearray(image("semihost_exit", "bin"))
    assert struct.unpack_from("<I", body, 0)[0] == 0x2001_0000
    struct.pack_into("<I", body, 0, 0x2000_FFFF)
    r = env.submit(body=bytes(body))
    assert r.status_code == 201, r.text
    assert env.wait(r.json["id"]) is JobStatus.FINISHED
    assert env.log(r.json["id"]) == SEMIHOST


def test_the_test_config_boards_are_what_these_tests_assume():
    names = {b.name: (b.backend, b.instances) for b in BOARDS}
    assert names["board-none"] == ("sim", 0) and names["board-missing"][0] == "not-installed"


def test_a_backend_without_the_board_is_503(make_env, monkeypatch):
    """Renode has a platform file for the nucleo only: configured for the discovery, its
    instance is unavailable, with the reason, though Renode itself is installed."""
    monkeypatch.setenv("RENODE_STANDIN_PYTHON", sys.executable)
    boards = (BoardConfig("stm32f3discovery", "renode", 1, {"renode_path": str(STANDIN)}),)
    env = make_env(start=False, boards=boards)
    r = env.submit(board="stm32f3discovery", firmware="disco_hello")
    assert r.status_code == 503
    assert r.json["description"] == (
        "Not accepted: board stm32f3discovery has no instance that can run jobs: "
        "stm32f3discovery#0 unavailable: backend 'renode' cannot run board "
        "'stm32f3discovery'; it runs nucleo-f303re.")
