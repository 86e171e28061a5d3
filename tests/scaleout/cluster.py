"""Real pieces for the scale-out tests and the bench: a RabbitMQ node of our own, worker
hosts in network namespaces of their own (veth pairs: their traffic crosses an
interface), and an API server with a ``[broker]`` table on a real waitress port.

Why a RabbitMQ node of our own even when one runs: the tests restart it, and its
port, data and node name stay in a temp dir (nothing of a system broker is touched).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
TOKEN = "worker-token-for-tests-0123456789"
USER, PASSWORD = "hwut", "broker-password-for-tests"
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "build"


def why_not_runnable() -> str | None:
    """Why this machine cannot run the scale-out tests, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs)"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        return "needs Debian's rabbitmq-server (apt-get install rabbitmq-server)"
    try:
        import celery  # noqa: F401
    except ImportError:
        return "needs Celery (pip install -e '.[broker]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Rabbit:
    """A RabbitMQ node in ``base`` on a free port, as root, restartable with its data."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.node = f"hwut{os.getpid()}x{self.port}@localhost"
        base.mkdir(parents=True, exist_ok=True)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.port}\nloopback_users = none\n"
            f"default_user = {USER}\ndefault_pass = {PASSWORD}\n"
            # a broker under a loaded test machine must not refuse publishes for disk
            "disk_free_limit.absolute = 1MB\n"
            # as the README tells operators (the servers' consumer_timeout_seconds): the
            # node refuses to start on a key it does not know
            "consumer_timeout = 1800000\n")
        (base / "enabled_plugins").write_text("[].\n")
        self.env = {**os.environ, "HOME": str(base), "RABBITMQ_NODENAME": self.node,
                    "RABBITMQ_NODE_PORT": str(self.port),
                    "RABBITMQ_DIST_PORT": str(free_port()),
                    "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                    "RABBITMQ_LOG_BASE": str(base / "log"),
                    "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
                    "RABBITMQ_PID_FILE": str(base / "pid")}
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, host: str = "127.0.0.1") -> str:
        return f"amqp://{USER}:{PASSWORD}@{host}:{self.port}//"

    def start(self, timeout: float = 90.0) -> None:
        if not hasattr(self, "_epmd_was_running"):
            self._epmd_was_running = subprocess.run(
                ["epmd", "-names"], capture_output=True, timeout=30).returncode == 0
        out = open(self.base / "server.out", "ab")  # noqa: SIM115 - kept by the process
        self.process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self.env,
                                        stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        out.close()

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError("rabbitmq-server exited: "
                                     + (self.base / "server.out").read_text()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
            except OSError:
                return False
            return True
        wait_until(up, timeout, "rabbitmq-server to listen", 0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        self._stop_node()
        if not self._epmd_was_running:
            # Erlang's port mapper outlives the node; it was not there before us
            subprocess.run(["epmd", "-kill"], capture_output=True, timeout=30)

    def _stop_node(self) -> None:
        if self.process is None:
            return
        subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, "stop"],
                       env=self.env, capture_output=True, timeout=60)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self._stop_node()
        self.start()


@dataclasses.dataclass
class Namespace:
    """A network namespace joined to this one by a veth pair: the host side has
    ``gateway``, the namespace ``address``."""

    name: str
    outside: str
    gateway: str
    address: str

    def link(self, up: bool) -> None:
        _ip("link", "set", self.outside, "up" if up else "down")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def make_namespace(tag: str, index: int) -> Namespace:
    name = f"hwut-{tag}-{index}"
    outside, inside = f"hw{tag}{index}o", f"hw{tag}{index}i"
    subnet = 200 + (int(tag, 16) % 40) + index * 10 if tag.isalnum() else 200 + index
    gateway, address = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", outside], capture_output=True)
    _ip("netns", "add", name)
    _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
    _ip("link", "set", inside, "netns", name)
    _ip("addr", "add", f"{gateway}/30", "dev", outside)
    _ip("link", "set", outside, "up")
    _ip("-n", name, "addr", "add", f"{address}/30", "dev", inside)
    _ip("-n", name, "link", "set", inside, "up")
    _ip("-n", name, "link", "set", "lo", "up")
    return Namespace(name, outside, gateway, address)


def remove_namespace(ns: Namespace) -> None:
    subprocess.run(["ip", "link", "del", ns.outside], capture_output=True)
    subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)


class Worker:
    """``hwut worker`` as a process (a session of its own: killing it kills its fork
    server and job processes too, as a host dying would), in a namespace or not."""

    def __init__(self, base: Path, name: str, broker_url: str, server_url: str,
                 instances: int = 1, namespace: Namespace | None = None,
                 heartbeat_s: float = 2.0, give_up_s: float = 10.0,
                 boards: str | None = None) -> None:
        """``boards``: the host's own [[boards]] (and [[simboards]]) tables, as TOML;
        default: ``instances`` emulated boards."""
        self.name = name
        self.namespace = namespace
        self.config = base / f"{name}.toml"
        self.config.write_text(
            f'[worker]\nserver = "{server_url}"\ntoken = "{TOKEN}"\nhost = "{name}"\n'
            f'heartbeat_seconds = {heartbeat_s}\nhost_heartbeat_seconds = 0.5\n'
            f'give_up_seconds = {give_up_s}\n\n'
            '[options]\n"scheduler.cancel_grace_seconds" = 2.0\n\n'
            + (boards or '[[boards]]\nname = "nucleo-f303re"\nbackend = "sim"\n'
                         f'instances = {instances}\n'))
        self.broker_url = broker_url
        self.log_path = base / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "hwut", "worker", "--config", str(self.config),
                   "--broker", self.broker_url, "--loglevel", "INFO"]
        if self.namespace is not None:
            command = ["ip", "netns", "exec", self.namespace.name, *command]
        out = open(self.log_path, "ab")  # noqa: SIM115 - kept by the process
        self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        out.close()

    def kill(self) -> None:
        """SIGKILL to the whole host: worker, fork server, job processes."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM: Celery's warm shutdown (running jobs end first)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Api:
    """A small client for the tests: admin's token, the server's URL."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30)

    def submit(self, firmware: str = "hello", limit: int = 1, **params: Any) -> int:
        body = (FIXTURES / f"{firmware}.elf").read_bytes()
        r = self.http.put("/apiv1/jobs/submit", content=body, params={
            "board": "nucleo-f303re", "duration_limit_seconds": limit, **params})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def job(self, job_id: int) -> dict[str, Any]:
        r = self.http.get(f"/apiv1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait(self, job_id: int, until: Callable[[dict[str, Any]], bool] | None = None,
             timeout: float = 120.0) -> dict[str, Any]:
        check = until or (lambda j: j["status"] in ("FINISHED", "ERROR", "CANCELED"))
        return dict(wait_until(lambda: (lambda j: j if check(j) else None)(self.job(job_id)),
                               timeout, f"job {job_id}", 0.1))

    def log(self, job_id: int) -> bytes:
        r = self.http.get(f"/apiv1/jobs/{job_id}/log")
        assert r.status_code == 200, r.text
        return r.content

    def remote_instances(self) -> list[dict[str, Any]]:
        r = self.http.get("/apiv1/targets/boards", params={"extended": "true"})
        assert r.status_code == 200, r.text
        return [i for b in r.json() for i in b.get("instances") or [] if i.get("remote")]
