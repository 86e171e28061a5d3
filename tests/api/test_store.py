"""Store: durability across reopen, recovery, archive shards, fixed clock and names."""
from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest
from hwut_testenv import FAST_HASHER

from hwut.jobs import Job, JobStatus, TransitionError
from hwut.store import (
    RESTART_DETAIL,
    JobStore,
    Store,
    UnknownField,
    UnknownJob,
    find_record,
)


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


@pytest.mark.parametrize("change", [{"instnace": "b#0"}, {"stop_reasn": "limit"}, {"id": 9}])
def test_a_change_naming_no_field_of_a_job_is_refused_and_nothing_written(tmp_path, change):
    store = JobStore(tmp_path, durable=False)
    job = store.submit("u", "b", 1, b"x", "bin")
    live = (tmp_path / "db" / "live.json").read_bytes()
    with pytest.raises(ValueError, match=next(iter(change))):
        store.transition(job.id, JobStatus.QUEUED, **change)
    with pytest.raises(ValueError, match=next(iter(change))):
        store.update_live(job.id, **change)
    with pytest.raises(ValueError, match=next(iter(change))):
        store.cancel_unstarted(job.id, **change)
    with pytest.raises(ValueError, match="status only through transition"):
        store.update_live(job.id, status="FINISHED")
    assert store.get(job.id) == job and (tmp_path / "db" / "live.json").read_bytes() == live
    if "id" not in change:
        with pytest.raises(UnknownField, match="fields that may change: .*instance"):
            store.transition(job.id, JobStatus.QUEUED, **change)
    assert store.claim_next("b", "b#0").instance == "b#0"  # the queue was not disturbed


def test_only_a_job_that_has_not_started_is_canceled_by_the_store(tmp_path):
    store = JobStore(tmp_path, durable=False)
    waiting = store.submit("u", "b", 1, b"x", "bin")
    queued = store.submit("u", "b", 1, b"x", "bin")
    running = store.submit("u", "b", 1, b"x", "bin")
    store.transition(queued.id, JobStatus.QUEUED)
    store.transition(running.id, JobStatus.QUEUED)
    store.transition(running.id, JobStatus.RUNNING)
    for job in (waiting, queued):
        done, canceled = store.cancel_unstarted(job.id, detail="canceled by u")
        assert canceled and done.status is JobStatus.CANCELED and done.detail == "canceled by u"
        assert store.cancel_unstarted(job.id, detail="again") == (done, False)
    running = store.get(running.id)
    assert store.cancel_unstarted(running.id, detail="x") == (running, False)
    assert store.get(running.id).detail is None  # a running job is the scheduler's to stop
    assert store.claim_next("b", "b#0") is None and store.waiting_count("u") == 0


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


def test_old_jobs_are_read_without_parsing_their_shard(tmp_path):
    store = JobStore(tmp_path, shard_size=10, durable=False)
    for i in range(1, 36):
        job = store.submit("u", "b", 1, b"x", "bin", comment=f'"{i + 1}":{{"id":1}} \\ {i}')
        store.transition(job.id, JobStatus.CANCELED, detail="ünïcode")
    wanted = {i: store.get(i) for i in range(1, 36)}
    store.close()
    again = JobStore(tmp_path, open_shards=2, glanced_shards=2)
    for i in (3, 17, 25, 1, 35, 12, 3, 3):  # cold shards, then one read again (parsed)
        assert again.get(i) == wanted[i]
    page = again.list(limit=10, offset=5)
    assert [j.id for j in page] == list(range(30, 20, -1))
    assert page == [wanted[i] for i in range(30, 20, -1)]


def test_a_shard_in_another_json_layout_is_parsed(tmp_path):
    store = JobStore(tmp_path, shard_size=10, durable=False)
    for _ in range(15):
        store.transition(store.submit("u", "b", 1, b"x", "bin").id, JobStatus.CANCELED)
    store.close()
    path = tmp_path / "db" / "archive" / "jobs-000001.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=2))  # '"12": {'
    again = JobStore(tmp_path)
    assert again.get(12).id == 12 and again.get(12).status is JobStatus.CANCELED
    with pytest.raises(UnknownJob):
        again.get(99)


def test_find_record():
    text = '{"jobs":{"1":{"id":1,"comment":"\\"2\\":{x"},"12":{"id":12},"2":{"id":2}}}'
    assert find_record(text, 1) == {"id": 1, "comment": '"2":{x'}
    assert find_record(text, 2) == {"id": 2}
    assert find_record(text, 12) == {"id": 12}
    assert find_record(text, 3) is None
    assert find_record('{"jobs": {"1": {"id": 1}}}', 1) is None  # not compact: caller parses


def test_recover_removes_executables_no_job_names(tmp_path):
    store = JobStore(tmp_path)
    kept = store.submit("u", "b", 1, b"\x7fELF one", "elf")
    running = store.submit("u", "b", 1, b"\x7fELF two", "elf")
    store.transition(running.id, JobStatus.QUEUED)
    store.transition(running.id, JobStatus.RUNNING, filename_log="runlog")
    store.artifact_path("runlog").write_bytes(b"partial")
    ended = store.submit("u", "b", 1, b"\x7fELF three", "elf")
    store.transition(ended.id, JobStatus.CANCELED)
    # what submit() does first, by a server killed before it recorded the job:
    orphan = store.write_artifact(b"\x7fELF uploaded, never recorded")
    assert store.artifact_path(orphan).exists()
    # no close(): as if killed
    again = JobStore(tmp_path)
    assert again.recover() == [running.id]
    left = {p.name for p in (tmp_path / "artifacts").iterdir()}
    assert left == {kept.filename_executable, running.filename_executable, "runlog",
                    ended.filename_executable}
    assert again.artifact_path("runlog").read_bytes() == b"partial"  # its log is kept
    assert again.recover() == []  # nothing more to do
    assert {p.name for p in (tmp_path / "artifacts").iterdir()} == left


def test_service_start_removes_an_unrecorded_upload(make_env, tmp_path):
    from hwut_testenv import make_config

    from hwut.service import build_service
    env = make_env(start=False)
    job_id = env.submit(firmware="semihost_exit").json["id"]
    data_dir = env.service.config.data_dir
    orphan = data_dir / "artifacts" / "left-by-a-kill"
    orphan.write_bytes(b"\x7fELF")
    env.service.stop()
    service = build_service(make_config(data_dir), {}, password_hasher=FAST_HASHER)
    try:
        assert not orphan.exists()
        job = service.store.jobs.get(job_id)
        assert service.store.jobs.artifact_path(job.filename_executable).exists()
    finally:
        service.stop()
