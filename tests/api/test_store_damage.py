"""Damaged store files are refused (never read as empty tables), ids are never reused,
``hwut store check/repair`` salvage what is readable, and a full disk is a typed error
that leaves the store working. Real TinyDB files in tmp dirs, a real tmpfs for the disk.
"""
from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from disk_support import fill, free_pages
from hwut_testenv import BACKENDS, FAST_HASHER, Env, make_config

from hwut.jobs import JobStatus
from hwut.service import build_service
from hwut.storage import DamagedStoreFile, StorageFull, storage_full_guard
from hwut.store import JobStore, Store
from hwut.storecheck import (
    check,
    check_command,
    infer_shard_size,
    repair_command,
    salvage_tables,
)

#: Every file the store opens, as the data dir built by ``populated`` holds them.
STORE_FILES = ("db/live.json", "db/archive/jobs-000001.json", "db/users.json",
               "db/targets.json", "db/last_id.json", "db/layout.json")
DAMAGE = {
    "empty": lambda raw: b"",
    "truncated": lambda raw: raw[: len(raw) * 2 // 3],
    "zeroed": lambda raw: b"\0" * len(raw),
}


def open_store(data_dir: Path) -> Store:
    return Store(data_dir, password_hasher=FAST_HASHER, shard_size=4)


@pytest.fixture(scope="module")
def populated_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with an admin, seeded targets, jobs 1-7 ended (shards 0 and 1 with
    4 ids per shard) and jobs 8-10 live; each job has its executable artifact.
    Built once (durable writes cost fsyncs), copied for each test."""
    data_dir = tmp_path_factory.mktemp("populated") / "data"
    store = open_store(data_dir)
    store.users.add("admin", admin=True)
    store.targets.seed("boards", [{"name": "nucleo-f303re"}])
    for i in range(1, 11):
        job = store.jobs.submit("alice", "nucleo-f303re", 1, b"\x7fELF %d" % i, "elf")
        assert job.id == i
        if i <= 7:
            store.jobs.transition(job.id, JobStatus.CANCELED)
    store.close()
    return data_dir


@pytest.fixture
def populated(populated_once: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(populated_once, tmp_path / "data"))


def snapshot(data_dir: Path) -> dict[str, bytes]:
    """Every file in the data dir (but the lock files) with its content."""
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


# ---- refusal ---------------------------------------------------------------------------


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", STORE_FILES)
def test_a_damaged_store_file_is_refused(populated: Path, name: str, damage: str) -> None:
    path = populated / name
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    before = snapshot(populated)
    with pytest.raises(DamagedStoreFile) as caught:
        open_store(populated)
    assert caught.value.path == path
    message = str(caught.value)
    assert str(path) in message
    assert "restore" in message.lower() and "hwut store repair" in message
    assert snapshot(populated) == before  # nothing removed, nothing rewritten

    # the server refuses too, before recover() could remove a thing, and lets go of the
    # data dir (a second start meets the same refusal, not "data dir in use")
    for _ in range(2):
        with pytest.raises(DamagedStoreFile):
            build_service(make_config(populated), {}, password_hasher=FAST_HASHER)
    assert snapshot(populated) == before


def test_a_file_damaged_while_the_server_runs_answers_503(env: Env) -> None:
    users = env.service.config.data_dir / "db" / "users.json"
    users.write_bytes(users.read_bytes()[:40])  # the server reloads a changed users file
    r = env.get("/apiv1/jobs")
    assert r.status_code == 503, r.text
    assert r.json["title"] == "Service Unavailable"
    assert "users.json" not in r.text  # the admin reads the name in the server log


def test_an_empty_users_file_gets_no_new_admin(populated: Path) -> None:
    from hwut.service import ensure_admin
    users = populated / "db" / "users.json"
    users.write_bytes(b"")
    with pytest.raises(DamagedStoreFile, match="users.json"):
        ensure_admin(open_store(populated))
    assert users.read_bytes() == b""


def test_a_missing_file_is_a_new_data_dir(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert store.jobs.count() == 0 and store.users.is_empty()
    assert store.jobs.submit("u", "b", 1, b"x", "bin").id == 1


def test_layout_missing_beside_shards_is_refused(populated: Path) -> None:
    (populated / "db" / "layout.json").unlink()
    with pytest.raises(DamagedStoreFile, match="cannot be guessed"):
        open_store(populated)


def test_a_record_that_is_not_a_job_is_refused(populated: Path) -> None:
    path = populated / "db" / "archive" / "jobs-000001.json"
    tables = json.loads(path.read_text())
    del tables["jobs"]["5"]["owner"]
    path.write_text(json.dumps(tables))
    with pytest.raises(DamagedStoreFile, match="job record 5"):
        open_store(populated)


# ---- ids ---------------------------------------------------------------------------------


def test_ids_are_not_reused_when_every_job_record_is_lost(populated: Path) -> None:
    (populated / "db" / "live.json").unlink()
    for shard in (populated / "db" / "archive").glob("jobs-*.json"):
        shard.unlink()
    store = JobStore(populated, shard_size=4)
    assert store.count() == 0
    assert store.submit("u", "b", 1, b"x", "bin").id == 11


def test_the_mark_is_written_before_the_job(populated: Path) -> None:
    mark = populated / "db" / "last_id.json"
    assert json.loads(mark.read_text()) == {"last_id": 10}
    store = JobStore(populated)
    store.submit("u", "b", 1, b"x", "bin")
    assert json.loads(mark.read_text()) == {"last_id": 11}


def test_a_data_dir_without_a_mark_gets_one_from_its_tables(populated: Path) -> None:
    mark = populated / "db" / "last_id.json"
    mark.unlink()  # a data dir from before the mark existed
    store = JobStore(populated)
    assert json.loads(mark.read_text()) == {"last_id": 10}
    assert store.submit("u", "b", 1, b"x", "bin").id == 11


def test_a_mark_below_the_tables_is_raised(populated: Path) -> None:
    mark = populated / "db" / "last_id.json"
    mark.write_text('{"last_id": 3}')
    assert JobStore(populated).last_id == 10
    assert json.loads(mark.read_text()) == {"last_id": 10}


# ---- recover never removes artifacts on a doubtful read ---------------------------------


def test_recover_keeps_orphans_when_a_table_was_unreadable(populated: Path) -> None:
    (populated / "db" / "archive" / "jobs-000001.json").write_bytes(b"")
    (populated / "artifacts" / "left-by-a-kill").write_bytes(b"\x7fELF")
    before = snapshot(populated)
    store = JobStore(populated, tolerate_damage=True)
    assert [d.path.name for d in store.damaged] == ["jobs-000001.json"]
    store.recover()
    assert snapshot(populated) == before
    with pytest.raises(DamagedStoreFile):  # opened for inspection: no writes
        store.submit("u", "b", 1, b"x", "bin")
    assert snapshot(populated) == before


def test_recover_keeps_orphans_when_the_tables_are_empty_but_ids_were_given(
        populated: Path) -> None:
    (populated / "db" / "live.json").unlink()
    for shard in (populated / "db" / "archive").glob("jobs-*.json"):
        shard.unlink()
    artifacts = sorted((populated / "artifacts").iterdir())
    assert len(artifacts) == 10
    JobStore(populated).recover()
    assert sorted((populated / "artifacts").iterdir()) == artifacts


def test_recover_still_removes_a_true_orphan(populated: Path) -> None:
    orphan = populated / "artifacts" / "left-by-a-kill"
    orphan.write_bytes(b"\x7fELF")
    JobStore(populated).recover()
    assert not orphan.exists()
    assert len(list((populated / "artifacts").iterdir())) == 10


# ---- check and repair ----------------------------------------------------------------


def test_check_a_healthy_store(populated: Path) -> None:
    text, code = check_command(populated)
    assert code == 0, text
    report = check(populated)
    counts = {str(f.path): (f.state, f.records) for f in report.files}
    assert counts["db/live.json"] == ("ok", 3)
    assert counts["db/archive/jobs-000000.json"] == ("ok", 3)
    assert counts["db/archive/jobs-000001.json"] == ("ok", 4)
    assert counts["db/users.json"] == ("ok", 1)
    assert counts["db/targets.json"] == ("ok", 1)
    assert "ids up to 10" in text and "every store file is readable" in text


def test_check_names_the_damaged_file(populated: Path) -> None:
    (populated / "db" / "users.json").write_bytes(b"")
    before = snapshot(populated)
    text, code = check_command(populated)
    assert code == 1
    assert "DAMAGED   db/users.json" in text and "empty (0 bytes)" in text
    assert "hwut store repair" in text
    assert snapshot(populated) == before  # check changes nothing
    assert check_command(populated / "nowhere")[1] == 2


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", STORE_FILES)
def test_repair_makes_the_store_open_and_never_reuses_an_id(
        populated: Path, name: str, damage: str) -> None:
    path = populated / name
    damaged = DAMAGE[damage](path.read_bytes())
    path.write_bytes(damaged)
    text, code = repair_command(populated)
    assert code == 0, text
    assert name.rsplit("/", 1)[-1] in text
    kept = list(path.parent.glob(f"{path.name}.damaged-*"))
    assert [p.read_bytes() for p in kept] == [damaged]  # the original, beside it
    assert check_command(populated)[1] == 0
    store = open_store(populated)
    store.jobs.recover()
    assert store.jobs.submit("u", "b", 1, b"x", "bin").id == 11


def test_repair_salvages_a_truncated_live_table_and_sets_lost_artifacts_aside(
        populated: Path) -> None:
    live = populated / "db" / "live.json"
    raw = live.read_bytes()
    cut = raw.index(b'"10":{')  # jobs 8 and 9 complete, job 10 cut
    live.write_bytes(raw[: cut + 20])
    text, code = repair_command(populated)
    assert code == 0, text
    assert "kept 2 complete record(s)" in text
    assert "job(s) 10 are in no table" in text
    aside = list(populated.glob("lost-artifacts-*/*"))
    assert [p.read_bytes() for p in aside] == [b"\x7fELF 10"]  # job 10's upload, kept
    store = open_store(populated)
    assert store.jobs.recover() == []
    assert [j.id for j in store.jobs.live_jobs()] == [8, 9]
    assert aside[0].exists()
    assert store.jobs.submit("u", "b", 1, b"x", "bin").id == 11


def test_repair_of_a_healthy_store_changes_nothing(populated: Path) -> None:
    before = snapshot(populated)
    text, code = repair_command(populated)
    assert code == 0 and "nothing to repair" in text
    assert snapshot(populated) == before


def test_repair_waits_for_the_server_to_stop(populated: Path) -> None:
    from hwut.storage import lock_data_dir
    (populated / "db" / "users.json").write_bytes(b"")
    lock = lock_data_dir(populated)
    try:
        text, code = repair_command(populated)
    finally:
        lock.close()
    assert code == 1 and "stop it first" in text
    assert (populated / "db" / "users.json").read_bytes() == b""


def test_salvage_and_shard_size_inference() -> None:
    full = b'{"jobs":{"1":{"id":1},"2":{"id":2,"c":"}"}},"meta":{"1":{"x":1}}}'
    assert salvage_tables(full) == json.loads(full)
    assert salvage_tables(full[:30]) == {"jobs": {"1": {"id": 1}}}
    assert salvage_tables(b'{\n  "jobs": {\n    "1": {"id": 1},\n    "2": {"id"') == \
        {"jobs": {"1": {"id": 1}}}
    assert salvage_tables(b"\0\0\0") == {}
    assert infer_shard_size({0: [1, 2, 3], 1: [4, 5, 6, 7], 2: [8]}) == 4
    assert infer_shard_size({0: [1, 2]}) == 250
    assert infer_shard_size({0: [1, 300]}) == 301
    assert infer_shard_size({1: [1], 2: [30]}) is None


# ---- disk full ---------------------------------------------------------------------------


def no_temp_files(data_dir: Path) -> bool:
    return not [p for p in data_dir.rglob(".*") if p.is_file()]


def test_disk_full_in_the_store(tiny_disk: Path) -> None:
    data_dir = tiny_disk / "data"
    store = JobStore(data_dir)
    first = store.submit("u", "b", 1, b"\x7fELF one", "elf")
    filler = fill(tiny_disk)
    before = snapshot(data_dir)

    # a writer outside the store (a job's log) gets the same typed error, no partial file
    log = store.artifact_path(store.new_artifact_name())
    with pytest.raises(StorageFull), storage_full_guard(log), open(log, "wb") as fh:
        fh.write(b"x" * 100_000)
    assert not log.exists()
    with pytest.raises(StorageFull):
        store.write_artifact(b"an infrastructure log")

    # the upload itself does not fit
    with pytest.raises(StorageFull) as caught:
        store.submit("u", "b", 1, b"\x7fELF" * 5000, "elf")
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    # the upload fits (one page free) but the id mark / live table no longer does
    free_pages(filler, 1)
    with pytest.raises(StorageFull):
        store.submit("u", "b", 1, b"\x7fELF small", "elf")
    # a status change that cannot be written changes nothing, in memory either
    fill(tiny_disk)  # the page the removed upload gave back
    with pytest.raises(StorageFull):
        store.transition(first.id, JobStatus.QUEUED)
    assert store.get(first.id).status is JobStatus.WAITING
    assert snapshot(data_dir) == before and no_temp_files(data_dir)
    assert store.count() == 1

    for path in tiny_disk.glob("filler*"):  # space is back: the same store object works
        path.unlink()
    second = store.submit("u", "b", 1, b"\x7fELF two", "elf")
    assert second.id > first.id
    store.update_live(second.id, comment="written after the disk was full")
    again = JobStore(data_dir)
    assert again.get(first.id).status is JobStatus.WAITING  # the failed change never landed
    assert again.get(second.id).comment == "written after the disk was full"
    assert sorted(p.name for p in (data_dir / "artifacts").iterdir()) == sorted(
        [first.filename_executable, second.filename_executable])


def test_disk_full_submit_answers_507(tiny_disk: Path) -> None:
    from fixture_firmware import image
    service = build_service(make_config(tiny_disk / "data"), BACKENDS,
                            password_hasher=FAST_HASHER)
    try:
        env = Env(service)
        artifacts = service.store.jobs.artifact_dir
        filler = fill(tiny_disk)
        r = env.submit(body=image("hello"))
        assert r.status_code == 507, r.text
        assert r.json["title"] == "Insufficient Storage"
        assert str(tiny_disk) not in r.text  # no host paths to the client
        assert list(artifacts.iterdir()) == [] and no_temp_files(tiny_disk / "data")
        filler.unlink()
        r = env.submit(body=image("hello"))
        assert r.status_code == 201, r.text
        assert len(list(artifacts.iterdir())) == 1
    finally:
        service.stop()


# ---- the offline instances ----------------------------------------------------------


def test_offline_instances_are_kept_and_a_damaged_record_is_refused_then_repaired(
        populated: Path) -> None:
    """``db/offline.json`` (which instances are offline, why, since when) goes through the
    store's checks: read back by a new store, damaged -> refused, named by check, set
    aside by repair (every instance then online again)."""
    from hwut.store.offline import OfflineRecord

    store = open_store(populated)
    store.offline.set_offline("nucleo-f303re#0", "3 infrastructure errors in a row",
                              "2026-01-01 00:00:00.000000")
    store.offline.set_offline("nucleo-f303re#1", "taken offline by admin",
                              "2026-01-02 00:00:00.000000")
    store.offline.set_online("nucleo-f303re#1")
    store.close()
    store = open_store(populated)
    assert store.offline.records() == {"nucleo-f303re#0": OfflineRecord(
        "3 infrastructure errors in a row", "2026-01-01 00:00:00.000000")}
    assert store.offline.keep_only(["other#0"]) == ["nucleo-f303re#0"]
    store.offline.set_offline("nucleo-f303re#0", "x" * 5000, "2026-01-03 00:00:00.000000")
    assert len(store.offline.records()["nucleo-f303re#0"].reason) == 1000  # bounded
    store.close()
    text, code = check_command(populated)
    assert code == 0 and "db/offline.json" in text, text

    path = populated / "db" / "offline.json"
    damaged = path.read_bytes()[:30]
    path.write_bytes(damaged)
    with pytest.raises(DamagedStoreFile) as caught:
        open_store(populated)
    assert caught.value.path == path
    text, code = check_command(populated)
    assert code == 1 and "DAMAGED   db/offline.json" in text, text
    text, code = repair_command(populated)
    assert code == 0, text
    assert "every instance is online at the next start" in text
    assert [p.read_bytes() for p in path.parent.glob("offline.json.damaged-*")] == [damaged]
    assert not path.exists()
    assert open_store(populated).offline.records() == {}
