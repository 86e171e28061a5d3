"""Assembling the service from a config: store, recovery, scheduler, app, first admin.

Kept apart from the CLI so tests, the demo and ``hwut serve`` build the same thing.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import falcon

from hwut.backends.base import Backend
from hwut.backends.registry import load_backends

from .app import create_app
from .auth import AuthMiddleware, FailureThrottle
from .config import Config
from .scheduler import Scheduler
from .server import BackgroundServer, server_options
from .storage import DataDirInUse, lock_data_dir  # noqa: F401 - DataDirInUse: callers import it here
from .store import Store
from .targets import seed_records

log = logging.getLogger(__name__)


@dataclass
class Service:
    config: Config
    store: Store
    scheduler: Scheduler
    app: falcon.App
    lock: IO[str]
    #: the app's authentication (and its failure throttle), shared with the HTTP server
    auth: AuthMiddleware | None = None

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.store.close()
        self.lock.close()


def seed_targets(store: Store, config: Config, scheduler: Scheduler) -> None:
    """The targets API's boards and microcontrollers, from the config and what each
    board's backend knows (ConfigError when the config contradicts it)."""
    mcus, boards = seed_records(config, scheduler.infos)
    store.targets.seed("microcontrollers", mcus)
    store.targets.seed("boards", boards)


def build_service(config: Config, backends: Mapping[str, type[Backend]] | None = None,
                  monotonic: Callable[[], float] = time.monotonic,
                  **store_options: Any) -> Service:
    """Open the data dir, fail what a crash interrupted, and wire the app (not started).

    ``monotonic`` is the scheduler's clock: the one every wall-clock bound of a run (its
    deadline, the grace after a cancel) is measured on; tests pass one they move.

    A damaged store file raises :class:`hwut.storage.DamagedStoreFile` (its message
    names the file and the way out) before anything is changed or removed; a full disk
    raises :class:`hwut.storage.StorageFull`. Both leave the data dir unlocked."""
    lock = lock_data_dir(config.data_dir)
    store: Store | None = None
    try:
        store = Store(config.data_dir, **store_options)
        failed = store.jobs.recover()
        scheduler = Scheduler(store.jobs, config,
                              load_backends() if backends is None else backends,
                              monotonic=monotonic, offline=store.offline)
        seed_targets(store, config, scheduler)
        if config.broker is not None:  # jobs go to remote worker hosts
            from .broker.dispatcher import RemoteDispatcher
            from .broker.settings import BrokerSettings
            scheduler.attach(RemoteDispatcher(scheduler,
                                              BrokerSettings.from_table(config.broker)))
    except BaseException:
        if store is not None:
            store.close()
        lock.close()
        raise
    if failed:
        log.warning("server restarted: jobs %s were QUEUED or RUNNING and are now ERROR",
                    ", ".join(map(str, failed)))
    auth = AuthMiddleware(store.users, FailureThrottle.from_config(config))
    return Service(config, store, scheduler, create_app(store, scheduler, config, auth), lock,
                   auth)


def make_server(service: Service, host: str, port: int, threads: int) -> BackgroundServer:
    """waitress for ``service`` (not started) with the config's settings
    (:func:`hwut.server.server_options`) and credentials checked before request
    bodies are read."""
    early = service.auth.early_refusal if service.auth is not None else None
    remote = service.scheduler.remote
    if early is not None and remote is not None:
        early = _worker_token_first(early, remote.settings.worker_token)  # type: ignore[attr-defined]
    return BackgroundServer(service.app, host, port, threads, early_auth=early,
                            **server_options(service.config))


def _worker_token_first(early: Any, token: str) -> Any:
    """The early check, letting a worker's token through (its routes check it again, as
    :meth:`hwut.auth.AuthMiddleware.check_secret` reads it: any spelling of Bearer)."""
    import hmac

    from .auth import parse_authorization

    def check(headers: Any, address: str) -> Any:
        parsed = parse_authorization(headers.get("AUTHORIZATION", ""))
        if parsed is not None and parsed[0] == "bearer" and hmac.compare_digest(
                parsed[1].encode(), token.encode()):
            return None
        return early(headers, address)
    return check


def ensure_admin(store: Store) -> tuple[str, str, str] | None:
    """On an empty user table create ``admin``; returns (name, password, token) once."""
    if not store.users.is_empty():
        return None
    user, password, token = store.users.add("admin", admin=True)
    return user.name, password, token
