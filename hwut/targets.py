"""Boards and microcontrollers offered by the targets API.

The server config seeds them (a board the config gives instances for is always
present); admins can add more or delete ones that no config instance uses. The
facts about a board and its microcontroller (memory, buttons, console) come from
its backend (``BoardInfo``, derived from the sim's SoC and board data), not from
a second hand-written copy: a config entry that contradicts them is refused.
"""
from __future__ import annotations

import builtins
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from hwut.backends.base import BoardInfo

from .config import Config, ConfigError
from .storage import AtomicJSONStorage

KINDS = ("boards", "microcontrollers")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

#: Fields a client may set on create, by kind, with their types.
FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "boards": {"name": str, "microcontroller": str, "description": str},
    "microcontrollers": {"name": str, "manufacturer": str, "core": str,
                         "flash_bytes": int, "ram_bytes": int, "max_clock_hz": int,
                         "description": str},
}
#: Fields a config may word differently from the backend's data (prose, not facts).
_PROSE = frozenset({"description"})


def seed_records(config: Config, infos: Mapping[str, BoardInfo]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(microcontrollers, boards) as the targets API offers them for ``config``.

    A board its backend knows gets its microcontroller and wiring from the backend;
    ``[[microcontrollers]]`` entries describe chips no backend knows (a physical
    board's), and may only repeat, never contradict, what a backend says.
    """
    mcus: dict[str, dict[str, Any]] = {}
    for board in config.boards:
        info = infos.get(board.name)
        if info is not None:
            mcus[info.microcontroller.name] = info.microcontroller.record()
    for entry in config.microcontrollers:
        derived = mcus.get(entry["name"])
        if derived is not None:
            wrong = sorted(k for k, v in entry.items()
                           if k in derived and k not in _PROSE and derived[k] != v)
            if wrong:
                raise ConfigError(
                    f"{config.source}: [[microcontrollers]] {entry['name']}: "
                    + ", ".join(f"{k} = {entry[k]!r}" for k in wrong)
                    + " contradicts the board data ("
                    + ", ".join(f"{k} = {derived[k]!r}" for k in wrong)
                    + "); remove the entry, the backend supplies it")
        mcus[entry["name"]] = {**(derived or {}), **entry}
    boards = []
    for board in config.boards:
        record = board.target_record()
        info = infos.get(board.name)
        if info is not None:
            chip = info.microcontroller.name
            if board.microcontroller not in (None, chip):
                raise ConfigError(f"{config.source}: board {board.name}: microcontroller = "
                                  f"{board.microcontroller!r}, but it carries {chip!r}")
            record.update(microcontroller=chip, console=info.console,
                          buttons=list(info.buttons), leds=list(info.leds))
        boards.append(record)
    return sorted(mcus.values(), key=lambda m: m["name"]), boards


class TargetError(ValueError):
    """A target cannot be created or deleted; the message says why."""


class TargetStore:
    def __init__(self, path: Path, durable: bool = True) -> None:
        self._lock = threading.RLock()
        self._db = TinyDB(Path(path), storage=AtomicJSONStorage, durable=durable)
        self._db.tables()  # read now: a damaged file stops the store from opening

    def seed(self, kind: str, records: Iterable[dict[str, Any]]) -> None:
        """Make the config's targets present (the config wins over stored copies)."""
        with self._lock:
            table = self._db.table(kind)
            for record in records:
                table.upsert(dict(record), Query().name == record["name"])

    def list(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return sorted((dict(d) for d in self._db.table(kind).all()),
                          key=lambda r: r["name"])

    def names(self, kind: str) -> builtins.list[str]:  # `list` here is the method
        return [r["name"] for r in self.list(kind)]

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            doc = self._db.table(kind).get(Query().name == name)
            return dict(doc) if doc is not None else None

    def create(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        allowed = FIELDS[kind]
        if not isinstance(record, dict):
            raise TargetError("the body must be a JSON object")
        unknown = sorted(set(record) - set(allowed))
        if unknown:
            raise TargetError(f"unknown fields {unknown}; allowed: {sorted(allowed)}")
        for key, kind_type in allowed.items():
            if key in record and (not isinstance(record[key], kind_type)
                                  or isinstance(record[key], bool)):
                raise TargetError(f"field {key!r} must be of type "
                                  f"{getattr(kind_type, '__name__', kind_type)}")
        name = record.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise TargetError("'name' is required: 1 to 64 letters, digits, '.', '_' or '-'")
        with self._lock:
            mcu = record.get("microcontroller") if kind == "boards" else None
            if mcu is not None and self.get("microcontrollers", mcu) is None:
                raise TargetError(
                    f"unknown microcontroller {mcu!r}; known: "
                    f"{', '.join(self.names('microcontrollers')) or 'none'}")
            if self.get(kind, name) is not None:
                raise TargetError(f"{kind[:-1]} {name!r} already exists")
            self._db.table(kind).insert(dict(record))
        return dict(record)

    def delete(self, kind: str, name: str) -> bool:
        with self._lock:
            return bool(self._db.table(kind).remove(Query().name == name))
