"""Users, their argon2 password hashes and their API token hashes.

Passwords are hashed with argon2 (memory-hard) and never stored or logged in
clear; API tokens are random and only their SHA-256 is stored (a token is long
and random, so a fast hash is enough and keeps Bearer checks cheap per request).
The CLI's ``hwut user add`` writes this file while a server may be running, so
writers take a file lock and readers reload when the file changed on disk.

A failed Basic login costs the same whether the user exists or not: an unknown
user (or one without a password) is checked against a dummy argon2 hash made once
with this store's hasher, so the answer time does not tell which names exist.
:meth:`UserStore.knows_name` and :meth:`UserStore.knows_token` answer from the last
loaded snapshot without ever waiting for the lock: the HTTP server's I/O thread asks
them before it reads a request body (see :mod:`hwut.server`).
"""
from __future__ import annotations

import builtins
import datetime as _dt
import fcntl
import hashlib
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from tinydb import Query, TinyDB

from .jobs import format_time, utcnow
from .storage import AtomicJSONStorage, make_private_dir, private_opener

ROLES = ("user", "admin")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class UserError(ValueError):
    """A user cannot be created or changed; the message says why."""


class UnknownUser(UserError):
    """There is no user (or token) of that name."""


class LastAdmin(UserError):
    """The change would leave the server without an admin."""


