"""Boards and microcontrollers offered by the targets API.

The server config seeds them (a board the config gives instances for is always
present); admins can add more or delete ones that no config instance uses.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

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


class TargetError(ValueError):
    """A target cannot be created or deleted; the message says why."""


class TargetStore:
    def __init__(self, path: Path, durable: bool = True) -> None:
        self._lock = threading.RLock()
        self._db = TinyDB(Path(path), storage=AtomicJSONStorage, durable=durable)

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

    def names(self, kind: str) -> list[str]:
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
