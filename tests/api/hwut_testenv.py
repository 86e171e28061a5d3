"""Shared helpers for the API tests: config, users, the test client wrapper."""
from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import falcon.testing
from argon2 import PasswordHasher
from hwut_fakes import BlockingBackend, FakeBackend, tiny_bin

from hwut.config import BoardConfig, Config, load_config
from hwut.jobs import JobStatus
from hwut.service import Service

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
BACKENDS = {"fake": FakeBackend, "blocking": BlockingBackend}

BOARDS = (
    BoardConfig("nucleo-f303re", "fake", 1, {"mode": "print"}, "stm32f303re"),
    BoardConfig("board-exit", "fake", 1, {"mode": "exit", "code": 3}, "stm32f303re"),
    BoardConfig("board-fault", "fake", 1, {"mode": "fault"}),
    BoardConfig("board-raise", "fake", 1, {"mode": "raise"}),
    BoardConfig("board-infra", "fake", 1, {"mode": "infra"}),
    BoardConfig("board-hang", "fake", 1, {"mode": "hang"}),
    BoardConfig("board-trace", "fake", 1, {"mode": "trace"}),
    BoardConfig("board-block", "blocking", 1, {}),
    BoardConfig("board-none", "fake", 0, {}),
    BoardConfig("board-missing", "not-installed", 1, {}),
)


def make_config(data_dir: Path, boards: tuple[BoardConfig, ...] = BOARDS, **values: Any
                ) -> Config:
    base = load_config(environ={})
    config = Config(dict(base.values), boards, base.microcontrollers)
    return config.with_values(data_dir=str(data_dir), scheduler_hang_grace_seconds=0.5,
                              scheduler_hang_factor=0.0, scheduler_cancel_grace_seconds=1.0,
                              scheduler_poll_seconds=0.05, **values)


def basic(name: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Env:
    """The service under test plus three users: admin, alice (owner) and bob (other)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.client = falcon.testing.TestClient(service.app)
        self.headers: dict[str, dict[str, str]] = {"anonymous": {}}
        self.passwords: dict[str, str] = {}
        for name, admin in (("admin", True), ("alice", False), ("bob", False)):
            _, password, token = service.store.users.add(name, admin=admin)
            self.headers[name] = bearer(token)
            self.passwords[name] = password

    def submit(self, user: str = "alice", board: str = "nucleo-f303re", limit: int = 1,
               body: bytes | None = None, **params: Any) -> falcon.testing.Result:
        query = {"board": board, "duration_limit_seconds": limit, **params}
        return self.client.simulate_put("/apiv1/jobs/submit", params=query,
                                        body=tiny_bin() if body is None else body,
                                        headers=self.headers[user])

    def wait(self, job_id: int, until: Callable[[JobStatus], bool] = lambda s: s.ended,
             timeout: float = 10.0) -> JobStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.service.store.jobs.get(job_id).status
            if until(status) or time.monotonic() > deadline:
                return status
            time.sleep(0.01)