#: A token's public name: the first characters of its SHA-256 (which is what is stored).
TOKEN_ID_CHARS = 12


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """A bearer token (32 random bytes) that does not start with '-': one in 64 did,
    and the CLI took it for an option (``hwut user revoke NAME TOKEN``)."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


class UserStore:
    def __init__(self, path: Path, clock: Callable[[], _dt.datetime] = utcnow,
                 token_factory: Callable[[], str] = new_token,
                 hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        for folder in (self.path.parent.parent, self.path.parent):  # data dir, db/
            make_private_dir(folder)
        self.clock = clock
        self.token_factory = token_factory
        self.hasher = hasher or PasswordHasher()
        self._lock = threading.RLock()
        self._stamp: tuple[int, int] | None = None
        self._by_token: dict[str, User] = {}
        #: name -> has a password; replaced whole on reload (read without the lock)
        self._names: dict[str, bool] = {}
        self._basic_ok: dict[tuple[str, str], User] = {}
        self._dummy_hash: str | None = None
        self._refresh(force=True)

    # ---- cross-process consistency ------------------------------------------------

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _refresh(self, force: bool = False) -> None:
        """Reload when another process (``hwut user add``) replaced the file."""
        stamp = self._file_stamp()
        if not force and stamp == self._stamp:
            return
        # A fresh TinyDB: the old one caches the table's next id, which another
        # process may have used meanwhile.
        self._db = TinyDB(self.path, storage=AtomicJSONStorage)
        self._table = self._db.table("users")
        self._stamp = stamp
        by_token: dict[str, User] = {}
        names: dict[str, bool] = {}
        for doc in self._table.all():
            user = User(doc["name"], doc["role"])
            names[user.name] = bool(doc.get("password_hash"))
            for digest in doc.get("tokens", []):
                by_token[digest] = user
        self._by_token, self._names = by_token, names
        self._basic_ok = {}

    @contextmanager
    def _writing(self) -> Iterator[None]:
        lock_path = self.path.with_suffix(".lock")
        with self._lock, open(lock_path, "a", opener=private_opener) as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                self._refresh(force=True)
                yield
                self._refresh(force=True)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    # ---- queries ---------------------------------------------------------------------

    def _record(self, name: str) -> dict[str, Any] | None:
        doc = self._table.get(Query().name == name)
        return dict(doc) if doc is not None else None

    def get(self, name: str) -> User | None:
        with self._lock:
            self._refresh()
            record = self._record(name)
            return User(record["name"], record["role"]) if record else None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            self._refresh()
            return [{"name": d["name"], "role": d["role"], "created": d.get("created"),
                     "tokens": len(d.get("tokens", []))} for d in self._table.all()]

    def is_empty(self) -> bool:
        with self._lock:
            self._refresh()
            return len(self._table) == 0

    def _glance(self) -> None:
        """Reload if the file changed, unless another thread holds the lock (then the
        last snapshot answers): for callers that must never wait."""
        if self._lock.acquire(blocking=False):
            try:
                self._refresh()
            finally:
                self._lock.release()

    def knows_name(self, name: str) -> bool:
        """Whether ``name`` is a user with a password (no argon2, never waits)."""
        self._glance()
        return self._names.get(name, False)

    def knows_token(self, token: str) -> bool:
        """Whether ``token`` is a valid API token (a hash lookup, never waits)."""
        self._glance()
        return token_hash(token) in self._by_token

    def _dummy(self) -> str:
        """A hash of a random password with this store's hasher, made on first use."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(18))
        return self._dummy_hash

    def verify_token(self, token: str) -> User | None:
        with self._lock:
            self._refresh()
            return self._by_token.get(token_hash(token))

    def verify_password(self, name: str, password: str) -> User | None:
        """argon2 is slow on purpose; a successful check is remembered (by hash) until
        the users file changes so that polling clients do not pay it per request."""
        key = (name, token_hash(password))
        with self._lock:
            self._refresh()
            cached = self._basic_ok.get(key)
            if cached is not None:
                return cached
            record = self._record(name)
        stored = record.get("password_hash") if record is not None else None
        try:
            # the same argon2 work whether or not the user exists (no name enumeration)
            self.hasher.verify(stored or self._dummy(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if record is None or not stored:
            return None
        user = User(record["name"], record["role"])
        with self._lock:
            self._basic_ok[key] = user
        return user

    # ---- changes ---------------------------------------------------------------------

    def add(self, name: str, admin: bool = False, password: str | None = None
            ) -> tuple[User, str, str]:
        """Create a user; returns the user, its password and its first API token."""
        if not NAME_PATTERN.match(name or ""):
            raise UserError("a user name is 1 to 64 letters, digits, '.', '_' or '-'")
        password = password or secrets.token_urlsafe(18)
        token = self.token_factory()
        hashed = self.hasher.hash(password)  # slow: not while holding the lock
        with self._writing():
            if self._record(name) is not None:
                raise UserError(f"user {name!r} already exists")
            role = "admin" if admin else "user"
            self._table.insert({"name": name, "role": role,
                                "password_hash": hashed,
                                "tokens": [token_hash(token)],
                                "created": format_time(self.clock())})
        return User(name, role), password, token

    def new_token(self, name: str) -> str:
        """Issue another API token for ``name`` (old ones stay valid)."""
        token = self.token_factory()
        with self._writing():
            record = self._record(name)
            if record is None:
                raise UnknownUser(f"no user {name!r}")
            tokens = record.get("tokens", []) + [token_hash(token)]
            self._table.update({"tokens": tokens}, Query().name == name)
        return token

    def set_password(self, name: str, password: str) -> None:
        if not password:
            raise UserError("a password must not be empty")
        hashed = self.hasher.hash(password)  # slow: not while holding the lock
        with self._writing():
            if self._record(name) is None:
                raise UnknownUser(f"no user {name!r}")
            self._table.update({"password_hash": hashed},
                               Query().name == name)

    def delete(self, name: str) -> None:
        """Remove ``name``; its tokens and password stop working at once (every check
        reloads a changed file). The last admin cannot be deleted."""
        with self._writing():
            record = self._record(name)
            if record is None:
                raise UnknownUser(f"no user {name!r}")
            admins = [d["name"] for d in self._table.all() if d["role"] == "admin"]
            if record["role"] == "admin" and admins == [name]:
                raise LastAdmin(f"{name!r} is the last admin; create another admin first")
            self._table.remove(Query().name == name)

    def token_ids(self, name: str) -> builtins.list[str]:
        """The public names of ``name``'s tokens (see :data:`TOKEN_ID_CHARS`)."""
        with self._lock:
            self._refresh()
            record = self._record(name)
            if record is None:
                raise UnknownUser(f"no user {name!r}")
            return [d[:TOKEN_ID_CHARS] for d in record.get("tokens", [])]

    def revoke(self, name: str, token_ids: builtins.list[str] | None = None) -> int:
        """Revoke the tokens with these ids (or a token itself, hashed here), or all of
        ``name``'s tokens when ``token_ids`` is None; returns how many were revoked."""
        with self._writing():
            record = self._record(name)
            if record is None:
                raise UnknownUser(f"no user {name!r}")
            tokens: list[str] = record.get("tokens", [])
            if token_ids is None:
                kept: list[str] = []
            else:
                wanted = {t if len(t) == TOKEN_ID_CHARS else token_hash(t)[:TOKEN_ID_CHARS]
                          for t in token_ids}
                kept = [d for d in tokens if d[:TOKEN_ID_CHARS] not in wanted]
                if len(kept) == len(tokens):
                    raise UnknownUser(f"user {name!r} has no such token")
            self._table.update({"tokens": kept}, Query().name == name)
        return len(tokens) - len(kept)
