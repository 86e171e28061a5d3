"""Who may do what: anonymous, another user, the owner and an admin on every route."""
from __future__ import annotations

import pytest
from fixture_firmware import SEMIHOST, image

from hwut.jobs import JobStatus

# route -> expected status for (anonymous, other, owner, admin); {id} is alice's finished
# semihost_exit job (it prints, exits with 3 and the sim reports on the run; no ITM trace)
MATRIX = [
    ("GET", "/apiv1/version", (200, 200, 200, 200)),
    ("GET", "/apiv1/auth_test", (401, 200, 200, 200)),
    ("GET", "/apiv1/jobs", (401, 200, 200, 200)),
    ("PUT", "/apiv1/jobs/submit?board=nucleo-f303re&duration_limit_seconds=1",
     (401, 201, 201, 201)),
    ("GET", "/apiv1/jobs/{id}", (401, 200, 200, 200)),
    ("GET", "/apiv1/job/{id}", (401, 200, 200, 200)),
    ("GET", "/apiv1/jobs/{id}/is_finished", (401, 204, 204, 204)),
    ("GET", "/apiv1/jobs/{id}/log", (401, 403, 200, 200)),
    ("GET", "/apiv1/job/{id}/log", (401, 403, 200, 200)),
    ("GET", "/apiv1/jobs/{id}/other", (401, 403, 404, 404)),
    ("GET", "/apiv1/jobs/{id}/infra_log", (401, 403, 200, 200)),
    ("DELETE", "/apiv1/jobs/{id}", (401, 403, 400, 400)),
    ("DELETE", "/apiv1/jobs/{waiting}", (401, 403, 204, 204)),
    ("GET", "/apiv1/targets/boards", (401, 200, 200, 200)),
    ("GET", "/apiv1/targets/boards/nucleo-f303re?extended=true", (401, 200, 200, 200)),
    ("GET", "/apiv1/targets/microcontrollers", (401, 200, 200, 200)),
    ("GET", "/apiv1/targets/microcontrollers/stm32f303re", (401, 200, 200, 200)),
    ("POST", "/apiv1/targets/boards", (401, 403, 403, 201)),
    ("POST", "/apiv1/targets/microcontrollers", (401, 403, 403, 201)),
    ("DELETE", "/apiv1/targets/boards/{board}", (401, 403, 403, 204)),
    ("DELETE", "/apiv1/targets/microcontrollers/{mcu}", (401, 403, 403, 204)),
]
WHO = ("anonymous", "bob", "alice", "admin")


@pytest.mark.parametrize("method, path, expected", MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX])
@pytest.mark.parametrize("who", range(4), ids=WHO)
def test_matrix(env, method, path, expected, who):
    finished = env.submit(firmware="semihost_exit").json["id"]
    assert env.wait(finished) is JobStatus.FINISHED
    waiting = env.stranded_job()
    admin = env.headers["admin"]
    env.client.simulate_post("/apiv1/targets/microcontrollers", json={"name": "mcu-x"},
                             headers=admin)
    env.client.simulate_post("/apiv1/targets/boards", json={"name": "board-x"}, headers=admin)
    url = path.format(id=finished, waiting=waiting, board="board-x", mcu="mcu-y")
    if "{mcu}" in path:
        env.client.simulate_post("/apiv1/targets/microcontrollers", json={"name": "mcu-y"},
                                 headers=admin)
    kwargs = {}
    if method == "PUT":
        kwargs["body"] = image("semihost_exit")
    if method == "POST":
        kwargs["json"] = {"name": f"new-{who}"}
    r = env.client.simulate_request(method, url, headers=env.headers[WHO[who]], **kwargs)
    assert r.status_code == expected[who], r.text
    if r.status_code == 401:
        assert "www-authenticate" in r.headers
    if r.status_code == 200 and path.endswith("/log"):
        assert r.content == SEMIHOST
    if r.status_code == 200 and path.endswith("/infra_log"):
        assert "virtual time" in r.text
    if r.status_code == 403:
        assert "belongs to another user" in r.json["description"] or "admin" in r.text


def test_other_user_gets_short_view_only(env):
    job_id = env.submit(firmware="semihost_exit", comment="private").json["id"]
    r = env.client.simulate_get(f"/apiv1/jobs/{job_id}", headers=env.headers["bob"])
    assert "comment" not in r.json and "private" not in r.text


def test_other_user_does_not_see_jobs_in_list(env):
    env.submit(firmware="semihost_exit")
    r = env.client.simulate_get("/apiv1/jobs", headers=env.headers["bob"])
    assert r.json == []
