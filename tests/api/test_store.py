"""Store: durability across reopen, recovery, archive shards, fixed clock and names."""
from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest
from hwut_testenv import FAST_HASHER

from hwut.jobs import Job, JobStatus, TransitionError
from hwut.store import RESTART_DETAIL, JobStore, Store, UnknownJob


def fixed_clock():
    return dt.datetime(2020, 1, 1)


def names():
    counter = itertools.count()
    return lambda: f"name{next(counter):04d}"


def test_injected_clock_and_names(tmp_path):
    store = JobStore(tmp_path, clock=fixed_clock, name_factory=names())
    job = store.submit("user", "b", 5, b"elf", "elf")
    assert job.created == "2020-01-01 00:00:00.000000"
    assert job.filename_executable == "name0000"
    assert (tmp_path / "artifacts" / "name0000").read_bytes() == b"elf"


def test_reopen_and_recover(tmp_path):
    store = JobStore(tmp_path)
    waiting = store.submit("u", "b", 1, b"x", "bin").id
    queued = store.submit("u", "b", 1, b"x", "bin").id
    running = store.submit("u", "b", 1, b"x", "bin").id
    done = store.submit("u", "b", 1, b"x", "bin").id
    store.transition(queued, JobStatus.QUEUED)
    store.transition(running, JobStatus.QUEUED)
    store.transition(running, JobStatus.RUNNING, filename_log="logname")
    store.transition(done, JobStatus.CANCELED)
    # no close(): as if killed
    again = JobStore(tmp_path)
    assert again.recover() == [queued, running]
    assert again.get(waiting).status is JobStatus.WAITING
    for job_id in (queued, running):
        job = again.get(job_id)
        assert job.status is JobStatus.ERROR and job.detail == RESTART_DETAIL
    assert again.get(running).filename_log == "logname"
    assert again.get(done).status is JobStatus.CANCELED
    assert again.submit("u", "b", 1, b"x", "bin").id == done + 1


def test_ended_jobs_move_to_bounded_shards(tmp_path):
    store = JobStore(tmp_path, shard_size=10, durable=False)
    for _ in range(35):
        job = store.submit("u", "b", 1, b"x", "bin")
        store.transition(job.id, JobStatus.CANCELED)
    shards = sorted((tmp_path / "db" / "archive").glob("jobs-*.json"))
    assert [p.name for p in shards] == [f"jobs-{i:06d}.json" for i in range(4)]
    assert all(len(json.loads(p.read_text())["jobs"]) <= 10 for p in shards)
    live = json.loads((tmp_path / "db" / "live.json").read_text())
    assert live["jobs"] == {}
    assert JobStore(tmp_path, shard_size=10).count() == 35


def test_kill_between_archive_and_live_delete(tmp_path):
    store = JobStore(tmp_path)
    job = store.submit("u", "b", 1, b"x", "bin")
    live_before = (tmp_path / "db" / "live.json").read_bytes()
    store.transition(job.id, JobStatus.CANCELED)
    (tmp_path / "db" / "live.json").write_bytes(live_before)  # the delete never landed
    again = JobStore(tmp_path)
    assert again.get(job.id).status is JobStatus.CANCELED
    assert again.live_jobs() == []


def test_insert_ended_bulk(tmp_path):
    store = JobStore(tmp_path, shard_size=100, durable=False)
    jobs = [Job(id=i, created="2020-01-01 00:00:00.000000", status=JobStatus.FINISHED,
                owner="u", board="b", duration_limit_seconds=1, filename_executable="x",
                format="bin") for i in range(1, 251)]
    store.insert_ended(jobs)
    assert store.count() == 250
    assert store.get(250).status is JobStatus.FINISHED
    assert store.submit("u", "b", 1, b"x", "bin").id == 251
    with pytest.raises(ValueError):
        store.insert_ended([store.get(251)])


def test_transition_errors(tmp_path):
    store = JobStore(tmp_path, durable=False)
    with pytest.raises(UnknownJob):
        store.transition(5, JobStatus.QUEUED)
    job = store.submit("u", "b", 1, b"x", "bin")
    with pytest.raises(TransitionError, match="WAITING -> RUNNING"):
        store.transition(job.id, JobStatus.RUNNING)
    store.transition(job.id, JobStatus.ERROR)
    with pytest.raises(TransitionError):
        store.transition(job.id, JobStatus.CANCELED)
    with pytest.raises(ValueError):
        store.artifact_path("../etc/passwd")


def test_claim_is_fifo_per_board(tmp_path):
    store = JobStore(tmp_path, durable=False)
    a1 = store.submit("u", "a", 1, b"x", "bin").id
    b1 = store.submit("u", "b", 1, b"x", "bin").id
    a2 = store.submit("u", "a", 1, b"x", "bin").id
    assert store.claim_next("a", "a#0").id == a1
    assert store.claim_next("a", "a#1").id == a2
    assert store.claim_next("a", "a#0") is None
    assert store.claim_next("b", "b#0").id == b1


def test_users_tokens_and_passwords(tmp_path):
    store = Store(tmp_path, password_hasher=FAST_HASHER)
    user, password, token = store.users.add("carol")
    assert store.users.verify_token(token) == user
    assert store.users.verify_password("carol", password) == user
    assert store.users.verify_password("carol", "nope") is None
    raw = (tmp_path / "db" / "users.json").read_text()
    assert password not in raw and token not in raw
    second = store.users.new_token("carol")
    assert store.users.verify_token(second) == user
    with pytest.raises(ValueError):
        store.users.add("carol")
    with pytest.raises(ValueError):
        store.users.add("bad name")


def test_users_added_by_another_process_are_seen(tmp_path):
    server = Store(tmp_path, password_hasher=FAST_HASHER)
    cli = Store(tmp_path, password_hasher=FAST_HASHER)
    _, _, token = cli.users.add("dave", admin=True)
    assert server.users.verify_token(token).is_admin


def test_shard_size_is_fixed_by_the_data_dir(tmp_path):
    store = JobStore(tmp_path, shard_size=10, durable=False)
    for _ in range(25):
        store.transition(store.submit("u", "b", 1, b"x", "bin").id, JobStatus.CANCELED)
    again = JobStore(tmp_path, shard_size=1000)
    assert again.shard_size == 10
    assert [again.get(i).id for i in (1, 12, 25)] == [1, 12, 25]


def test_leftover_temp_files_are_removed(tmp_path):
    JobStore(tmp_path).close()
    leftover = tmp_path / "db" / ".live.json.abc.tmp"
    leftover.write_bytes(b'{"jobs": {"1": ')
    JobStore(tmp_path)
    assert not leftover.exists()


def test_two_processes_adding_users_alternately(tmp_path):
    one = Store(tmp_path, password_hasher=FAST_HASHER)
    two = Store(tmp_path, password_hasher=FAST_HASHER)
    for i in range(3):
        one.users.add(f"one{i}")
        two.users.add(f"two{i}")
    assert len(one.users.list()) == 6


def test_one_server_per_data_dir(make_env, tmp_path):
    from hwut.service import DataDirInUse, build_service
    env = make_env(start=False)
    with pytest.raises(DataDirInUse):
        build_service(env.service.config, {})
