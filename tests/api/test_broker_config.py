"""The ``[broker]`` and ``[worker]`` tables, and what a server without them keeps: no
worker routes, its own instances (the scale-out itself is tested in tests/scaleout)."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hwut.broker.protocol import ProtocolError, Report, Task
from hwut.broker.settings import BrokerSettings, WorkerSettings
from hwut.config import ConfigError, load_config
from hwut.logtime import RECORD

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
    timed = Report(1, "t", 0, {"uart": b"x\n"}, times=RECORD.pack(2, 0.5))
    assert Report.from_json(timed.to_json()) == timed
    with pytest.raises(ProtocolError, match="whole 16-byte records"):
        Report.from_json({**timed.to_json(), "times": base64.b64encode(b"x" * 17).decode()})
    with pytest.raises(ProtocolError, match="within"):
        Report.from_json({**timed.to_json(), "times": "A" * (200 * 1024)})


def test_without_a_broker_there_are_no_worker_routes(env):
    assert env.service.scheduler.remote is None
    r = env.client.simulate_post("/apiv1/workers/heartbeat", json={"v": 1},
                                 headers=env.headers["admin"])
    assert r.status_code == 404
    paths = env.client.simulate_get("/apiv1/openapi.json", headers=env.headers["admin"]
                                    ).json["paths"]
    assert not [p for p in paths if "/workers/" in p]


def _lab_heartbeat(service, host: str = "w1") -> dict[str, str]:
    """A worker host's heartbeat as `hwut worker` sends it for one physical instance;
    the server's answer (its instances kept offline)."""
    return service.scheduler.remote.heartbeat(host, [{
        "name": "nucleo-f303re#0", "board": "nucleo-f303re", "backend": "physical",
        "state": "idle", "job": None, "retries": 1, "offline_after": 2,
        "capabilities": {"console_input": True, "presses": False, "pins": False}}])


def test_a_remote_instance_stays_offline_across_restarts(tmp_path: Path):
    """The offline rule for remote instances keeps its record where the scheduler keeps
    its own: a restarted server (no worker host heard from yet) still has it, tells the
    host in its heartbeat's answer, and shows it; an admin puts it back. A server
    without a [broker] table drops such records as it drops unconfigured instances'."""
    import dataclasses
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from hwut_testenv import BACKENDS, FAST_HASHER, make_config, sim_board

    from hwut.service import build_service

    plain = make_config(tmp_path / "data", boards=sim_board(1))
    config = dataclasses.replace(plain, broker={"url": "amqp://u:p@127.0.0.1:1//",
                                                "worker_token": SECRET})
    service = build_service(config, BACKENDS, password_hasher=FAST_HASHER)
    assert _lab_heartbeat(service) == {}
    assert service.scheduler.lacking("nucleo-f303re") == {
        "presses": "its instance w1/nucleo-f303re#0 (backend physical)",
        "pins": "its instance w1/nucleo-f303re#0 (backend physical)"}
    assert service.scheduler.instance_names("nucleo-f303re") == ["w1/nucleo-f303re#0"]
    service.scheduler.set_offline("w1/nucleo-f303re#0", "the bench is broken")
    assert _lab_heartbeat(service) == {"nucleo-f303re#0": "the bench is broken"}
    service.stop()

    again = build_service(config, BACKENDS, password_hasher=FAST_HASHER)
    assert again.scheduler.instance_names("nucleo-f303re") == ["w1/nucleo-f303re#0"]
    assert _lab_heartbeat(again) == {"nucleo-f303re#0": "the bench is broken"}
    shown = again.scheduler.boards_with_instances()["nucleo-f303re"][0].describe()
    assert (shown["state"], shown["offline"], shown["health"]) == \
        ("offline", "the bench is broken", "ok"), shown
    assert again.scheduler.remote.hosts.live_capacity("nucleo-f303re") == 0
    assert again.scheduler.lacking("nucleo-f303re") == {}  # an offline one takes no job
    again.scheduler.set_online("nucleo-f303re")  # the board: every instance of it
    assert _lab_heartbeat(again) == {}
    assert again.scheduler.remote.hosts.live_capacity("nucleo-f303re") == 1
    again.scheduler.set_offline("w1/nucleo-f303re#0", "out again")
    again.stop()

    alone = build_service(plain, BACKENDS, password_hasher=FAST_HASHER)
    assert alone.store.offline.records() == {}
    alone.stop()


