"""Who may do what: anonymous, another user, the owner and an admin on every route."""
from __future__ import annotations

import pytest
from hwut_fakes import tiny_bin

# route -> expected status for (anonymous, other, owner, admin); {id} is alice's finished job
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
    ("GET", "/apiv1/jobs/{id}/infra_log", (401, 403, 404, 404)),
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
    finished = env.submit().json["id"]
    env.wait(finished)
    waiting = env.submit(board="board-none").json["id"]
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
        kwargs["body"] = tiny_bin()
    if method == "POST":
        kwargs["json"] = {"name": f"new-{who}"}
    r = env.client.simulate_request(method, url, headers=env.headers[WHO[who]], **kwargs)
    assert r.status_code == expected[who], r.text
    if r.status_code == 401:
        assert "www-authenticate" in r.headers


def test_other_user_gets_short_view_only(env):
    job_id = env.submit(comment="private").json["id"]
    r = env.client.simulate_get(f"/apiv1/jobs/{job_id}", headers=env.headers["bob"])
    assert "comment" not in r.json and "private" not in r.text


def test_other_user_does_not_see_jobs_in_list(env):
    env.submit()
    r = env.client.simulate_get("/apiv1/jobs", headers=env.headers["bob"])
    assert r.json == []
