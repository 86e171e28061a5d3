"""Every route and status code of the v1 API, with falcon's test client."""
from __future__ import annotations

import threading

import pytest
from fixture_firmware import (
    FAULT,
    HELLO_1S,
    HELLO_BANNER,
    HELLO_COUNTS,
    ITM,
    SEMIHOST,
    SPIN_LIMIT,
    expected,
    image,
)
from hwut_testenv import basic

from hwut.jobs import JobStatus


def test_version_is_anonymous(env):
    r = env.client.simulate_get("/apiv1/version")
    assert r.status_code == 200
    assert r.json["api"] == "v1"


def test_auth_test(env):
    assert env.client.simulate_get("/apiv1/auth_test").status_code == 401
    r = env.client.simulate_get("/apiv1/auth_test", headers=env.headers["alice"])
    assert r.json == {"user": "alice", "role": "user"}
    r = env.client.simulate_get("/apiv1/auth_test",
                                headers=basic("admin", env.passwords["admin"]))
    assert r.json == {"user": "admin", "role": "admin"}


def test_unauthenticated_gets_401_with_challenge(env):
    r = env.client.simulate_get("/apiv1/jobs")
    assert r.status_code == 401
    assert "Basic" in r.headers["www-authenticate"]
    assert set(r.json) == {"title", "description"}


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + "YWxpY2U=", "Bearer nope",
                                    "Digest x", "Basic", "Bearer"])
def test_bad_credentials_get_401(env, header):
    r = env.client.simulate_get("/apiv1/jobs", headers={"Authorization": header})
    assert r.status_code == 401


def test_wrong_password(env):
    r = env.client.simulate_get("/apiv1/jobs", headers=basic("alice", "wrong"))
    assert r.status_code == 401


def test_submit_created(env):
    r = env.submit(comment="Bla blubb comment", limit=2)
    assert r.status_code == 201
    job = r.json
    assert r.headers["location"] == f"/apiv1/jobs/{job['id']}"
    assert job["status"] in ("WAITING", "QUEUED", "RUNNING", "FINISHED")
    assert job["owner"] == "alice"
    assert job["comment"] == "Bla blubb comment"
    assert job["duration_limit_seconds"] == 2
    assert job["board"] == "nucleo-f303re"
    assert job["format"] == "elf"
    assert len(job["filename_executable"]) >= 40
    assert job["filename_log"] is None
    assert len(job["created"]) == len("2020-01-01 00:00:00.000000")


def test_submit_default_duration(idle_env):
    r = idle_env.client.simulate_put("/apiv1/jobs/submit", params={"board": "nucleo-f303re"},
                                     body=image("hello"), headers=idle_env.headers["alice"])
    assert r.status_code == 201
    assert r.json["duration_limit_seconds"] == 60
    assert r.json["queue_position"] == 1


@pytest.mark.parametrize("value", ["0", "301", "1.5", "abc", "-1", "1e3", " 5x"])
def test_submit_bad_duration(idle_env, value):
    r = idle_env.submit(limit=value)
    assert r.status_code == 400
    assert "from 1 to 300" in r.json["description"]


def test_submit_unknown_board_lists_known(idle_env):
    r = idle_env.submit(board="nucleo-xyz")
    assert r.status_code == 400
    assert "nucleo-f303re" in r.json["description"]
    r = idle_env.client.simulate_put("/apiv1/jobs/submit", body=image("hello"),
                                     headers=idle_env.headers["alice"])
    assert r.status_code == 400
    assert "'board' is required" in r.json["description"]


def test_submit_empty_body(idle_env):
    r = idle_env.submit(body=b"")
    assert r.status_code == 400
    assert "empty" in r.json["description"]


@pytest.mark.parametrize("body, reason", [
    (b"\x7fELF" + b"\x00" * 60, "ELF"),
    (b":00000001FE\n:10000000ZZ", "Intel HEX"),
    (b"hello world, this is not firmware", "vector table"),
])
def test_submit_invalid_firmware(idle_env, body, reason):
    r = idle_env.submit(body=body)
    assert r.status_code == 415
    assert reason in r.json["description"]


