"""``hwut store check`` and ``hwut store repair``: what is readable, and salvaging it.

The store refuses to open on a damaged file (:class:`hwut.storage.DamagedStoreFile`)
rather than take it for an empty table. These two functions are the way back:

- :func:`check` reads every store file the way the server would and reports, per
  file, whether it is readable and how many records it holds, plus what else would
  surprise an admin (a job naming a missing artifact, leftovers). It changes nothing
  and may run beside a server (every file is replaced atomically).
- :func:`repair` takes the data dir's lock (the server must be stopped), keeps each
  damaged file beside the original as ``NAME.damaged-<UTC time>``, writes in its
  place what could be salvaged (the complete records at the start of a truncated
  file), rebuilds what can be rebuilt (the shard size from the shards, the id mark
  from every id found, never lowered), and says what was lost: jobs whose records
  went with a damaged file are unknown, and their artifact files are moved into
  ``lost-artifacts-<UTC time>/`` so that the server's start does not remove them as
  orphans.

The CLI wraps :func:`check_command` and :func:`repair_command`, which return the
printable text and the exit code.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .jobs import artifact_names, utcnow
from .storage import (
    DamagedStoreFile,
    DataDirInUse,
    StorageFull,
    atomic_write_bytes,
    check_tables,
    fsync_dir,
    lock_data_dir,
    parse_json_bytes,
)
from .store import (
    ID_MARK_NAME,
    LAYOUT_NAME,
    check_job_record,
    read_id_mark,
    read_layout,
    users_path,
    write_id_mark,
)
from .store.offline import FILE_NAME as OFFLINE_FILE
from .store.offline import OfflineStore
from .users import ROLES

Clock = Callable[[], _dt.datetime]

#: Exit codes of the commands.
EXIT_OK, EXIT_DAMAGED, EXIT_NO_DATA_DIR = 0, 1, 2

#: The shard size a data dir gets by default (JobStore's), used when the shards allow it.
DEFAULT_SHARD_SIZE = 250

_DECODER = json.JSONDecoder()
_BLANK = " \t\n\r"


@dataclass
class FileReport:
    """One store file: what it is, its state and what it holds or why it is unreadable."""

    path: Path
    kind: str
    state: str  # ok, missing, damaged; after a repair also salvaged, rebuilt, failed
    records: int | None = None
    detail: str = ""


@dataclass
class StoreReport:
    """What :func:`check` or :func:`repair` found and did, printable with :meth:`text`."""

    data_dir: Path
    action: str
    files: list[FileReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Set by repair when it could not make every file readable.
    failed: bool = False

    @property
    def damaged(self) -> list[FileReport]:
        return [f for f in self.files if f.state in ("damaged", "failed")]

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.failed

    def text(self) -> str:
        lines = [f"hwut store {self.action}: {self.data_dir}"]
        width = max((len(str(f.path)) for f in self.files), default=0)
        for f in self.files:
            count = "" if f.records is None else f"{f.records} record(s)"
            state = f.state.upper() if f.state in ("damaged", "failed") else f.state
            lines.append(f"  {state:<9} {str(f.path):<{width}}  {f.kind}: "
                         + "; ".join(x for x in (count, f.detail) if x))
        if self.notes:
            lines.append("notes:")
            lines.extend(f"  - {note}" for note in self.notes)
        lines.append(self._verdict())
        return "\n".join(lines) + "\n"

    def _verdict(self) -> str:
        where = f"--data-dir {self.data_dir}"
        if self.action == "check":
            if self.ok:
                return "result: every store file is readable."
            return (f"result: {len(self.damaged)} damaged file(s); the server will not start. "
                    f"Restore them from a backup, or stop the server and run "
                    f"`hwut store repair {where}`.")
        if self.ok:
            return "result: every store file is readable now; the server can start."
        return ("result: the store is still damaged (see above); restore the files named "
                "from a backup.")


# ---- reading ------------------------------------------------------------------------


@dataclass
class _Scan:
    """Everything read from the data dir: reports plus what repair needs."""

    report: StoreReport
    #: id -> artifact names, of every job in a readable table
    jobs: dict[int, list[str]] = field(default_factory=dict)
    #: shard number -> ids in it (readable shards)
    shards: dict[int, list[int]] = field(default_factory=dict)
    mark: int | None = None
    shard_size: int | None = None


def _rel(data_dir: Path, path: Path) -> Path:
    try:
        return path.relative_to(data_dir)
    except ValueError:
        return path


def _job_tables(path: Path, tables: dict[str, dict[str, dict[str, Any]]]
                ) -> list[tuple[int, list[str]]]:
    """(id, artifact names) of every job in a job table; damage for a bad record."""
    out = []
    for doc_id, record in tables.get("jobs", {}).items():
        job = check_job_record(path, doc_id, record)
        out.append((job.id, job.artifact_names()))
    return out


def _user_records(path: Path, tables: dict[str, dict[str, dict[str, Any]]]) -> tuple[int, int]:
    """(users, admins); damage for a record that is not a user."""
    users = admins = 0
    for doc_id, record in tables.get("users", {}).items():
        if not isinstance(record.get("name"), str) or record.get("role") not in ROLES:
            raise DamagedStoreFile(path, f"user record {doc_id} lacks a name or a valid role")
        users += 1
        admins += record["role"] == "admin"
    return users, admins


def _read(path: Path) -> Any:
    """The JSON in ``path``: None when missing, :class:`DamagedStoreFile` when damaged."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse_json_bytes(path, raw)


