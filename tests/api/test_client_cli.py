"""The importable client against the app in-process, and the data-dir CLI commands."""
from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fixture_firmware import BAD, BUILD, HELLO_1S, SEMIHOST, image

from hwut.cli import main
from hwut.client import (
    EXIT_CANCELED,
    EXIT_CODES,
    EXIT_ERROR,
    EXIT_FAULT,
    EXIT_FIRMWARE_OTHER,
    EXIT_LIMIT,
    Client,
    ConfigError,
    HwutError,
    Settings,
    describe_outcome,
    exit_code_for,
    exit_code_for_status,
    profile_conflict,
    read_profiles,
    resolve_settings,
    token_id,
    write_client_config,
)


def client_for(env, who="alice", **kw) -> Client:
    token = env.headers[who]["Authorization"].split()[1]
    return Client(Settings("http://hwut.test", token=token),
                  transport=httpx.WSGITransport(app=env.service.app), **kw)


def test_client_round_trip(env):
    with client_for(env, sleep=lambda s: None) as client:
        assert client.version()["api"] == "v1"
        assert client.auth_test()["user"] == "alice"
        job = client.submit(image("semihost_exit"), "nucleo-f303re", 1, comment="c")
        queued, logged = [], []
        final = client.wait(job["id"], on_queue=queued.append, on_log=logged.append)
        assert final["status"] == "FINISHED"
        assert (final["stop_reason"], final["exit_code"]) == ("exit", 3)
        assert b"".join(logged) == client.log(job["id"]) == SEMIHOST
        assert client.is_finished(job["id"])
        assert exit_code_for(final) == 3
        assert [j["id"] for j in client.jobs()] == [job["id"]]
        assert "nucleo-f303re" in [b["name"] for b in client.boards()]
        with pytest.raises(HwutError) as err:
            client.cancel(job["id"])
        assert err.value.status == 400 and "FINISHED" in err.value.description
        with pytest.raises(HwutError) as err:
            client.submit(b"junk", "nucleo-f303re", 1)
        assert err.value.status == 415


def test_client_streams_a_longer_log_and_submits_a_path(env, tmp_path):
    firmware = tmp_path / "hello.hex"
    firmware.write_bytes(image("hello", "hex"))
    with client_for(env, sleep=lambda s: None) as client:
        job = client.submit(firmware, "nucleo-f303re", 1)
        assert job["format"] == "hex"
        logged: list[bytes] = []
        final = client.wait(job["id"], on_log=logged.append)
        assert b"".join(logged) == HELLO_1S
        assert (final["status"], final["stop_reason"]) == ("FINISHED", "limit")
        assert exit_code_for(final) == EXIT_LIMIT
        assert exit_code_for(final, limit_code=0) == 0  # hwut demo


def test_client_basic_auth(env):
    settings = Settings("http://hwut.test", user="bob", password=env.passwords["bob"])
    with Client(settings, transport=httpx.WSGITransport(app=env.service.app)) as client:
        assert client.auth_test()["user"] == "bob"


def test_exit_codes():
    assert exit_code_for({"status": "FINISHED", "stop_reason": "limit"}) == EXIT_LIMIT == 42
    assert exit_code_for({"status": "FINISHED", "stop_reason": "exit", "exit_code": 7}) == 7
    for code in (32, 256, 258, -1, -256, None):
        assert exit_code_for({"status": "FINISHED", "stop_reason": "exit",
                              "exit_code": code}) == EXIT_FIRMWARE_OTHER
    assert exit_code_for({"status": "FINISHED", "stop_reason": "fault"}) == EXIT_FAULT
    assert exit_code_for({"status": "ERROR"}) == EXIT_ERROR
    assert exit_code_for({"status": "CANCELED", "stop_reason": "cancel"}) == EXIT_CANCELED
    assert [exit_code_for_status(s) for s in (0, 400, 401, 403, 404, 409, 413, 415, 500, 503)
            ] == [69, 65, 77, 77, 65, 65, 65, 65, 70, 69]


