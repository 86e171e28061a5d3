"""A job's files (executable, UART log, trace, infrastructure log) in ``artifacts/``.

Names come from a name factory (43 random URL-safe characters), never from a
client, so a name can neither be chosen nor guessed nor climb out of the folder.
Files are written whole and fsynced before their name is handed out; out of space,
:class:`hwut.storage.StorageFull` and no partial file.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from ..storage import StorageFull, fsync_dir, is_full, make_private_dir, private_opener

NameFactory = Callable[[], str]


def random_name() -> str:
    """A file name no client can choose or guess (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


class ArtifactDir:
    """The artifact folder of a data dir."""

    def __init__(self, directory: Path, name_factory: NameFactory = random_name,
                 durable: bool = True) -> None:
        self.directory = Path(directory)
        make_private_dir(self.directory)
        self.name_factory = name_factory
        self.durable = durable

    def path(self, name: str) -> Path:
        """Where an artifact lives; names come from the name factory, never from a client."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not an artifact name: {name!r}")
        return self.directory / name

    def new_name(self) -> str:
        """A fresh name for a file the caller creates (a log written as it grows)."""
        return self.name_factory()

    def write(self, data: bytes) -> str:
        """A new artifact file holding ``data``, its name returned; out of space,
        :class:`StorageFull` and no partial file."""
        name = self.name_factory()
        path = self.path(name)
        created = False
        try:
            with open(path, "xb", opener=private_opener) as fh:
                created = True
                fh.write(data)
                fh.flush()
                if self.durable:
                    os.fsync(fh.fileno())
            if self.durable:
                fsync_dir(self.directory)
        except BaseException as exc:
            if created:
                path.unlink(missing_ok=True)
            if isinstance(exc, OSError) and is_full(exc) and not isinstance(exc, StorageFull):
                raise StorageFull.from_error(exc, path) from exc
            raise
        return name

    def names(self) -> set[str]:
        """Every artifact file there is (not the hidden leftovers of other tools)."""
        with os.scandir(self.directory) as entries:
            return {e.name for e in entries
                    if e.is_file(follow_symlinks=False) and not e.name.startswith(".")}

    def remove(self, names: Iterable[str]) -> int:
        """Remove these files (durably); how many there were."""
        removed = 0
        for name in names:
            self.path(name).unlink(missing_ok=True)
            removed += 1
        if removed and self.durable:
            fsync_dir(self.directory)
        return removed