def _scan(data_dir: Path, action: str, notes: bool = True) -> _Scan:
    report = StoreReport(data_dir, action)
    scan = _Scan(report)
    db = data_dir / "db"
    archive = db / "archive"
    shard_paths = sorted(archive.glob("jobs-*.json"))

    def add(path: Path, kind: str, reader: Callable[[Any], tuple[int | None, str]],
            missing: str) -> None:
        entry = FileReport(_rel(data_dir, path), kind, "ok")
        try:
            data = _read(path)
            if data is None:
                entry.state, entry.detail = "missing", missing
            else:
                entry.records, entry.detail = reader(data)
        except DamagedStoreFile as exc:
            entry.state, entry.detail = "damaged", exc.reason
        report.files.append(entry)

    def layout(data: Any) -> tuple[int | None, str]:
        scan.shard_size = read_layout(db / LAYOUT_NAME)
        return None, f"shard size {scan.shard_size}"

    def mark(data: Any) -> tuple[int | None, str]:
        scan.mark = read_id_mark(db / ID_MARK_NAME)
        return None, f"ids up to {scan.mark} given out"

    def job_file(path: Path, shard: int | None) -> Callable[[Any], tuple[int | None, str]]:
        def reader(data: Any) -> tuple[int | None, str]:
            jobs = _job_tables(path, check_tables(path, data))
            for job_id, names in jobs:
                scan.jobs[job_id] = names
            if shard is not None:
                scan.shards[shard] = [job_id for job_id, _ in jobs]
            return len(jobs), ""
        return reader

    def users(data: Any) -> tuple[int | None, str]:
        count, admins = _user_records(users_path(data_dir), check_tables(users_path(data_dir),
                                                                        data))
        return count, f"{admins} admin(s)"

    def targets(data: Any) -> tuple[int | None, str]:
        tables = check_tables(db / "targets.json", data)
        return sum(len(t) for t in tables.values()), ", ".join(
            f"{len(t)} {name}" for name, t in sorted(tables.items()))

    add(db / LAYOUT_NAME, "layout", layout, "not created yet")
    if shard_paths and report.files[-1].state == "missing":  # as JobStore refuses it
        report.files[-1].state = "damaged"
        report.files[-1].detail = "missing although the archive holds shards"
    add(db / ID_MARK_NAME, "job id mark", mark,
        "not created yet (the server creates it from the tables)")
    add(db / "live.json", "live jobs", job_file(db / "live.json", None), "not created yet")
    for path in shard_paths:
        shard = int(path.stem.removeprefix("jobs-"))
        add(path, "archived jobs", job_file(path, shard), "")
    add(users_path(data_dir), "users", users, "not created yet (the server creates an admin)")
    add(db / "targets.json", "targets", targets, "not created yet (the config seeds it)")

    def offline(data: Any) -> tuple[int | None, str]:
        records = OfflineStore(db / OFFLINE_FILE).records()  # raises for a damaged file
        return len(records), ", ".join(sorted(records))

    add(db / OFFLINE_FILE, "offline instances", offline,
        "not created yet (no instance was taken offline)")
    if notes:
        _consistency(scan, data_dir)
    return scan


