"""User administration through the API (and ``hwut user --server``), and ``GET /jobs``
with ``extended=true``."""
from __future__ import annotations

import base64
from collections.abc import Callable

import cli_served
from cli_served import Served
from hwut_testenv import Env, basic, bearer

from hwut.client import token_id
from hwut.users import new_token

serve, served = cli_served.serve, cli_served.served  # the fixtures


def auth_status(env: Env, headers: dict[str, str]) -> int:
    return env.client.simulate_get("/apiv1/auth_test", headers=headers).status_code


def test_admin_lists_creates_and_deletes_users(idle_env: Env):
    env = idle_env
    r = env.get("/apiv1/users", "admin")
    assert r.status_code == 200
    assert [(u["name"], u["role"], u["tokens"]) for u in r.json] == [
        ("admin", "admin", 1), ("alice", "user", 1), ("bob", "user", 1)]
    assert "password_hash" not in r.text
    assert env.get("/apiv1/users", "alice").status_code == 403

    r = env.client.simulate_post("/apiv1/users", json={"name": "ci"},
                                 headers=env.headers["admin"])
    assert r.status_code == 201 and r.headers["location"] == "/apiv1/users/ci"
    assert r.json["role"] == "user" and r.json["password"] and r.json["token"]
    ci = bearer(r.json["token"])
    assert auth_status(env, ci) == 200
    r = env.client.simulate_post("/apiv1/users", json={"name": "ci"},
                                 headers=env.headers["admin"])
    assert r.status_code == 409 and "already exists" in r.json["description"]
    for body in ({"name": "a b"}, {"name": "x", "role": "root"}, {"name": "x", "password": ""},
                 ["ci"]):
        r = env.client.simulate_post("/apiv1/users", json=body, headers=env.headers["admin"])
        assert r.status_code == 400, body
    r = env.client.simulate_post("/apiv1/users", body=b"{", headers={
        **env.headers["admin"], "Content-Type": "application/json"})
    assert r.status_code == 400
    r = env.client.simulate_post("/apiv1/users", json={"name": "x"},
                                 headers=env.headers["alice"])
    assert r.status_code == 403

    # a deleted user's token stops working at once
    r = env.client.simulate_delete("/apiv1/users/ci", headers=env.headers["alice"])
    assert r.status_code == 403 and auth_status(env, ci) == 200
    r = env.client.simulate_delete("/apiv1/users/ci", headers=env.headers["admin"])
    assert r.status_code == 204 and auth_status(env, ci) == 401
    r = env.client.simulate_delete("/apiv1/users/ci", headers=env.headers["admin"])
    assert r.status_code == 404


def test_the_last_admin_cannot_be_deleted(idle_env: Env):
    env = idle_env
    r = env.client.simulate_delete("/apiv1/users/admin", headers=env.headers["admin"])
    assert r.status_code == 409 and "last admin" in r.json["description"]
    r = env.client.simulate_post("/apiv1/users", json={"name": "root", "role": "admin"},
                                 headers=env.headers["admin"])
    root = bearer(r.json["token"])
    r = env.client.simulate_delete("/apiv1/users/admin", headers=root)
    assert r.status_code == 204 and auth_status(env, env.headers["admin"]) == 401
    r = env.client.simulate_delete("/apiv1/users/root", headers=root)
    assert r.status_code == 409


def test_a_user_changes_their_own_password_not_others(idle_env: Env):
    env = idle_env
    old = basic("alice", env.passwords["alice"])
    assert auth_status(env, old) == 200
    r = env.client.simulate_put("/apiv1/users/alice/password", json={"password": "n3w"},
                                headers=env.headers["alice"])
    assert r.status_code == 204
    assert auth_status(env, old) == 401 and auth_status(env, basic("alice", "n3w")) == 200
    r = env.client.simulate_put("/apiv1/users/bob/password", json={"password": "x"},
                                headers=env.headers["alice"])
    assert r.status_code == 403
    r = env.client.simulate_put("/apiv1/users/bob/password", json={"password": "x"},
                                headers=env.headers["admin"])
    assert r.status_code == 204 and auth_status(env, basic("bob", "x")) == 200
    r = env.client.simulate_put("/apiv1/users/bob/password", json={"password": ""},
                                headers=env.headers["admin"])
    assert r.status_code == 400
    r = env.client.simulate_put("/apiv1/users/nobody/password", json={"password": "x"},
                                headers=env.headers["admin"])
    assert r.status_code == 404
    assert env.get("/apiv1/users/alice", "alice").json["name"] == "alice"
    assert env.get("/apiv1/users/bob", "alice").status_code == 403