def test_submit_too_large(make_env):
    env = make_env(start=False, limits_max_executable_bytes=1024)
    assert len(image("semihost_exit", "bin")) <= 1024 < len(image("hello", "bin"))
    assert env.submit(firmware="semihost_exit", fmt="bin").status_code == 201
    r = env.submit(firmware="hello", fmt="bin")
    assert r.status_code == 413
    assert "1024 bytes" in r.json["description"]


@pytest.mark.parametrize("fmt", ["elf", "hex", "bin"])
def test_every_format_is_accepted_and_runs(env, fmt):
    r = env.submit(firmware="hello", fmt=fmt)
    assert r.status_code == 201, r.json
    assert r.json["format"] == fmt
    assert env.wait(r.json["id"]) is JobStatus.FINISHED
    assert env.log(r.json["id"]) == HELLO_1S


def test_job_views_and_spellings(env):
    job_id = env.submit().json["id"]
    env.wait(job_id)
    for prefix in ("job", "jobs"):
        own = env.client.simulate_get(f"/apiv1/{prefix}/{job_id}", headers=env.headers["alice"])
        assert own.status_code == 200
        assert own.json["status"] == "FINISHED"
        assert own.json["stop_reason"] == "limit"
        assert own.json["exit_code"] is None
        assert own.json["time_used_seconds"] == pytest.approx(1.0)
        assert own.json["started"] and own.json["finished"]
        assert own.json["started"] <= own.json["finished"]
        other = env.client.simulate_get(f"/apiv1/{prefix}/{job_id}", headers=env.headers["bob"])
        assert set(other.json) == {"id", "created", "status", "owner"}
        admin = env.client.simulate_get(f"/apiv1/{prefix}/{job_id}",
                                        headers=env.headers["admin"])
        assert "filename_log" in admin.json


def test_unknown_job_404(env):
    for path in ("/apiv1/jobs/999", "/apiv1/job/999/log", "/apiv1/jobs/999/is_finished",
                 "/apiv1/jobs/0", "/apiv1/jobs/abc", "/apiv1/nothing"):
        r = env.client.simulate_get(path, headers=env.headers["alice"])
        assert r.status_code == 404, path
        assert "title" in r.json
    r = env.client.simulate_delete("/apiv1/jobs/999", headers=env.headers["alice"])
    assert r.status_code == 404


def test_is_finished(idle_env):
    job_id = idle_env.submit().json["id"]
    r = idle_env.client.simulate_get(f"/apiv1/jobs/{job_id}/is_finished",
                                     headers=idle_env.headers["alice"])
    assert r.status_code == 404
    idle_env.client.simulate_delete(f"/apiv1/jobs/{job_id}", headers=idle_env.headers["alice"])
    r = idle_env.client.simulate_get(f"/apiv1/job/{job_id}/is_finished",
                                     headers=idle_env.headers["alice"])
    assert r.status_code == 204


def test_cancel_waiting_then_400(idle_env):
    job_id = idle_env.submit().json["id"]
    r = idle_env.client.simulate_delete(f"/apiv1/jobs/{job_id}", headers=idle_env.headers["alice"])
    assert r.status_code == 204
    assert idle_env.service.store.jobs.get(job_id).status is JobStatus.CANCELED
    r = idle_env.client.simulate_delete(f"/apiv1/jobs/{job_id}", headers=idle_env.headers["alice"])
    assert r.status_code == 400
    assert r.json["description"] == "Unable to cancel job. Current job status: CANCELED"


def test_cancel_finished_400(env):
    job_id = env.submit().json["id"]
    assert env.wait(job_id) is JobStatus.FINISHED
    r = env.client.simulate_delete(f"/apiv1/job/{job_id}", headers=env.headers["alice"])
    assert r.status_code == 400
    assert r.json["description"] == "Unable to cancel job. Current job status: FINISHED"


