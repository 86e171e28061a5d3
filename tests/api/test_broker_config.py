"""The ``[broker]`` and ``[worker]`` tables, and what a server without them keeps: no
worker routes, its own instances (the scale-out itself is tested in tests/scaleout)."""
from __future__ import annotations

from pathlib import Path

import pytest

from hwut.broker.protocol import ProtocolError, Report, Task
from hwut.broker.settings import BrokerSettings, WorkerSettings
from hwut.config import ConfigError, load_config

SECRET = "s" * 24


def test_a_broker_table_is_read_and_checked(tmp_path: Path):
    path = tmp_path / "server.toml"
    path.write_text(f'[broker]\nurl = "amqp://u:p@h:5672//"\nworker_token = "{SECRET}"\n'
                    'max_attempts = 2\n')
    config = load_config(path, environ={})
    settings = BrokerSettings.from_table(config.broker or {}, environ={})
    assert settings.max_attempts == 2 and settings.url.startswith("amqp://")
    assert load_config(environ={}).broker is None  # the shipped default: no broker
    with pytest.raises(ConfigError, match="worker_token"):
        BrokerSettings.from_table({"url": "amqp://h//", "worker_token": "short"}, environ={})
    with pytest.raises(ConfigError, match="amqp"):
        BrokerSettings.from_table({"url": "http://h", "worker_token": SECRET}, environ={})
    with pytest.raises(ConfigError, match="unknown keys"):
        BrokerSettings.from_table({"url": "amqp://h//", "worker_token": SECRET, "typo": 1},
                                  environ={})
    with pytest.raises(ConfigError, match="max_attempts"):
        BrokerSettings.from_table({"url": "amqp://h//", "worker_token": SECRET,
                                   "max_attempts": 0}, environ={})
    # secrets may come from the environment instead of the file
    from_env = BrokerSettings.from_table({}, environ={"HWUT_BROKER_URL": "amqp://e//",
                                                      "HWUT_WORKER_TOKEN": SECRET})
    assert from_env.url == "amqp://e//" and from_env.worker_token == SECRET


def test_a_worker_table_is_read_and_checked():
    settings = WorkerSettings.from_table({"server": "http://api:5000/", "token": SECRET,
                                          "host": "w1"}, broker="amqp://b//", environ={})
    assert settings.server_url == "http://api:5000" and settings.broker_url == "amqp://b//"
    with pytest.raises(ConfigError, match="server"):
        WorkerSettings.from_table({"token": SECRET}, broker="amqp://b//", environ={})
    with pytest.raises(ConfigError, match="host"):
        WorkerSettings.from_table({"server": "http://a", "token": SECRET, "host": "a/b"},
                                  broker="amqp://b//", environ={})


def test_messages_carry_their_version_and_bounds():
    task = Task(7, "nucleo-f303re", "claim", {"time_limit_s": 1.0}, b"\x7fELF")
    assert Task.from_json(task.to_json()) == task
    with pytest.raises(ProtocolError, match="version"):
        Task.from_json({**task.to_json(), "v": 2})
    with pytest.raises(ProtocolError):
        Task.from_json({**task.to_json(), "executable": "not base64!"})
    report = Report(1, "t", 0, {"uart": b"x" * 10})
    assert Report.from_json(report.to_json()) == Report(1, "t", 0, {"uart": b"x" * 10})
    with pytest.raises(ProtocolError, match="within"):
        Report.from_json({**report.to_json(), "uart": "A" * (2 * 1024 * 1024)})
    with pytest.raises(ProtocolError):
        Report.from_json({**report.to_json(), "seq": -1})


def test_without_a_broker_there_are_no_worker_routes(env):
    assert env.service.scheduler.remote is None
    r = env.client.simulate_post("/apiv1/workers/heartbeat", json={"v": 1},
                                 headers=env.headers["admin"])
    assert r.status_code == 404
    paths = env.client.simulate_get("/apiv1/openapi.json", headers=env.headers["admin"]
                                    ).json["paths"]
    assert not [p for p in paths if "/workers/" in p]