def test_a_user_issues_and_revokes_their_own_tokens(idle_env: Env):
    env = idle_env
    alice = env.headers["alice"]
    first = alice["Authorization"].split()[1]
    r = env.client.simulate_post("/apiv1/users/alice/tokens", headers=alice)
    assert r.status_code == 201
    second = r.json["token"]
    ids = [t["id"] for t in env.get("/apiv1/users/alice/tokens").json]
    assert ids == [token_id(first), token_id(second)]
    assert first not in env.get("/apiv1/users/alice/tokens").text
    r = env.client.simulate_delete(f"/apiv1/users/alice/tokens/{token_id(first)}",
                                   headers=bearer(second))
    assert r.status_code == 204
    assert auth_status(env, alice) == 401 and auth_status(env, bearer(second)) == 200
    r = env.client.simulate_delete(f"/apiv1/users/alice/tokens/{token_id(first)}",
                                   headers=bearer(second))
    assert r.status_code == 404
    r = env.client.simulate_delete(f"/apiv1/users/alice/tokens/{second}",
                                   headers=bearer(second))
    assert r.status_code == 400  # a token itself never goes into a URL
    r = env.client.simulate_delete("/apiv1/users/bob/tokens", headers=bearer(second))
    assert r.status_code == 403
    r = env.client.simulate_delete("/apiv1/users/alice/tokens", headers=bearer(second))
    assert r.status_code == 200 and r.json == {"revoked": 1}
    assert auth_status(env, bearer(second)) == 401
    # the password still works, and admins revoke anyone's tokens
    raw = base64.b64encode(f"alice:{env.passwords['alice']}".encode()).decode()
    assert auth_status(env, {"Authorization": f"Basic {raw}"}) == 200
    r = env.client.simulate_delete("/apiv1/users/bob/tokens", headers=env.headers["admin"])
    assert r.json == {"revoked": 1} and auth_status(env, env.headers["bob"]) == 401


def test_jobs_list_extended_for_own_jobs_and_for_admins(idle_env: Env):
    env = idle_env
    mine = env.submit("alice").json["id"]
    theirs = env.submit("bob", comment="bob's").json["id"]
    short = env.get("/apiv1/jobs").json
    assert short == [{"id": mine, "created": short[0]["created"], "status": "WAITING",
                      "owner": "alice"}]
    extended = env.get("/apiv1/jobs", params={"extended": "true"}).json
    assert [j["id"] for j in extended] == [mine]
    assert extended[0] == env.get(f"/apiv1/jobs/{mine}").json
    assert extended[0]["board"] == "nucleo-f303re" and extended[0]["queue_position"] == 1
    admin = env.get("/apiv1/jobs", "admin", params={"extended": "1"}).json
    assert [(j["id"], j["comment"]) for j in admin] == [(theirs, "bob's"), (mine, None)]
    assert env.get("/apiv1/jobs", params={"extended": "maybe"}).status_code == 400


def test_user_commands_through_the_server(served: Served):
    def admin(*args: str, **kw: object):
        return served.run("user", *args, "--server", who="admin", **kw)

    r = admin("list")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == f"users of the server {served.url}:"
    assert "alice" in r.stdout and "bob" in r.stdout
    r = admin("add", "ci", "--password", "s3cret")
    assert r.exit_code == 0 and "s3cret" not in r.stdout
    token = r.stdout.split("token:")[1].strip()
    assert auth_status(served.env, bearer(token)) == 200
    r = admin("passwd", "ci", input="other\nother\n")
    assert r.exit_code == 0 and auth_status(served.env, basic("ci", "other")) == 200
    r = admin("token", "ci")
    second = r.stdout.strip()
    assert admin("tokens", "ci").stdout.split() == [token_id(token), token_id(second)]
    r = admin("revoke", "ci", token)
    assert r.exit_code == 0 and auth_status(served.env, bearer(token)) == 401
    assert admin("revoke", "ci", "--all").stdout == "1 token(s) of ci revoked\n"
    r = admin("delete", "admin")
    assert r.exit_code == 65 and "last admin" in r.stderr
    assert admin("delete", "ci").exit_code == 0
    assert auth_status(served.env, basic("ci", "other")) == 401
    r = served.run("user", "delete", "bob", "--server", who="alice")
    assert r.exit_code == 77
    r = served.run("user", "passwd", "alice", "--password", "mine", "--server", who="alice")
    assert r.exit_code == 0 and "mine" not in r.output


def test_deleting_a_user_in_the_data_dir_stops_its_token_on_the_running_server(
        serve: Callable[..., Served]):
    s = serve(start=False)
    assert auth_status(s.env, s.env.headers["bob"]) == 200
    data = str(s.env.service.config.data_dir)
    r = cli_served.CliRunner().invoke(cli_served.main, ["user", "delete", "bob",
                                                        "--data-dir", data])
    assert r.exit_code == 0, r.output
    assert auth_status(s.env, s.env.headers["bob"]) == 401


def test_no_token_starts_like_an_option():
    # one in 64 of 32 random bytes in URL-safe base64 starts with '-': the CLI took
    # such a token for an option (`hwut user revoke NAME TOKEN` failed in a test run)
    tokens = [new_token() for _ in range(2000)]
    assert not any(t.startswith("-") for t in tokens)
    assert len(set(tokens)) == len(tokens) and {len(t) for t in tokens} == {43}
