"""Authentication as Falcon middleware: HTTP Basic (argon2) or ``Authorization: Bearer``.

Resources opt out with ``anonymous = True`` (only ``/version``); everything else
needs a user, so a forgotten check fails closed. Authorization (owner or admin)
is decided by the resources, which know what they return.

Failed attempts are counted by a :class:`FailureThrottle`, per user name (Basic) and
per client address (Basic, Bearer and malformed headers alike), over a sliding
window. Past a limit the answer is 429 with ``Retry-After`` and no argon2 runs, so a
flood of guesses costs the server a dictionary lookup each:

- a throttled user name refuses every password login for it, from any address, until
  its window frees (its API tokens keep working); a successful login forgets only the
  failures that came from the same address, never another address's;
- a throttled address refuses every password login from it; its Bearer tokens are
  still checked (a hash lookup, and a token cannot be guessed), a wrong one is 429;
- a success never clears an address's count (else a client could interleave logins
  as itself with guesses at others).

:meth:`AuthMiddleware.early_refusal` is the same policy without argon2, asked by the
HTTP server when a request's headers are complete and before its body is read (see
:mod:`hwut.server`). :meth:`AuthMiddleware.check_secret` is the same policy for routes
that take a shared secret instead of a user (the worker hosts' token): a wrong one
counts on the address, and a throttled address gets 429 for a wrong one.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import falcon

from .users import User, UserStore

CHALLENGES = ['Basic realm="hwut"', 'Bearer realm="hwut"']
MALFORMED = ("The Authorization header is malformed; use HTTP Basic (user:password) or "
             "'Bearer <token>'.")
REQUIRED = "Authentication required: HTTP Basic or an API token as 'Authorization: Bearer <token>'."
WRONG = "Wrong user name, password or token."


def unauthorized(description: str) -> falcon.HTTPUnauthorized:
    return falcon.HTTPUnauthorized(title="Unauthorized", description=description,
                                   challenges=CHALLENGES)


def too_many(retry_after: int) -> falcon.HTTPTooManyRequests:
    return falcon.HTTPTooManyRequests(
        title="Too Many Requests", retry_after=retry_after,
        description=f"Too many failed logins; try again in {retry_after} s.")


def parse_authorization(header: str) -> tuple[str, str, str] | None:
    """("basic", name, password) or ("bearer", token, "") or None if malformed."""
    scheme, _, value = header.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and value:
        return "bearer", value, ""
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        name, sep, password = decoded.partition(":")
        if not sep:
            return None
        return "basic", name, password
    return None


class FailureThrottle:
    """Failed attempts per key ("user:NAME", "addr:IP") within a sliding window.

    A key is blocked once it holds ``limit`` failures younger than ``window`` seconds
    (a limit of 0 never blocks). Each key keeps at most ``limit`` entries (the newest),
    and at most ``max_keys`` keys are tracked: past that the least recently failed key
    is forgotten, so memory stays bounded whatever a flood sends. ``monotonic`` is the
    clock (tests pass a fake one)."""

    def __init__(self, limits: Mapping[str, int], window: float, max_keys: int = 10000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = dict(limits)  # key prefix ("user", "addr") -> failures allowed
        self.window = float(window)
        self.max_keys = max(1, int(max_keys))
        self.monotonic = monotonic
        self._lock = threading.Lock()
        #: key -> (time, address) of its newest failures, oldest first; LRU order
        self._failures: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()

    def _limit(self, key: str) -> int:
        return self.limits.get(key.partition(":")[0], 0)

    def _live(self, key: str, now: float) -> deque[tuple[float, str]] | None:
        entries = self._failures.get(key)
        if entries is None:
            return None
        while entries and entries[0][0] <= now - self.window:
            entries.popleft()
        if not entries:
            del self._failures[key]
            return None
        return entries

    def retry_after(self, *keys: str) -> int | None:
        """Seconds until the first blocked key among ``keys`` frees (at least 1), or None
        when none is blocked."""
        now = self.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                limit = self._limit(key)
                entries = self._live(key, now)
                if limit and entries is not None and len(entries) >= limit:
                    wait = max(wait, entries[-limit][0] + self.window - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, address: str, *keys: str) -> None:
        """One failure from ``address``, counted on each key."""
        now = self.monotonic()
        with self._lock:
            for key in keys:
                limit = self._limit(key)
                if not limit:
                    continue
                entries = self._live(key, now)
                if entries is None:
                    entries = self._failures[key] = deque(maxlen=limit)
                else:
                    self._failures.move_to_end(key)
                entries.append((now, address))
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, address: str, key: str) -> None:
        """A successful login on ``key`` from ``address`` forgets the failures on that key
        that came from that address (a user's own typos), and no others."""
        with self._lock:
            entries = self._failures.get(key)
            if entries is None:
                return
            kept = [entry for entry in entries if entry[1] != address]
            if kept:
                entries.clear()
                entries.extend(kept)
            else:
                del self._failures[key]

    def tracked_keys(self) -> int:
        """How many keys have failures remembered."""
        return len(self._failures)

    @classmethod
    def from_config(cls, config: Any, monotonic: Callable[[], float] = time.monotonic
                    ) -> FailureThrottle:
        return cls({"user": int(config["auth.max_failures_per_user"]),
                    "addr": int(config["auth.max_failures_per_address"])},
                   float(config["auth.failure_window_seconds"]),
                   int(config["auth.max_tracked_keys"]), monotonic)


class Refusal(NamedTuple):
    """An answer given before the request reaches the app (see :mod:`hwut.server`)."""
    status: int
    title: str
    description: str
    headers: tuple[tuple[str, str], ...]


def _user_key(name: str) -> str:
    # no user name is longer than 64 characters: a longer one need not be kept whole
    return "user:" + name[:65]


def _addr_key(address: str) -> str:
    return "addr:" + address


class AuthMiddleware:
    def __init__(self, users: UserStore, throttle: FailureThrottle | None = None) -> None:
        self.users = users
        self.throttle = throttle if throttle is not None else FailureThrottle({}, 60.0)

    def authenticate(self, header: str | None, address: str = "") -> User | None:
        """The user the header names, None without a header; 401 when wrong, 429 when
        the user name or the address failed too often lately."""
        if not header:
            return None
        throttle, addr = self.throttle, _addr_key(address)
        parsed = parse_authorization(header)
        if parsed is None:
            wait = throttle.retry_after(addr)
            if wait is not None:
                raise too_many(wait)
            self._refuse(address, addr, message=MALFORMED)
        kind, first, second = parsed  # type: ignore[misc]
        if kind == "bearer":
            user = self.users.verify_token(first)
            if user is None:
                wait = throttle.retry_after(addr)
                if wait is not None:
                    raise too_many(wait)
                self._refuse(address, addr)
            return user
        keys = (_user_key(first), addr)
        wait = throttle.retry_after(*keys)
        if wait is not None:  # before argon2: a throttled flood costs a lookup
            raise too_many(wait)
        user = self.users.verify_password(first, second)
        if user is None:
            self._refuse(address, *keys)
        throttle.succeeded(address, keys[0])
        return user

    def check_secret(self, header: str | None, address: str, secret: str, what: str) -> None:
        """Let a request through when its ``Authorization`` is ``Bearer <secret>``; else
        401 (``what`` says which secret is needed), counted on the address as a failed
        login, or 429 once the address failed too often lately. The right secret is
        let through even from a throttled address (as a user's token is: it cannot be
        guessed, and the throttle must not let a flood of guesses lock a worker out)."""
        parsed = parse_authorization(header or "")
        if parsed is not None and parsed[0] == "bearer" and hmac.compare_digest(
                parsed[1].encode(), secret.encode()):
            return
        needed = falcon.HTTPUnauthorized(title="Unauthorized", description=f"{what} is needed.",
                                         challenges=['Bearer realm="hwut"'])
        if not header:  # no credentials: nothing was tried (as for the user routes)
            raise needed
        addr = _addr_key(address)
        wait = self.throttle.retry_after(addr)
        if wait is not None:
            raise too_many(wait)
        self.throttle.failed(address, addr)
        raise needed

    def _refuse(self, address: str, *keys: str, message: str = WRONG) -> None:
        """401 for an attempt that was checked and failed; it counts on ``keys``, so the
        attempts after the limit's are answered 429 before any check."""
        self.throttle.failed(address, *keys)
        raise unauthorized(message)

    def early_refusal(self, headers: Mapping[str, str], address: str) -> Refusal | None:
        """The answer to a request that announces a body, decided from its headers alone
        (``headers`` as waitress keeps them: ``AUTHORIZATION``), or None to read the
        body. Cheap and never waiting: no argon2, snapshot lookups only. A Bearer
        token must exist; a Basic user name must exist and have a password (its
        password is checked by the app once the body is in). So a client that sends a
        body learns whether a user name exists, at the throttle's pace; the app's
        answers themselves do not tell (see :mod:`hwut.users`)."""
        header = headers.get("AUTHORIZATION", "")
        if not header:
            return self._refusal(unauthorized(REQUIRED))
        parsed = parse_authorization(header)
        addr = _addr_key(address)
        try:
            if parsed is None or (parsed[0] == "bearer" and not self.users.knows_token(
                    parsed[1])):
                wait = self.throttle.retry_after(addr)
                if wait is not None:
                    raise too_many(wait)
                self._refuse(address, addr, message=MALFORMED if parsed is None else WRONG)
            kind, first, _ = parsed  # type: ignore[misc]
            if kind == "bearer":
                return None
            keys = (_user_key(first), addr)
            wait = self.throttle.retry_after(*keys)
            if wait is not None:
                raise too_many(wait)
            if not self.users.knows_name(first):
                self._refuse(address, *keys)
        except falcon.HTTPError as exc:
            return self._refusal(exc)
        return None

    @staticmethod
    def _refusal(exc: falcon.HTTPError) -> Refusal:
        code = int(exc.status_code)
        return Refusal(code, exc.title or "", exc.description or "",
                       tuple(dict(exc.headers or {}).items()))

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        req.context.user = None
        if resource is None:
            return
        header = req.get_header("Authorization")
        if getattr(resource, "anonymous", False):
            return  # e.g. /version: answers everyone, whatever credentials they send
        user = self.authenticate(header, req.remote_addr or "")
        if user is None:
            raise unauthorized(REQUIRED)
        req.context.user = user


def require_admin(req: falcon.Request) -> User:
    user: User = req.context.user
    if not user.is_admin:
        raise falcon.HTTPForbidden(title="Forbidden", description="This needs the admin role.")
    return user