def test_cancel_running_stops_backend(env):
    # hello with a 300 s limit runs for many seconds of wall time: RUNNING until canceled
    job_id = env.submit(limit=SPIN_LIMIT).json["id"]
    assert env.wait(job_id, lambda s: s is JobStatus.RUNNING) is JobStatus.RUNNING
    partial = env.wait_for_log(job_id, HELLO_BANNER + b"count=0\r\n")
    assert partial.startswith(HELLO_BANNER + b"count=0\r\n")  # streamed while running
    r = env.get(f"/apiv1/jobs/{job_id}/log")
    assert r.headers["x-hwut-job-status"] == "RUNNING"
    r = env.client.simulate_delete(f"/apiv1/jobs/{job_id}", headers=env.headers["admin"])
    assert r.status_code == 204
    assert env.wait(job_id, timeout=2) is JobStatus.CANCELED
    job = env.service.store.jobs.get(job_id)
    assert job.detail == "canceled by admin"
    assert job.stop_reason == "cancel"
    assert 0 < job.time_used_seconds < SPIN_LIMIT
    log = env.log(job_id)  # what it printed until the cancel (it may end mid-line)
    assert log.startswith(partial) and HELLO_COUNTS.startswith(log.removeprefix(HELLO_BANNER))


def test_cancel_spin_and_the_instance_takes_the_next_job(env):
    spin = env.submit(firmware="spin", limit=SPIN_LIMIT).json["id"]
    assert env.wait(spin, lambda s: s is JobStatus.RUNNING) is JobStatus.RUNNING
    after = env.submit(firmware="semihost_exit").json["id"]
    assert env.service.store.jobs.get(after).status is JobStatus.WAITING  # one instance
    assert env.client.simulate_delete(f"/apiv1/jobs/{spin}",
                                      headers=env.headers["alice"]).status_code == 204
    assert env.wait(spin) is JobStatus.CANCELED
    assert env.log(spin) == b""  # spin prints nothing
    assert env.wait(after) is JobStatus.FINISHED
    assert env.log(after) == SEMIHOST