def test_a_worker_host_refuses_what_its_instance_cannot_do():
    """A host that joined after a submit was checked against the others: it does not run
    presses or pins on a lab board, and says why in the submit route's words."""
    from hwut.backends.physical import PhysicalBackend
    from hwut.backends.sim import SimBackend
    from hwut.broker.worker import HostInstance, unsupported
    from hwut.config import BoardConfig

    lab = HostInstance("nucleo-f303re#0", BoardConfig("nucleo-f303re", "physical", 1, {
        "probe": "x", "serial": "/dev/null"}), PhysicalBackend)
    emulated = HostInstance("nucleo-f303re#0", BoardConfig("nucleo-f303re", "sim"), SimBackend)
    presses = {"presses": [["B1", 0.5, None]], "uart_input": "YWI="}
    assert unsupported(presses, lab) == (
        "not run: cannot run scripted button presses ('press'): instance nucleo-f303re#0 "
        "(backend physical) does not support them")
    assert unsupported({"pins": [["PA0", 0.0, 1]]}, lab).startswith(
        "not run: cannot drive pins ('pin')")
    assert unsupported({"uart_input": "YWI="}, lab) == ""
    assert unsupported({**presses, "pins": [["PA0", 0.0, 1]]}, emulated) == ""
    assert (lab.retries, lab.offline_after) == (1, 3)  # the physical backend's defaults
    assert lab.describe()["capabilities"] == {"console_input": True, "presses": False,
                                              "pins": False}


def test_the_longest_job_must_fit_the_broker_s_consumer_timeout(tmp_path: Path):
    """With late acknowledgement a host holds a job's message while the job runs; past
    the broker's consumer timeout RabbitMQ closes its channel and hands the job to
    another host mid-run. A server whose longest job could hold it longer refuses to
    start, naming the rabbitmq.conf line; the defaults fit RabbitMQ's default (30 min)."""
    import dataclasses
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from hwut_testenv import BACKENDS, FAST_HASHER, make_config, sim_board

    from hwut.service import build_service

    broker = {"url": "amqp://u:p@127.0.0.1:1//", "worker_token": SECRET}
    plain = make_config(tmp_path / "a", boards=sim_board(1))
    service = build_service(dataclasses.replace(plain, broker=broker), BACKENDS,
                            password_hasher=FAST_HASHER)
    # 300 s + a 600 s CPU budget at hang factor 2 + 30 s grace + 65 s of exchanges
    assert service.scheduler.remote.check_consumer_timeout() == 1595
    service.stop()
    long_jobs = dataclasses.replace(make_config(tmp_path / "b", boards=sim_board(1),
                                                limits_max_duration_seconds=1200),
                                    broker=broker)
    with pytest.raises(ConfigError, match=r"consumer_timeout_seconds is 1800 s .* up to 2495 s"
                                          r".*consumer_timeout = 2555000"):
        build_service(long_jobs, BACKENDS, password_hasher=FAST_HASHER)
    fitted = dataclasses.replace(long_jobs, broker={**broker,
                                                    "consumer_timeout_seconds": 2600})
    build_service(fitted, BACKENDS, password_hasher=FAST_HASHER).stop()


def test_a_worker_host_does_not_run_a_job_that_would_outlive_the_consumer_timeout(
        tmp_path: Path):
    """The host adds what the server cannot know (its backend's allowance, its own
    give_up_seconds) and refuses a task that would hold its message too long."""
    from hwut.backends.sim import SimBackend
    from hwut.broker.worker import WorkerHost

    config = load_config(environ={})
    settings = WorkerSettings.from_table({"server": "http://127.0.0.1:1", "token": SECRET,
                                          "host": "w1", "give_up_seconds": 10},
                                         "amqp://u:p@127.0.0.1:1//", environ={})
    host = WorkerHost(settings, config, {"sim": SimBackend})
    try:
        instance = host.instances[0]
        run = {"time_limit_s": 5.0, "wall_budget_s": 40.0}
        fits = Task(1, "nucleo-f303re", "c", run, b"", consumer_timeout_s=65.0)
        assert host.too_long(fits, instance) == ""  # 40 + 2 x 10 + 5
        over = Task(1, "nucleo-f303re", "c", run, b"", consumer_timeout_s=64.0)
        assert host.too_long(over, instance).startswith(
            "not run: on nucleo-f303re#0 (backend sim) this job could hold its broker "
            "message for 65 s, longer than the broker's consumer timeout (64 s")
        assert host.too_long(Task(1, "nucleo-f303re", "c", run, b""), instance) == ""
        assert Task.from_json(over.to_json()).consumer_timeout_s == 64.0
        assert "consumer_timeout_s" not in fits.to_json()["run"]
    finally:
        host.stop()
