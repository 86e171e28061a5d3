"""Shared helpers for the API tests: config, users, the test client wrapper.

Jobs run on the real ``sim`` backend (found through the ``hwut.backends`` entry
points) with the committed fixture firmware; ``failing_backends`` supplies only the
failure modes the real backend cannot produce on demand (boards ``board-raise`` and
``board-hang``).
"""
from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import falcon.testing
from argon2 import PasswordHasher
from failing_backends import HangingBackend, RaisingBackend
from fixture_firmware import image

from hwut.backends.registry import load_backends
from hwut.config import BoardConfig, Config, load_config
from hwut.jobs import JobStatus
from hwut.service import Service

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
BACKENDS = {**load_backends(), "raising": RaisingBackend, "hanging": HangingBackend}
assert "sim" in BACKENDS, "the sim backend is not installed (pip install -e '.[dev]')"

BOARDS = (
    BoardConfig("nucleo-f303re", "sim", 1, {}, "stm32f303re"),
    # configured with no instance: submits are refused with 503
    BoardConfig("board-none", "sim", 0, {}, "stm32f303re"),
    BoardConfig("board-raise", "raising", 1, {}),
    BoardConfig("board-hang", "hanging", 1, {}),
    BoardConfig("board-missing", "not-installed", 1, {}),
)


def sim_board(instances: int = 1, **options: Any) -> tuple[BoardConfig, ...]:
    """A config offering only nucleo-f303re on the sim backend with these options."""
    return (BoardConfig("nucleo-f303re", "sim", instances, options, "stm32f303re"),)


def make_config(data_dir: Path, boards: tuple[BoardConfig, ...] = BOARDS, **values: Any
                ) -> Config:
    base = load_config(environ={})
    config = Config(dict(base.values), boards, base.microcontrollers)
    # the wall-clock bounds (deadline, cancel grace) are measured on the scheduler's clock,
    # which the tests move themselves (ManualClock): no bound fires because the host is slow
    quick = {"scheduler_cancel_grace_seconds": 1.0, "scheduler_poll_seconds": 0.05}
    return config.with_values(data_dir=str(data_dir), **{**quick, **values})


def basic(name: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class ManualClock:
    """The scheduler's monotonic clock in tests: it stands still until a test moves it, so
    a run's deadline or cancel grace passes when the test says, never because the host is
    loaded."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class Env:
    """The service under test plus three users: admin, alice (owner) and bob (other)."""

    def __init__(self, service: Service, clock: ManualClock | None = None) -> None:
        self.service = service
        #: The scheduler's clock (see ManualClock).
        self.clock = clock or ManualClock()
        self.client = falcon.testing.TestClient(service.app)
        self.headers: dict[str, dict[str, str]] = {"anonymous": {}}
        self.passwords: dict[str, str] = {}
        for name, admin in (("admin", True), ("alice", False), ("bob", False)):
            _, password, token = service.store.users.add(name, admin=admin)
            self.headers[name] = bearer(token)
            self.passwords[name] = password

    def submit(self, user: str = "alice", board: str = "nucleo-f303re", limit: Any = 1,
               body: bytes | None = None, firmware: str = "hello", fmt: str = "elf",
               **params: Any) -> falcon.testing.Result:
        """PUT a fixture image (``hello.elf`` unless told) or ``body``."""
        query = {"board": board, "duration_limit_seconds": limit, **params}
        return self.client.simulate_put("/apiv1/jobs/submit", params=query,
                                        body=image(firmware, fmt) if body is None else body,
                                        headers=self.headers[user])

    def stranded_job(self, user: str = "alice", board: str = "board-none") -> int:
        """A job WAITING for a board nobody serves, as one left from before a restart with
        another config would be (the submit route refuses to create one: 503). Made with
        the store's own submit, after the scheduler started: it stays WAITING."""
        return self.service.store.jobs.submit(user, board, 1, image("hello"), "elf").id

    def get(self, path: str, user: str = "alice", **kwargs: Any) -> falcon.testing.Result:
        return self.client.simulate_get(path, headers=self.headers[user], **kwargs)

    def log(self, job_id: int, user: str = "alice") -> bytes:
        r = self.get(f"/apiv1/jobs/{job_id}/log", user)
        assert r.status_code == 200, r.text
        return r.content

    def wait(self, job_id: int, until: Callable[[JobStatus], bool] = lambda s: s.ended,
             timeout: float = 10.0) -> JobStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.service.store.jobs.get(job_id).status
            if until(status) or time.monotonic() > deadline:
                return status
            time.sleep(0.01)

    def pass_deadlines(self, job_id: int, settle: float = 10.0, timeout: float = 30.0
                       ) -> JobStatus:
        """Once ``job_id`` runs, move the scheduler's clock past its deadline (its cancel
        token is canceled, reason DEADLINE) and give the backend ``settle`` seconds to stop;
        while the job still runs, move the clock on again (past the grace after the cancel:
        its process is killed). The job's status once it ended (or after ``timeout``).
        The clock moves for every job: the job must be the only one running, and one that
        ends only when told (nobody else cancels it)."""
        status = self.wait(job_id, lambda s: s is JobStatus.RUNNING or s.ended, timeout)
        give_up = time.monotonic() + timeout
        while not status.ended:
            self.clock.advance(3600.0)  # past any deadline (300 s limit: 1530 s), or grace
            status = self.wait(job_id, timeout=settle)
            if time.monotonic() > give_up:
                break
        return status

    def wait_for_log(self, job_id: int, prefix: bytes, timeout: float = 10.0) -> bytes:
        """Poll the log route until the log starts with ``prefix`` (the job runs meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.get(f"/apiv1/jobs/{job_id}/log")
            if (r.status_code == 200 and r.content.startswith(prefix)) \
                    or time.monotonic() > deadline:
                return r.content
            time.sleep(0.01)