def test_exit_code_table_has_distinct_codes_that_match_the_constants():
    import hwut.client as hc
    codes = [code for code, _ in EXIT_CODES]
    assert codes[0] == f"0-{hc.FIRMWARE_EXIT_MAX}"
    singles = [int(c) for c in codes[1:]]
    assert len(set(singles)) == len(singles)
    assert all(c > hc.FIRMWARE_EXIT_MAX and c < 256 for c in singles)
    constants = {v for k, v in vars(hc).items()
                 if k.startswith("EXIT_") and isinstance(v, int) and k != "EXIT_LIMIT_DEMO"}
    assert constants == set(singles)
    help_text = CliRunner().invoke(main, ["submit", "--help"]).output
    for code, _ in EXIT_CODES:
        assert re.search(rf"^\s+{code}\s", help_text, re.M), code


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_exit_code_table_matches_the_constants():
    text = README.read_text()
    if "| exit status |" not in text:
        pytest.skip("README.md has no exit-code table yet (| exit status | meaning |)")
    assert readme_exit_codes(text) == [code for code, _ in EXIT_CODES]


def readme_exit_codes(text: str) -> list[str]:
    """The first column of the table under the header ``| exit status | meaning |``."""
    table = text.split("| exit status |", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\| `?([0-9]+(?:-[0-9]+)?)`? \|", table, re.M)


def test_describe_outcome_says_what_happened():
    job = {"id": 7, "status": "FINISHED", "stop_reason": "fault",
           "detail": "HardFault: read of 0x60000000 at PC 0x0800032e"}
    assert describe_outcome(job) == ("job 7 FINISHED: the firmware FAULTED (HardFault: read "
                                     "of 0x60000000 at PC 0x0800032e); exit status 43")
    job = {"id": 8, "status": "FINISHED", "stop_reason": "limit", "duration_limit_seconds": 2}
    assert describe_outcome(job) == ("job 8 FINISHED: time limit reached (2 s) without the "
                                     "firmware exiting; exit status 42")
    assert describe_outcome(job, limit_code=0).endswith("exit status 0")
    job = {"id": 9, "status": "FINISHED", "stop_reason": "exit", "exit_code": -1}
    assert describe_outcome(job) == ("job 9 FINISHED: the firmware exited with code -1 "
                                     "(outside 0-31, reported as exit status 32); "
                                     "exit status 32")


def test_settings_priority(tmp_path):
    path = tmp_path / "client.toml"
    write_client_config(path, "http://file:1", "filetoken")
    assert path.stat().st_mode & 0o077 == 0
    env = {"HWUT_CLIENT_CONFIG": str(path)}
    assert resolve_settings(environ=env) == Settings("http://file:1", "filetoken",
                                                     profile="default")
    env["HWUT_URL"] = "http://env:2"
    env["HWUT_USER"], env["HWUT_PASSWORD"] = "u", "p"
    got = resolve_settings(environ=env)
    assert (got.url, got.token, got.user) == ("http://env:2", None, "u")
    got = resolve_settings(url="http://flag:3", token="t", environ=env)
    assert (got.url, got.token) == ("http://flag:3", "t")


def test_profiles_and_the_older_flat_file(tmp_path):
    path = tmp_path / "client.toml"
    path.write_text('url = "http://old:1"\ntoken = "oldtoken"\n')  # before profiles
    env = {"HWUT_CLIENT_CONFIG": str(path)}
    assert resolve_settings(environ=env) == Settings("http://old:1", "oldtoken",
                                                     profile="default")
    # a new profile keeps the flat one as 'default'
    write_client_config(path, "http://two:2", "token2", profile="two",
                        data_dir=tmp_path / "two")
    assert set(read_profiles(path)) == {"default", "two"}
    assert resolve_settings(environ=env).url == "http://old:1"
    assert resolve_settings(environ=env, profile="two").token == "token2"
    assert resolve_settings(environ={**env, "HWUT_PROFILE": "two"}).url == "http://two:2"
    # flags and the environment still win over the profile
    got = resolve_settings(environ={**env, "HWUT_PROFILE": "two", "HWUT_URL": "http://e:3"})
    assert (got.url, got.token) == ("http://e:3", "token2")
    with pytest.raises(ConfigError) as err:
        resolve_settings(environ=env, profile="tow")
    assert "no client profile 'tow'" in str(err.value) and "known: default, two" \
        in str(err.value)
    assert err.value.exit_code == 64
    # no file and no profile asked: the local default
    assert resolve_settings(environ={"HWUT_CLIENT_CONFIG": str(tmp_path / "none")}) \
        == Settings("http://127.0.0.1:5000")


def test_a_serve_would_not_overwrite_another_servers_profile(tmp_path):
    path = tmp_path / "client.toml"
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    assert profile_conflict(path, "default", one) is None  # no file yet
    write_client_config(path, "http://one:1", "t1", data_dir=one)
    assert profile_conflict(path, "default", one) is None  # the same data dir
    why = profile_conflict(path, "default", two)
    assert why and f"data dir {one.resolve()}" in why and "hwut serve --profile NAME" in why
    assert profile_conflict(path, "second", two) is None
    one.rmdir()  # its server's tokens went with it
    assert profile_conflict(path, "default", two) is None
    path.write_text('url = "http://old:1"\ntoken = "oldtoken"\n')  # flat: data dir unknown
    assert "saved before profiles" in profile_conflict(path, "default", two)


def test_cli_user_commands(tmp_path):
    runner = CliRunner()
    data = str(tmp_path / "data")
    r = runner.invoke(main, ["user", "add", "ci", "--data-dir", data])
    assert r.exit_code == 0, r.output
    token = r.output.split("token:")[1].strip()
    assert runner.invoke(main, ["user", "add", "root", "--admin", "--data-dir", data]
                         ).exit_code == 0
    r = runner.invoke(main, ["user", "list", "--data-dir", data])
    assert "ci" in r.output and "admin" in r.output
    assert r.output.splitlines()[0] == f"users in data dir {data} ({data}/db/users.json):"
    r = runner.invoke(main, ["user", "token", "ci", "--data-dir", data])
    assert r.exit_code == 0 and len(r.output.strip()) > 30
    r = runner.invoke(main, ["user", "add", "ci", "--data-dir", data])
    assert r.exit_code != 0 and "already exists" in r.output
    from hwut.store import users_path
    from hwut.users import UserStore
    assert UserStore(users_path(Path(data))).verify_token(token).name == "ci"


def test_cli_user_delete_passwd_and_revoke_in_a_data_dir(tmp_path):
    from hwut.store import users_path
    from hwut.users import UserStore
    runner = CliRunner()
    data = str(tmp_path / "data")
    store = UserStore(users_path(Path(data)))
    _, _, root_token = store.add("root", admin=True)
    _, _, ci_token = store.add("ci")
    second = store.new_token("ci")

    r = runner.invoke(main, ["user", "passwd", "ci", "--data-dir", data],
                      input="n3w-pass\nn3w-pass\n")
    assert r.exit_code == 0, r.output
    assert "n3w-pass" not in r.output  # the prompt does not echo it
    assert store.verify_password("ci", "n3w-pass").name == "ci"

    r = runner.invoke(main, ["user", "tokens", "ci", "--data-dir", data])
    ids = r.output.split()
    assert len(ids) == 2 and all(len(i) == 12 for i in ids)
    assert token_id(ci_token) in ids and ci_token not in r.output
    r = runner.invoke(main, ["user", "revoke", "ci", ci_token, "--data-dir", data])
    assert r.exit_code == 0 and r.output == "1 token(s) of ci revoked\n"
    assert ci_token not in r.output
    assert store.verify_token(ci_token) is None and store.verify_token(second).name == "ci"
    r = runner.invoke(main, ["user", "revoke", "ci", token_id(ci_token), "--data-dir", data])
    assert r.exit_code == 64 and "no such token" in r.output
    r = runner.invoke(main, ["user", "revoke", "ci", "--all", "--data-dir", data])
    assert r.exit_code == 0 and store.verify_token(second) is None

    r = runner.invoke(main, ["user", "delete", "root", "--data-dir", data])
    assert r.exit_code == 64 and "last admin" in r.output
    r = runner.invoke(main, ["user", "delete", "ci", "--data-dir", data])
    assert r.exit_code == 0 and store.get("ci") is None
    assert store.verify_password("ci", "n3w-pass") is None
    r = runner.invoke(main, ["user", "delete", "ci", "--data-dir", data])
    assert r.exit_code == 64 and "no user 'ci'" in r.output
    assert store.verify_token(root_token).name == "root"


def test_fixture_images_accepted_and_bad_ones_refused(make_env):
    idle_env = make_env(start=False, quota_max_waiting_jobs=0)  # more images than the quota
    for path in sorted(BUILD.glob("*.*")):
        r = idle_env.submit(body=path.read_bytes())
        assert r.status_code == 201, (path.name, r.json)
        assert r.json["format"] == path.suffix[1:]
    for path in sorted(BAD.glob("*.*")):
        r = idle_env.submit(body=path.read_bytes())
        assert 400 <= r.status_code < 500, path.name
        assert r.json["description"]


def test_client_is_finished_and_unknown_job(idle_env):
    with client_for(idle_env) as client:
        job = client.submit(image("hello"), "nucleo-f303re", 1)
        assert client.is_finished(job["id"]) is False
        with pytest.raises(HwutError) as err:
            client.is_finished(12345)
        assert err.value.status == 404