def _consistency(scan: _Scan, data_dir: Path) -> None:
    """Notes on what is readable but surprising (none of it stops the server)."""
    notes = scan.report.notes
    highest = max(scan.jobs, default=0)
    if scan.mark is not None and scan.mark < highest:
        notes.append(f"the job id mark ({scan.mark}) is below the highest job id "
                     f"({highest}); the server raises it at start")
    if scan.shard_size is not None:
        misplaced = sorted(i for shard, ids in scan.shards.items() for i in ids
                           if i // scan.shard_size != shard)
        if misplaced:
            notes.append(f"{len(misplaced)} archived job(s) lie in the wrong shard for "
                         f"shard size {scan.shard_size} (e.g. {misplaced[0]}): they cannot "
                         "be found by id")
    artifacts = _artifact_names(data_dir)
    named = {n for names in scan.jobs.values() for n in names}
    missing = named - artifacts
    if missing:
        notes.append(f"{len(missing)} artifact file(s) named by jobs are missing from "
                     "artifacts/ (their routes answer 404)")
    orphans = artifacts - named
    if orphans:
        notes.append(f"{len(orphans)} artifact file(s) in artifacts/ are named by no job "
                     "read here; the server removes such files at start only when every "
                     "table is readable")
    db = data_dir / "db"
    for folder in (db, db / "archive"):
        for path in sorted(folder.glob("*.damaged-*")):
            notes.append(f"{_rel(data_dir, path)} is a damaged original kept by a repair; "
                         "delete it when you no longer need it")
        leftovers = list(folder.glob(".*.tmp"))
        if leftovers:
            notes.append(f"{len(leftovers)} temp file(s) of interrupted writes in "
                         f"{_rel(data_dir, folder)}/ (the server removes them at start)")


def _artifact_names(data_dir: Path) -> set[str]:
    folder = data_dir / "artifacts"
    if not folder.is_dir():
        return set()
    with os.scandir(folder) as entries:
        return {e.name for e in entries
                if e.is_file(follow_symlinks=False) and not e.name.startswith(".")}


def check(data_dir: str | os.PathLike[str]) -> StoreReport:
    """Read every store file in ``data_dir`` as the server would; change nothing."""
    return _scan(Path(data_dir), "check").report


# ---- salvaging ----------------------------------------------------------------------


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _BLANK:
        pos += 1
    return pos


def _expect(text: str, pos: int, char: str) -> int:
    pos = _skip(text, pos)
    if not text.startswith(char, pos):
        raise ValueError(f"expected {char!r} at {pos}")
    return pos + 1


def salvage_tables(raw: bytes) -> dict[str, dict[str, dict[str, Any]]]:
    """The complete records of a damaged TinyDB file ``{table: {id: {record}}}``, read
    from its start until the damage (a cut, zeros, garbage): a truncated file, the usual
    damage, keeps every record but the one it cut."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = raw[:exc.start].decode("utf-8")
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        pos = _expect(text, 0, "{")
        while True:
            pos = _skip(text, pos)
            if text.startswith("}", pos):
                break
            name, pos = _DECODER.raw_decode(text, pos)
            pos = _expect(text, pos, ":")
            pos = _expect(text, pos, "{")
            table = tables.setdefault(str(name), {})
            while True:
                pos = _skip(text, pos)
                if text.startswith("}", pos):
                    pos += 1
                    break
                doc_id, pos = _DECODER.raw_decode(text, pos)
                pos = _expect(text, pos, ":")
                record, pos = _DECODER.raw_decode(text, _skip(text, pos))
                if isinstance(doc_id, str) and doc_id.isdigit() and isinstance(record, dict):
                    table[doc_id] = record
                pos = _skip(text, pos)
                if text.startswith(",", pos):
                    pos += 1
                elif not text.startswith("}", pos):
                    raise ValueError(f"expected ',' or '}}' at {pos}")
            pos = _skip(text, pos)
            if text.startswith(",", pos):
                pos += 1
            elif not text.startswith("}", pos):
                raise ValueError(f"expected ',' or '}}' at {pos}")
    except ValueError:  # JSONDecodeError too: the damage starts here
        pass
    return tables


def infer_shard_size(shards: Mapping[int, Iterable[int]], default: int = DEFAULT_SHARD_SIZE
                     ) -> int | None:
    """A shard size that puts every id in the shard it was found in (``default`` when it
    does); None when no size does (the shards contradict each other)."""
    low, high = 1, None
    for shard, ids in shards.items():
        for job_id in ids:
            low = max(low, job_id // (shard + 1) + 1)
            if shard >= 1:
                high = job_id // shard if high is None else min(high, job_id // shard)
    if high is not None and low > high:
        return None
    if low <= default and (high is None or default <= high):
        return default
    return low


def _keep_damaged(path: Path, stamp: str) -> Path:
    """Keep the damaged file beside the original (a hard link: no space, no copy)."""
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while kept.exists():
        n += 1
        kept = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    try:
        os.link(path, kept)
    except OSError:
        shutil.copy2(path, kept)
    fsync_dir(path.parent)
    return kept


def _ranges(ids: list[int]) -> str:
    """"3, 7-9, 12" for [3, 7, 8, 9, 12]: lost ids come in runs."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _salvage_file(entry: FileReport, path: Path, stamp: str) -> dict[str, Any]:
    """Keep the damaged original, write what is readable in its place; the tables kept."""
    raw = path.read_bytes()
    tables = salvage_tables(raw)
    kind = entry.kind
    kept: dict[str, dict[str, dict[str, Any]]] = {}
    dropped = 0
    for name, table in tables.items():
        good: dict[str, dict[str, Any]] = {}
        for doc_id, record in table.items():
            try:
                if kind in ("live jobs", "archived jobs"):
                    check_job_record(path, doc_id, record)
                elif kind == "users":
                    _user_records(path, {"users": {doc_id: record}})
            except DamagedStoreFile:
                dropped += 1
                continue
            good[doc_id] = record
        kept[name] = good
    backup = _keep_damaged(path, stamp)
    atomic_write_bytes(path, json.dumps(kept, separators=(",", ":")).encode())
    count = sum(len(t) for t in kept.values())
    entry.state, entry.records = "salvaged", count
    entry.detail = (f"damaged ({entry.detail}); kept {count} complete record(s)"
                    + (f", dropped {dropped} unreadable" if dropped else "")
                    + f"; the damaged original is {backup.name}")
    return kept


def repair(data_dir: str | os.PathLike[str], clock: Clock = utcnow) -> StoreReport:
    """Salvage every damaged store file in ``data_dir`` (see the module docstring).
    Raises :class:`DataDirInUse` while a server runs on it; :class:`StorageFull` when
    the disk has no room for the salvaged files (nothing is lost: originals stay)."""
    data_dir = Path(data_dir)
    lock = lock_data_dir(data_dir)
    try:
        return _repair(data_dir, clock().strftime("%Y%m%dT%H%M%SZ"))
    finally:
        lock.close()


def _repair(data_dir: Path, stamp: str) -> StoreReport:
    before = _scan(data_dir, "repair", notes=False)
    report = before.report
    db = data_dir / "db"
    lost_records = False
    by_path = {data_dir / f.path: f for f in report.files}
    special = {db / LAYOUT_NAME, db / ID_MARK_NAME, db / OFFLINE_FILE}
    for path, entry in by_path.items():
        if entry.state != "damaged" or path in special:
            continue
        kept = _salvage_file(entry, path, stamp)
        if entry.kind in ("live jobs", "archived jobs"):
            lost_records = True
            for doc_id, record in kept.get("jobs", {}).items():
                before.jobs[int(doc_id)] = artifact_names(record)
                if entry.kind == "archived jobs":
                    shard = int(path.stem.removeprefix("jobs-"))
                    before.shards.setdefault(shard, []).append(int(doc_id))
        if entry.kind == "users" and not any(r.get("role") == "admin"
                                              for r in kept.get("users", {}).values()):
            report.notes.append(
                "no admin was salvaged: with no user at all the server creates a new admin "
                "at start (and prints its password); otherwise add one with "
                f"`hwut user add --admin NAME --data-dir {data_dir}`")
        if entry.kind == "targets":
            report.notes.append("targets: the config's boards and microcontrollers are "
                                "seeded again at the next start; boards added through the "
                                "API that were lost must be added again")

    offline = by_path[db / OFFLINE_FILE]
    if offline.state == "damaged":  # nothing to salvage from: the admin decides again
        set_aside = _keep_damaged(db / OFFLINE_FILE, stamp)
        (db / OFFLINE_FILE).unlink()
        offline.state, offline.detail = "rebuilt", (
            f"damaged ({offline.detail}); removed: every instance is online at the next "
            f"start, take broken ones offline again (`hwut board offline`); the damaged "
            f"original is {set_aside.name}")

    layout = by_path[db / LAYOUT_NAME]
    if layout.state == "damaged":
        size = infer_shard_size(before.shards)
        if size is None:
            layout.state = "failed"
            layout.detail += "; the shards contradict each other: restore it from a backup"
        else:
            backup = _keep_damaged(db / LAYOUT_NAME, stamp) \
                if (db / LAYOUT_NAME).exists() else None
            atomic_write_bytes(db / LAYOUT_NAME, json.dumps({"shard_size": size}).encode())
            layout.state = "rebuilt"
            layout.detail = (f"damaged ({layout.detail}); shard size {size}, the one that puts "
                             "every archived job in its shard"
                             + (f"; the damaged original is {backup.name}" if backup else ""))

    _repair_mark(before, by_path[db / ID_MARK_NAME], data_dir, stamp, lost_records)
    if lost_records:
        _set_aside_orphans(before, data_dir, stamp)
    if all(f.state in ("ok", "missing") for f in report.files):
        report.notes.insert(0, "nothing to repair: every store file is readable")
    after = _scan(data_dir, "check").report
    report.notes.extend(after.notes)  # as the store is now
    report.failed = not after.ok
    return report


def _repair_mark(scan: _Scan, entry: FileReport, data_dir: Path, stamp: str,
                 lost_records: bool) -> None:
    """The id mark: max(its readable value, every id found in any table); never lower.
    The artifacts cannot tell ids, so a damaged mark with lost jobs is said to be a risk."""
    path = data_dir / "db" / ID_MARK_NAME
    highest = max(scan.jobs, default=0)
    notes = scan.report.notes
    if entry.state == "damaged":
        backup = _keep_damaged(path, stamp)
        write_id_mark(path, highest)
        entry.state, entry.detail = "rebuilt", (
            f"damaged ({entry.detail}); ids up to {highest} (the highest id in any table); the "
            f"damaged original is {backup.name}")
        if lost_records:
            notes.append(f"the id mark and job records were both damaged: jobs above "
                         f"{highest} may have existed, and their ids could be given again; "
                         f"restore {ID_MARK_NAME} from a backup if you have one")
        return
    if scan.mark is None:
        if highest:
            write_id_mark(path, highest)
            entry.state, entry.detail = "rebuilt", f"ids up to {highest} (from the tables)"
        return
    if scan.mark < highest:
        write_id_mark(path, highest)
        entry.state, entry.detail = "rebuilt", f"raised from {scan.mark} to {highest}"
    if lost_records:
        unknown = sorted(set(range(1, max(scan.mark, highest) + 1)) - set(scan.jobs))
        if unknown:
            notes.append(f"job(s) {_ranges(unknown)} are in no table: lost with a damaged "
                         "file (or never recorded: a submit cut short). The server does not "
                         "know them; their ids are never given again")


def _set_aside_orphans(scan: _Scan, data_dir: Path, stamp: str) -> None:
    """Move artifact files no job names out of artifacts/: they may be the uploads and
    logs of the lost jobs, and the server's start would remove them as orphans."""
    named = {n for names in scan.jobs.values() for n in names}
    orphans = sorted(_artifact_names(data_dir) - named)
    if not orphans:
        return
    target = data_dir / f"lost-artifacts-{stamp}"
    target.mkdir(exist_ok=True)
    for name in orphans:
        os.replace(data_dir / "artifacts" / name, target / name)
    fsync_dir(target)
    fsync_dir(data_dir / "artifacts")
    scan.report.notes.append(
        f"moved {len(orphans)} artifact file(s) that no job names into {target.name}/ "
        "(they may belong to the lost jobs; the server would remove them at start)")


# ---- the commands -------------------------------------------------------------------


def check_command(data_dir: str | os.PathLike[str]) -> tuple[str, int]:
    """``hwut store check``: (text to print, exit code 0 readable / 1 damaged / 2 no dir)."""
    path = Path(data_dir)
    if not path.is_dir():
        return f"hwut store check: there is no data dir {path}\n", EXIT_NO_DATA_DIR
    report = check(path)
    return report.text(), EXIT_OK if report.ok else EXIT_DAMAGED


def repair_command(data_dir: str | os.PathLike[str], clock: Clock = utcnow
                   ) -> tuple[str, int]:
    """``hwut store repair``: (text to print, exit code 0 readable now / 1 not / 2 no dir)."""
    path = Path(data_dir)
    if not path.is_dir():
        return f"hwut store repair: there is no data dir {path}\n", EXIT_NO_DATA_DIR
    try:
        report = repair(path, clock=clock)
    except DataDirInUse:
        return (f"hwut store repair: a server is running on {path}; stop it first "
                "(nothing was changed)\n", EXIT_DAMAGED)
    except StorageFull as exc:
        return (f"hwut store repair: no space left to write the repaired files ({exc}); "
                "free some space and run it again (the damaged originals are kept)\n",
                EXIT_DAMAGED)
    return report.text(), EXIT_OK if report.ok else EXIT_DAMAGED
