"""The real CLI (click's CliRunner, in process) against the real waitress server in front
of a test service (``hwut_testenv``): fixtures ``serve`` (a factory) and ``served``."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hwut_testenv import BACKENDS, FAST_HASHER, Env, make_config

from hwut.cli import main
from hwut.server import BackgroundServer
from hwut.service import build_service


@dataclass
class Served:
    env: Env
    url: str
    tmp: Path

    def token(self, who: str) -> str:
        return self.env.headers[who]["Authorization"].split()[1]

    def run(self, *args: str, who: str = "alice", **kw: Any) -> Result:
        """``hwut --url URL --token TOKEN ARGS`` with no client config or HWUT_ variables."""
        env = {"HWUT_CLIENT_CONFIG": str(self.tmp / "none.toml"), "HWUT_URL": None,
               "HWUT_TOKEN": None, "HWUT_USER": None, "HWUT_PASSWORD": None,
               "HWUT_PROFILE": None}
        return CliRunner(env=env).invoke(main, ["--url", self.url, "--token", self.token(who),
                                                *args], **kw)

    def write(self, name: str, data: bytes) -> str:
        target = self.tmp / name
        target.write_bytes(data)
        return str(target)


@pytest.fixture
def serve(make_env: Callable[..., Env], tmp_path: Path) -> Iterator[Callable[..., Served]]:
    servers: list[BackgroundServer] = []

    def factory(start: bool = True, **values: Any) -> Served:
        env = make_env(start=start, **values)
        server = BackgroundServer(env.service.app, "127.0.0.1", 0, 4).start()
        servers.append(server)
        return Served(env, server.url, tmp_path)

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for a whole test module (stopping waitress can take its 1 s select
    timeout; one per test would add up): tests must not assume an empty job table."""
    tmp = tmp_path_factory.mktemp("served")
    service = build_service(make_config(tmp / "data"), BACKENDS, password_hasher=FAST_HASHER)
    service.start()
    env = Env(service)
    server = BackgroundServer(service.app, "127.0.0.1", 0, 4).start()
    yield Served(env, server.url, tmp)
    server.stop()
    service.stop()
