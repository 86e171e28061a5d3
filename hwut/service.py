"""Assembling the service from a config: store, recovery, scheduler, app, first admin.

Kept apart from the CLI so tests, the demo and ``hwut serve`` build the same thing.
"""
from __future__ import annotations

import fcntl
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import falcon

from hwut.backends.base import Backend
from hwut.backends.registry import load_backends

from .app import create_app
from .config import Config
from .scheduler import Scheduler
from .store import Store

log = logging.getLogger(__name__)


class DataDirInUse(RuntimeError):
    """Another server already uses this data dir (two writers would corrupt it)."""


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the data dir for the life of the server; the kernel
    drops it when the process dies, so a SIGKILLed server never blocks a restart."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "server.lock", "a")  # noqa: SIM115 - held until stop()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirInUse(f"another hwut server uses the data dir {data_dir}") from None
    return handle


@dataclass
class Service:
    config: Config
    store: Store
    scheduler: Scheduler
    app: falcon.App
    lock: IO[str]

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.store.close()
        self.lock.close()


def seed_targets(store: Store, config: Config) -> None:
    store.targets.seed("microcontrollers", config.microcontrollers)
    store.targets.seed("boards", [b.target_record() for b in config.boards])


def build_service(config: Config, backends: Mapping[str, type[Backend]] | None = None,
                  **store_options: Any) -> Service:
    """Open the data dir, fail what a crash interrupted, and wire the app (not started)."""
    lock = lock_data_dir(config.data_dir)
    try:
        store = Store(config.data_dir, **store_options)
        seed_targets(store, config)
        failed = store.jobs.recover()
    except BaseException:
        lock.close()
        raise
    if failed:
        log.warning("server restarted: jobs %s were QUEUED or RUNNING and are now ERROR",
                    ", ".join(map(str, failed)))
    scheduler = Scheduler(store.jobs, config,
                          load_backends() if backends is None else backends)
    return Service(config, store, scheduler, create_app(store, scheduler, config), lock)


def ensure_admin(store: Store) -> tuple[str, str, str] | None:
    """On an empty user table create ``admin``; returns (name, password, token) once."""
    if not store.users.is_empty():
        return None
    user, password, token = store.users.add("admin", admin=True)
    return user.name, password, token