def test_log_404_before_running_and_offset(idle_env, env):
    job_id = idle_env.submit().json["id"]
    r = idle_env.client.simulate_get(f"/apiv1/jobs/{job_id}/log",
                                     headers=idle_env.headers["alice"])
    assert r.status_code == 404
    job_id = env.submit().json["id"]
    env.wait(job_id)
    r = env.client.simulate_get(f"/apiv1/jobs/{job_id}/log", headers=env.headers["alice"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.content == HELLO_1S
    assert r.headers["x-hwut-size"] == str(len(HELLO_1S))
    tail = env.client.simulate_get(f"/apiv1/jobs/{job_id}/log", params={"offset": 5},
                                   headers=env.headers["alice"])
    assert tail.text == r.text[5:]
    beyond = env.client.simulate_get(f"/apiv1/jobs/{job_id}/log", params={"offset": 10**9},
                                     headers=env.headers["alice"])
    assert beyond.status_code == 200 and beyond.text == ""
    bad = env.client.simulate_get(f"/apiv1/jobs/{job_id}/log", params={"offset": -1},
                                  headers=env.headers["alice"])
    assert bad.status_code == 400


def test_other_trace(env):
    job_id = env.submit(firmware="itm_printf").json["id"]
    env.wait(job_id)
    r = env.client.simulate_get(f"/apiv1/jobs/{job_id}/other", headers=env.headers["alice"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == ITM  # printed over ITM/SWO ...
    assert env.log(job_id) == b""  # ... and not on the UART
    job_id = env.submit().json["id"]
    env.wait(job_id)
    r = env.client.simulate_get(f"/apiv1/jobs/{job_id}/other", headers=env.headers["alice"])
    assert r.status_code == 404


def test_list_jobs_filters_and_visibility(idle_env):
    ids = [idle_env.submit(user=u).json["id"] for u in ("alice", "bob", "alice")]
    idle_env.stranded_job(user="alice")
    r = idle_env.client.simulate_get("/apiv1/jobs", headers=idle_env.headers["alice"])
    assert [j["owner"] for j in r.json] == ["alice"] * 3
    assert [j["id"] for j in r.json] == sorted([j["id"] for j in r.json], reverse=True)
    r = idle_env.client.simulate_get("/apiv1/jobs", headers=idle_env.headers["admin"])
    assert len(r.json) == 4
    r = idle_env.client.simulate_get("/apiv1/jobs", params={"board": "nucleo-f303re"},
                                     headers=idle_env.headers["admin"])
    assert [j["id"] for j in r.json] == ids[::-1]
    idle_env.client.simulate_delete(f"/apiv1/jobs/{ids[0]}", headers=idle_env.headers["alice"])
    r = idle_env.client.simulate_get("/apiv1/jobs", params={"status": "canceled"},
                                     headers=idle_env.headers["alice"])
    assert [j["id"] for j in r.json] == [ids[0]]
    r = idle_env.client.simulate_get("/apiv1/jobs", params={"limit": 1, "offset": 1},
                                     headers=idle_env.headers["admin"])
    assert [j["id"] for j in r.json] == [ids[2]]


@pytest.mark.parametrize("params", [{"limit": "x"}, {"limit": -1}, {"limit": 1001},
                                    {"offset": "-3"}, {"status": "DONE"},
                                    {"offset": "1.0"}])
def test_list_jobs_bad_params(idle_env, params):
    r = idle_env.client.simulate_get("/apiv1/jobs", params=params,
                                     headers=idle_env.headers["alice"])
    assert r.status_code == 400
    assert r.json["description"]


def test_outcomes(env):
    cases = {  # firmware: (status, stop reason, exit code, UART log)
        "semihost_exit": (JobStatus.FINISHED, "exit", 3, SEMIHOST),
        "semihost_exit0": (JobStatus.FINISHED, "exit", 0, expected("semihost_exit0")),
        "fault": (JobStatus.FINISHED, "fault", None, FAULT),
        "hello": (JobStatus.FINISHED, "limit", None, HELLO_1S),
    }
    ids = {name: env.submit(firmware=name).json["id"] for name in cases}
    for name, (status, reason, code, log) in cases.items():
        assert env.wait(ids[name]) is status, name
        job = env.service.store.jobs.get(ids[name])
        assert (job.stop_reason, job.exit_code) == (reason, code), name
        assert env.log(ids[name]) == log, name
    jobs = env.service.store.jobs
    assert jobs.get(ids["semihost_exit"]).detail == "firmware exited with code 3"
    fault = jobs.get(ids["fault"])
    assert fault.detail.startswith("HardFault") and "0x60000000" in fault.detail
    r = env.get(f"/apiv1/jobs/{ids['fault']}/infra_log")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "bus fault: read of 0x60000000" in r.text and "virtual time" in r.text
    r = env.get(f"/apiv1/jobs/{ids['semihost_exit']}/infra_log")
    assert r.status_code == 200 and "virtual time" in r.text


def test_backend_that_raises_is_an_error_and_frees_the_instance(env):
    first = env.submit(board="board-raise").json["id"]
    second = env.submit(board="board-raise").json["id"]
    for job_id in (first, second):  # the instance took the next job
        assert env.wait(job_id) is JobStatus.ERROR
        job = env.service.store.jobs.get(job_id)
        assert job.detail == "the backend failed: RuntimeError"  # no exception text
        assert job.stop_reason == "infrastructure_error" and job.finished
    r = env.get(f"/apiv1/jobs/{first}/infra_log")  # the traceback went to the server log
    assert r.status_code == 200 and "probe on fire" not in r.text


def test_a_run_past_its_deadline_is_an_error(env):
    # the scheduler's clock passes the run's deadline (as on a machine too slow to keep
    # up): the real sim backend is told through the run's token and stops at once
    job_id = env.submit(firmware="hello", limit=SPIN_LIMIT).json["id"]
    assert env.wait_for_log(job_id, b"HWUT hello").startswith(b"HWUT hello")  # it runs
    assert env.pass_deadlines(job_id) is JobStatus.ERROR
    job = env.service.store.jobs.get(job_id)
    assert job.stop_reason == "infrastructure_error"
    assert job.detail.startswith("the job did not end within ")
    assert "of wall time (stopped at" in job.detail
    assert 0 < job.time_used_seconds < SPIN_LIMIT
    assert "virtual time" in env.get(f"/apiv1/jobs/{job_id}/infra_log").text


def test_hung_backend_is_killed_and_the_instance_takes_the_next_job(env):
    first = env.submit(board="board-hang").json["id"]
    assert env.pass_deadlines(first, settle=0.5) is JobStatus.ERROR
    detail = env.service.store.jobs.get(first).detail
    assert "did not end within" in detail and "its process was killed" in detail
    assert not [t for t in threading.enumerate() if t.name.startswith("hwut-run")]
    second = env.submit(board="board-hang").json["id"]
    assert env.pass_deadlines(second, settle=0.5) is JobStatus.ERROR  # took the next job


def test_queue_position(idle_env):
    ids = [idle_env.submit().json["id"] for _ in range(3)]
    idle_env.stranded_job()
    r = idle_env.client.simulate_get(f"/apiv1/jobs/{ids[2]}", headers=idle_env.headers["alice"])
    assert r.json["queue_position"] == 3


def test_targets_read(env):
    h = env.headers["bob"]
    r = env.client.simulate_get("/apiv1/targets/boards", headers=h)
    assert "nucleo-f303re" in [b["name"] for b in r.json]
    r = env.client.simulate_get("/apiv1/targets/boards/nucleo-f303re",
                                params={"extended": "true"}, headers=h)
    assert r.json["manufacturer"] == "STMicroelectronics"
    assert r.json["microcontroller"]["name"] == "stm32f303re"
    assert r.json["instances"][0]["backend"] == "sim"
    assert r.json["instances"][0]["state"] in ("idle", "busy")
    r = env.client.simulate_get("/apiv1/targets/boards/board-missing",
                                params={"extended": "1"}, headers=h)
    assert r.json["instances"][0]["state"] == "unavailable"
    assert "not installed" in r.json["instances"][0]["availability"]["detail"]
    r = env.client.simulate_get("/apiv1/targets/microcontrollers", headers=h)
    assert [m["name"] for m in r.json] == ["stm32f303re"]
    r = env.client.simulate_get("/apiv1/targets/microcontrollers/stm32f303re",
                                params={"extended": "true"}, headers=h)
    assert "nucleo-f303re" in r.json["boards"]
    r = env.client.simulate_get("/apiv1/targets/boards/nope", headers=h)
    assert r.status_code == 404
    r = env.client.simulate_get("/apiv1/targets/boards", params={"extended": "maybe"}, headers=h)
    assert r.status_code == 400


def test_targets_admin_create_delete(env):
    admin, user = env.headers["admin"], env.headers["alice"]
    mcu = {"name": "stm32l476rg", "manufacturer": "STMicroelectronics", "core": "Cortex-M4F"}
    assert env.client.simulate_post("/apiv1/targets/microcontrollers", json=mcu,
                                    headers=user).status_code == 403
    r = env.client.simulate_post("/apiv1/targets/microcontrollers", json=mcu, headers=admin)
    assert r.status_code == 201
    assert r.headers["location"] == "/apiv1/targets/microcontrollers/stm32l476rg"
    assert env.client.simulate_post("/apiv1/targets/microcontrollers", json=mcu,
                                    headers=admin).status_code == 400
    board = {"name": "nucleo-l476rg", "microcontroller": "stm32l476rg"}
    assert env.client.simulate_post("/apiv1/targets/boards", json=board,
                                    headers=admin).status_code == 201
    for bad in ({"name": "x", "microcontroller": "nope"}, {"name": "x", "colour": "red"},
                {"name": "../x"}, [1, 2], {"name": 5}):
        r = env.client.simulate_post("/apiv1/targets/boards", json=bad, headers=admin)
        assert r.status_code == 400, bad
    r = env.client.simulate_post("/apiv1/targets/boards", body="{not json", headers=admin,
                                 content_type="application/json")
    assert r.status_code == 400
    assert env.client.simulate_delete("/apiv1/targets/microcontrollers/stm32l476rg",
                                      headers=admin).status_code == 409
    assert env.client.simulate_delete("/apiv1/targets/boards/nucleo-l476rg",
                                      headers=user).status_code == 403
    assert env.client.simulate_delete("/apiv1/targets/boards/nucleo-l476rg",
                                      headers=admin).status_code == 204
    assert env.client.simulate_delete("/apiv1/targets/microcontrollers/stm32l476rg",
                                      headers=admin).status_code == 204
    assert env.client.simulate_delete("/apiv1/targets/boards/nucleo-f303re",
                                      headers=admin).status_code == 409
    assert env.client.simulate_delete("/apiv1/targets/boards/gone",
                                      headers=admin).status_code == 404


def test_created_board_without_instances_refuses_jobs_at_once(idle_env):
    admin = idle_env.headers["admin"]
    idle_env.client.simulate_post("/apiv1/targets/boards", json={"name": "lab-board"},
                                  headers=admin)
    r = idle_env.submit(board="lab-board")
    assert r.status_code == 503, r.text
    assert r.json["description"] == (
        "Not accepted: board lab-board has no instance that can run jobs: the server config "
        "does not serve it (it exists only in the targets API).")
    assert idle_env.service.store.jobs.count() == 0


def test_method_not_allowed_is_json(env):
    r = env.client.simulate_post("/apiv1/jobs/1", headers=env.headers["alice"])
    assert r.status_code == 405
    assert "title" in r.json


def test_errors_are_json_whatever_accept_says(env):
    r = env.client.simulate_get("/apiv1/jobs/999",
                                headers={**env.headers["alice"], "Accept": "application/xml"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")


def test_catch_all_hides_internals(env, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")
    monkeypatch.setattr(env.service.store.jobs, "list", boom)
    r = env.client.simulate_get("/apiv1/jobs", headers=env.headers["alice"])
    assert r.status_code == 500
    assert "secret" not in r.text
    assert r.json["title"] == "Internal Server Error"


def test_console_input_reaches_the_firmware(env):
    r = env.submit(firmware="echo", limit=1, input="hi\r")
    assert r.status_code == 201 and r.json["input"] == "hi\r"
    assert env.wait(r.json["id"]) is JobStatus.FINISHED
    assert env.log(r.json["id"]) == b"echo ready\r\nhi\r\n"


def test_button_presses_are_scripted_in_virtual_time(env):
    r = env.client.simulate_put(
        "/apiv1/jobs/submit", body=image("button"), headers=env.headers["alice"],
        query_string="board=nucleo-f303re&duration_limit_seconds=1"
                     "&press=B1@0.2-0.3&press=B1@0.6")
    assert r.status_code == 201, r.text
    assert r.json["presses"] == [["B1", 0.2, 0.3], ["B1", 0.6, None]]
    assert env.wait(r.json["id"]) is JobStatus.FINISHED
    log = env.log(r.json["id"]).decode()
    assert log.count("pressed at") == 2 and log.count("released at") == 1


@pytest.mark.parametrize("press, why", [
    ("B1", "must look like"), ("B1@x", "must look like"), ("B1@2", "within the job"),
    ("B1@0.5-0.4", "release after"), ("@0.5", "must look like")])
def test_bad_presses_are_refused_with_what_is_allowed(idle_env, press, why):
    r = idle_env.submit(press=press)
    assert r.status_code == 400 and why in r.json["description"]


def test_unknown_button_is_refused_at_submit(idle_env):
    r = idle_env.submit(firmware="button", limit=1, press="B9@0.1")
    assert r.status_code == 400
    assert r.json["description"] == "board nucleo-f303re has no button 'B9'; its buttons: B1"
    assert idle_env.service.store.jobs.count() == 0
