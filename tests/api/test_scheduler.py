"""Scheduler corner cases: races with cancel, shutdown, broken backends, import direction."""
from __future__ import annotations

import ast
import threading
from pathlib import Path
from typing import ClassVar

from hwut_fakes import tiny_bin
from hwut_testenv import make_config

from backends.base import Backend, Outcome, RunRequest, StopReason
from hwut.config import BoardConfig
from hwut.jobs import JobStatus
from hwut.scheduler import Scheduler
from hwut.store import JobStore


class NotAnOutcome(Backend):
    name = "weird"

    def run(self, request: RunRequest) -> Outcome:
        return "done"  # type: ignore[return-value]


class BrokenConstructor(Backend):
    name = "broken"

    def __init__(self, board, options=None):
        raise OSError("no probe attached")

    def run(self, request: RunRequest) -> Outcome:
        raise AssertionError("never runs")


class Recording(Backend):
    name = "recording"
    seen: ClassVar[list[RunRequest]] = []

    def run(self, request: RunRequest) -> Outcome:
        self.seen.append(request)
        request.uart(b"abc")
        return Outcome(StopReason.EXIT, exit_code=0, time_used_s=0.5)


def scheduler_for(tmp_path: Path, backend: type[Backend]) -> tuple[JobStore, Scheduler]:
    config = make_config(tmp_path, boards=(BoardConfig("b", backend.name, 1, {"x": 1}),))
    store = JobStore(tmp_path / "data", durable=False)
    return store, Scheduler(store, config, {backend.name: backend})


def test_cancel_between_claim_and_start(tmp_path):
    store, scheduler = scheduler_for(tmp_path, Recording)
    job = store.submit("u", "b", 1, tiny_bin(), "bin")
    claimed = store.claim_next("b", "b#0")
    assert claimed.status is JobStatus.QUEUED
    scheduler.cancel(job.id, by="u")
    Recording.seen.clear()
    scheduler._run(scheduler.instances[0], claimed)
    assert Recording.seen == []
    assert store.get(job.id).status is JobStatus.CANCELED


def test_stop_hands_a_claimed_job_back(tmp_path):
    store, scheduler = scheduler_for(tmp_path, Recording)
    job = store.submit("u", "b", 1, tiny_bin(), "bin")
    claimed = store.claim_next("b", "b#0")
    scheduler._stop.set()
    scheduler._run(scheduler.instances[0], claimed)
    assert store.get(job.id).status is JobStatus.WAITING


def test_request_carries_the_contract(tmp_path):
    store, scheduler = scheduler_for(tmp_path, Recording)
    job = store.submit("u", "b", 7, tiny_bin(), "bin")
    Recording.seen.clear()
    scheduler._run(scheduler.instances[0], store.claim_next("b", "b#0"))
    request = Recording.seen[0]
    assert request.executable == store.artifact_path(job.filename_executable)
    assert (request.format, request.board, request.time_limit_s) == ("bin", "b", 7.0)
    assert isinstance(request.cancel, threading.Event)
    done = store.get(job.id)
    assert (done.status, done.stop_reason, done.exit_code) == (JobStatus.FINISHED, "exit", 0)
    assert store.artifact_path(done.filename_log).read_bytes() == b"abc"
    assert done.filename_other is None


def test_backend_returning_garbage_is_an_error(tmp_path):
    store, scheduler = scheduler_for(tmp_path, NotAnOutcome)
    job = store.submit("u", "b", 1, tiny_bin(), "bin")
    scheduler._run(scheduler.instances[0], store.claim_next("b", "b#0"))
    failed = store.get(job.id)
    assert failed.status is JobStatus.ERROR and "not an Outcome" in failed.detail


def test_backend_that_cannot_start_makes_instance_unavailable(tmp_path):
    store, scheduler = scheduler_for(tmp_path, BrokenConstructor)
    instance = scheduler.instances[0]
    assert instance.state == "unavailable"
    assert "no probe attached" in instance.availability.detail
    scheduler.start()
    job = store.submit("u", "b", 1, tiny_bin(), "bin")
    scheduler.stop()
    assert store.get(job.id).status is JobStatus.WAITING


def test_hwut_sees_backends_only_through_the_contract():
    allowed = {"backends.base", "backends.image", "backends.registry"}
    package = Path(__file__).resolve().parents[2] / "hwut"
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] if node.module != "backends" else \
                    [f"backends.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                assert not name.startswith("sim"), f"{path.name} imports {name}"
                if name.startswith("backends"):
                    assert name in allowed, f"{path.name} imports {name}"


def test_shutdown_fails_running_job_instead_of_canceling(make_env):
    env = make_env()
    job_id = env.submit(board="board-block").json["id"]
    assert env.wait(job_id, lambda s: s is JobStatus.RUNNING) is JobStatus.RUNNING
    env.service.scheduler.stop()
    job = env.service.store.jobs.get(job_id)
    assert job.status is JobStatus.ERROR
    assert job.detail == "the server stopped while the job ran"


def test_version_ignores_bad_credentials(env):
    r = env.client.simulate_get("/apiv1/version", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 200
