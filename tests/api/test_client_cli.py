"""The importable client against the app in-process, and the data-dir CLI commands."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fixture_firmware import BAD, BUILD, HELLO_1S, SEMIHOST, image

from hwut.cli import main
from hwut.client import (
    EXIT_CANCELED,
    EXIT_ERROR,
    EXIT_FAULT,
    Client,
    HwutError,
    Settings,
    exit_code_for,
    resolve_settings,
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
        assert exit_code_for(final) == 0


def test_client_basic_auth(env):
    settings = Settings("http://hwut.test", user="bob", password=env.passwords["bob"])
    with Client(settings, transport=httpx.WSGITransport(app=env.service.app)) as client:
        assert client.auth_test()["user"] == "bob"


def test_exit_codes():
    assert exit_code_for({"status": "FINISHED", "stop_reason": "limit"}) == 0
    assert exit_code_for({"status": "FINISHED", "stop_reason": "exit", "exit_code": 7}) == 7
    assert exit_code_for({"status": "FINISHED", "stop_reason": "fault"}) == EXIT_FAULT
    assert exit_code_for({"status": "ERROR"}) == EXIT_ERROR
    assert exit_code_for({"status": "CANCELED", "stop_reason": "cancel"}) == EXIT_CANCELED


def test_settings_priority(tmp_path):
    path = tmp_path / "client.toml"
    write_client_config(path, "http://file:1", "filetoken")
    assert path.stat().st_mode & 0o077 == 0
    env = {"HWUT_CLIENT_CONFIG": str(path)}
    assert resolve_settings(environ=env) == Settings("http://file:1", "filetoken")
    env["HWUT_URL"] = "http://env:2"
    env["HWUT_USER"], env["HWUT_PASSWORD"] = "u", "p"
    got = resolve_settings(environ=env)
    assert (got.url, got.token, got.user) == ("http://env:2", None, "u")
    got = resolve_settings(url="http://flag:3", token="t", environ=env)
    assert (got.url, got.token) == ("http://flag:3", "t")


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
    r = runner.invoke(main, ["user", "token", "ci", "--data-dir", data])
    assert r.exit_code == 0 and len(r.output.strip()) > 30
    r = runner.invoke(main, ["user", "add", "ci", "--data-dir", data])
    assert r.exit_code != 0 and "already exists" in r.output
    from hwut.store import users_path
    from hwut.users import UserStore
    assert UserStore(users_path(Path(data))).verify_token(token).name == "ci"


def test_fixture_images_accepted_and_bad_ones_refused(idle_env):
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
