"""Scheduler corner cases: races with cancel, shutdown, broken backends, import direction.

Jobs run on the real sim backend with fixture firmware; the broken backends come from
``failing_backends`` (failure modes the real backend cannot produce on demand).
"""
from __future__ import annotations

import ast
from pathlib import Path

from failing_backends import GarbageBackend, UnconstructibleBackend
from fixture_firmware import HELLO_1S, SEMIHOST, SPIN_LIMIT, image
from hwut_testenv import BACKENDS, make_config, sim_board

from hwut.backends.base import Backend
from hwut.config import BoardConfig
from hwut.jobs import JobStatus
from hwut.scheduler import Scheduler
from hwut.store import JobStore

BOARD = "nucleo-f303re"


def scheduler_for(tmp_path: Path, backend: type[Backend] | None = None
                  ) -> tuple[JobStore, Scheduler]:
    """One board instance: the real sim backend, or a failing double."""
    if backend is None:
        boards, backends = sim_board(), BACKENDS
    else:
        boards = (BoardConfig(BOARD, backend.name, 1, {"x": 1}),)
        backends = {backend.name: backend}
    store = JobStore(tmp_path / "data", durable=False)
    return store, Scheduler(store, make_config(tmp_path, boards=boards), backends)


def artifacts(store: JobStore) -> set[str]:
    return {p.name for p in store.artifact_dir.iterdir()}


def test_cancel_between_claim_and_start(tmp_path):
    store, scheduler = scheduler_for(tmp_path)
    job = store.submit("u", BOARD, 1, image("hello"), "elf")
    claimed = store.claim_next(BOARD, f"{BOARD}#0")
    assert claimed.status is JobStatus.QUEUED
    scheduler.cancel(job.id, by="u")
    done = scheduler.run_job(scheduler.instances[0], claimed)
    assert done == store.get(job.id)
    assert done.status is JobStatus.CANCELED
    assert done.started is None and done.filename_log is None  # the backend never ran
    assert artifacts(store) == {job.filename_executable}  # no log or trace file left


def test_stop_hands_a_claimed_job_back(tmp_path):
    store, scheduler = scheduler_for(tmp_path)
    job = store.submit("u", BOARD, 1, image("hello"), "elf")
    claimed = store.claim_next(BOARD, f"{BOARD}#0")
    scheduler.stop()
    back = scheduler.run_job(scheduler.instances[0], claimed)
    assert back.id == job.id and back.status is JobStatus.WAITING and back.instance is None


def test_run_hands_the_backend_the_stored_job(tmp_path):
    # format, board and limit reach the backend: hex loads, 1 s gives exactly count=0..9
    store, scheduler = scheduler_for(tmp_path)
    job = store.submit("u", BOARD, 1, image("hello", "hex"), "hex")
    done = scheduler.run_next(scheduler.instances[0])
    assert done is not None and done.id == job.id
    assert (done.status, done.stop_reason, done.exit_code) == (JobStatus.FINISHED, "limit", None)
    assert done.time_used_seconds == 1.0
    assert store.artifact_path(done.filename_log).read_bytes() == HELLO_1S
    assert done.filename_other is None  # hello writes no ITM trace: no empty file kept
    assert "virtual time 1.000000 s" in store.artifact_path(done.filename_infra).read_text()


def test_exit_code_reaches_the_job(tmp_path):
    store, scheduler = scheduler_for(tmp_path)
    job = store.submit("u", BOARD, 7, image("semihost_exit", "bin"), "bin")
    done = scheduler.run_next(scheduler.instances[0])
    assert done is not None and done.id == job.id
    assert (done.status, done.stop_reason, done.exit_code) == (JobStatus.FINISHED, "exit", 3)
    assert store.artifact_path(done.filename_log).read_bytes() == SEMIHOST
    assert done.time_used_seconds < 7


def test_backend_returning_garbage_is_an_error(tmp_path):
    store, scheduler = scheduler_for(tmp_path, GarbageBackend)
    job = store.submit("u", BOARD, 1, image("hello"), "elf")
    failed = scheduler.run_next(scheduler.instances[0])
    assert failed is not None and failed.id == job.id
    assert failed.status is JobStatus.ERROR and "not an Outcome" in failed.detail


def test_backend_that_cannot_start_makes_instance_unavailable(tmp_path):
    store, scheduler = scheduler_for(tmp_path, UnconstructibleBackend)
    instance = scheduler.instances[0]
    assert instance.state == "unavailable"
    assert "no probe attached" in instance.availability.detail
    scheduler.start()
    job = store.submit("u", BOARD, 1, image("hello"), "elf")
    scheduler.stop()
    assert store.get(job.id).status is JobStatus.WAITING


def test_hwut_sees_backends_only_through_the_contract():
    allowed = {"hwut.backends.base", "hwut.backends.image", "hwut.backends.registry"}
    package = Path(__file__).resolve().parents[2] / "hwut"
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] if node.module != "hwut.backends" else \
                    [f"hwut.backends.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                assert not name.startswith("hwut.sim"), f"{path.name} imports {name}"
                if name.startswith("hwut.backends"):
                    assert name in allowed, f"{path.name} imports {name}"


def test_shutdown_fails_running_job_instead_of_canceling(make_env):
    env = make_env()
    job_id = env.submit(firmware="spin", limit=SPIN_LIMIT).json["id"]
    assert env.wait(job_id, lambda s: s is JobStatus.RUNNING) is JobStatus.RUNNING
    env.service.scheduler.stop()
    job = env.service.store.jobs.get(job_id)
    assert job.status is JobStatus.ERROR
    assert job.detail == "the server stopped while the job ran"
    assert job.stop_reason == "cancel" and job.time_used_seconds < SPIN_LIMIT


def test_version_ignores_bad_credentials(env):
    r = env.client.simulate_get("/apiv1/version", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 200


def test_failure_doubles_stay_out_of_the_normal_path():
    """Only these tests and the two failure boards use ``failing_backends``."""
    from hwut_testenv import BOARDS

    tests = Path(__file__).resolve().parents[1]
    users = set()
    for path in tests.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "failing_backends" \
                    or isinstance(node, ast.Import) and any(
                        a.name == "failing_backends" for a in node.names):
                users.add(path.name)
    assert users == {"hwut_testenv.py", "test_scheduler.py"}
    doubles = {b.name: b.backend for b in BOARDS if b.backend in ("raising", "hanging")}
    assert doubles == {"board-raise": "raising", "board-hang": "hanging"}
    assert all(b.backend in ("sim", "raising", "hanging", "not-installed") for b in BOARDS)
