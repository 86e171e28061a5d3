"""Authentication against hostile clients: the same argon2 work for unknown and known
users, failed logins throttled per user name and per address (429 without argon2),
credentials checked before a request body is read, waitress configured from the
config, and the data dir private to its owner."""
from __future__ import annotations

import base64
import os
import socket
import stat
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import httpx
import pytest
from argon2 import PasswordHasher
from hwut_testenv import Env, basic, bearer

from hwut.app import create_app
from hwut.auth import AuthMiddleware, FailureThrottle
from hwut.server import BODY_SLACK_BYTES
from hwut.service import make_server
from hwut.users import UserStore

#: Slow enough (a few ms a check) that scheduling noise is small next to the hash.
TIMING_HASHER = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingHasher:
    """A PasswordHasher that counts its verify() calls."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.verifies = 0

    def hash(self, password: str) -> str:
        return self.inner.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        self.verifies += 1
        return self.inner.verify(hashed, password)


# ---- the same work for unknown and known users ------------------------------------------

def test_a_failed_login_takes_as_long_for_an_unknown_user_as_for_a_known_one(tmp_path):
    """Medians of interleaved attempts, timed in this thread's CPU time (the work done,
    which is what an attacker's wall-clock measurement sees on an idle server) so that
    other processes on a busy test machine do not decide the ratio."""
    users = UserStore(tmp_path / "db" / "users.json", hasher=TIMING_HASHER)
    users.add("alice", password="right")
    users.verify_password("nobody", "warm-up")  # the dummy hash is made once, first
    samples: dict[str, list[float]] = {"alice": [], "nobody": []}
    for _ in range(15):
        for name, times in samples.items():
            start = time.thread_time()
            assert users.verify_password(name, "wrong") is None
            times.append(time.thread_time() - start)
    known, unknown = (statistics.median(samples[n]) for n in ("alice", "nobody"))
    assert known > 0.001  # argon2 ran: the ratio compares real work, not timer noise
    assert 0.5 <= unknown / known <= 2, (unknown, known)


def test_unknown_users_and_users_without_a_password_run_argon2_too(tmp_path):
    hasher = CountingHasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    users = UserStore(tmp_path / "db" / "users.json", hasher=hasher)  # type: ignore[arg-type]
    users.add("alice", password="right")
    assert users.verify_password("nobody", "x") is None
    assert users.verify_password("alice", "x") is None
    assert hasher.verifies == 2
    assert users.verify_password("alice", "right").name == "alice"


# ---- the throttle on its own, with a fake clock -------------------------------------------

def test_the_throttle_blocks_after_the_limit_and_the_window_slides():
    clock = FakeClock()
    throttle = FailureThrottle({"user": 3}, window=60, monotonic=clock)
    for _ in range(2):
        throttle.failed("10.0.0.1", "user:alice")
        clock.now += 10
    assert throttle.retry_after("user:alice") is None
    throttle.failed("10.0.0.1", "user:alice")  # failures at 1000, 1010, 1020
    assert throttle.retry_after("user:alice") == 40  # the first leaves the window at 1060
    clock.now = 1059.5
    assert throttle.retry_after("user:alice") == 1
    clock.now = 1060.0
    assert throttle.retry_after("user:alice") is None  # one left the window: one more try
    throttle.failed("10.0.0.1", "user:alice")
    assert throttle.retry_after("user:alice") == 10  # now the one of 1010 must leave


def test_a_success_forgets_its_own_address_s_failures_not_another_s():
    clock = FakeClock()
    throttle = FailureThrottle({"user": 3}, window=60, monotonic=clock)
    throttle.failed("10.0.0.1", "user:alice")
    throttle.failed("10.0.0.2", "user:alice")
    throttle.failed("10.0.0.2", "user:alice")
    assert throttle.retry_after("user:alice") is not None
    throttle.succeeded("10.0.0.1", "user:alice")
    assert throttle.retry_after("user:alice") is None
    throttle.failed("10.0.0.1", "user:alice")  # the two of .2 still count
    assert throttle.retry_after("user:alice") is not None


def test_the_throttle_tracks_a_bounded_number_of_keys_forgetting_the_oldest():
    clock = FakeClock()
    throttle = FailureThrottle({"addr": 2}, window=60, max_keys=100, monotonic=clock)
    for i in range(10_000):
        throttle.failed(f"10.{i // 256}.{i % 256}.1", f"addr:10.{i // 256}.{i % 256}.1")
    assert throttle.tracked_keys() == 100
    throttle.failed("10.0.0.1", "addr:10.0.0.1")  # forgotten: counts from one again
    assert throttle.retry_after("addr:10.0.0.1") is None
    throttle.failed("x", "addr:10.39.15.1")  # the newest were kept
    assert throttle.retry_after("addr:10.39.15.1") is not None


def test_a_limit_of_zero_never_blocks():
    throttle = FailureThrottle({"user": 0}, window=60, monotonic=FakeClock())
    for _ in range(100):
        throttle.failed("a", "user:alice")
    assert throttle.retry_after("user:alice") is None and throttle.tracked_keys() == 0


# ---- through the app ------------------------------------------------------------------------

@pytest.fixture
def throttled(make_env: Callable[..., Env]) -> Iterator[tuple[Env, falcon.testing.TestClient,
                                                               FakeClock, CountingHasher]]:
    """An app with small limits (3 per user, 5 per address in 60 s), a fake clock and a
    hasher that counts argon2 checks."""
    env = make_env(start=False, auth_max_failures_per_user=3,
                   auth_max_failures_per_address=5)
    clock = FakeClock()
    users = env.service.store.users
    hasher = CountingHasher(users.hasher)
    users.hasher = hasher  # type: ignore[assignment]
    auth = AuthMiddleware(users, FailureThrottle.from_config(env.service.config, clock))
    app = create_app(env.service.store, env.service.scheduler, env.service.config, auth)
    yield env, falcon.testing.TestClient(app), clock, hasher


def _auth_test(client: falcon.testing.TestClient, headers: dict[str, str],
               addr: str = "10.0.0.1") -> falcon.testing.Result:
    return client.simulate_get("/apiv1/auth_test", headers=headers, remote_addr=addr)


def test_failures_per_user_name_answer_429_without_running_argon2(throttled):
    env, client, clock, hasher = throttled
    for i in range(3):
        r = _auth_test(client, basic("alice", "wrong"), addr=f"10.0.0.{i}")
        assert r.status_code == 401, r.text
    assert hasher.verifies == 3
    r = _auth_test(client, basic("alice", env.passwords["alice"]), addr="10.0.0.9")
    assert r.status_code == 429
    assert r.json["title"] == "Too Many Requests" and "try again" in r.json["description"]
    assert r.headers["Retry-After"] == "60"
    assert r.headers["Content-Type"].startswith("application/json")
    for _ in range(50):  # a flood costs no argon2
        assert _auth_test(client, basic("alice", "guess"), addr="10.0.0.9").status_code == 429
    assert hasher.verifies == 3
    # alice's tokens keep working, and other users are not affected
    assert _auth_test(client, env.headers["alice"], addr="10.0.0.9").status_code == 200
    assert _auth_test(client, basic("bob", env.passwords["bob"]),
                      addr="10.0.0.9").status_code == 200
    clock.now += 60
    assert _auth_test(client, basic("alice", env.passwords["alice"])).status_code == 200


def test_unknown_user_names_are_throttled_like_known_ones(throttled):
    _, client, _, _ = throttled
    codes = [_auth_test(client, basic("nobody", "x"), addr=f"10.0.1.{i}").status_code
             for i in range(4)]
    assert codes == [401, 401, 401, 429]


def test_failures_per_address_count_every_name_and_bad_tokens(throttled):
    env, client, clock, hasher = throttled
    attempts = [basic("u1", "x"), basic("u2", "x"), bearer("not-a-token"),
                {"Authorization": "Basic !!!"}, bearer("nor-this"), bearer("nor-that")]
    codes = [_auth_test(client, h, addr="10.0.0.66").status_code for h in attempts]
    assert codes == [401, 401, 401, 401, 401, 429]
    r = _auth_test(client, basic("alice", env.passwords["alice"]), addr="10.0.0.66")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert _auth_test(client, bearer("still-not"), addr="10.0.0.66").status_code == 429
    # a valid token is still honoured there (a hash lookup; tokens cannot be guessed)
    assert _auth_test(client, env.headers["bob"], addr="10.0.0.66").status_code == 200
    # another address is not affected, and a success there does not free this one
    assert _auth_test(client, basic("alice", env.passwords["alice"]),
                      addr="10.0.0.67").status_code == 200
    assert _auth_test(client, basic("bob", env.passwords["bob"]),
                      addr="10.0.0.66").status_code == 429
    clock.now += 61
    assert _auth_test(client, basic("bob", env.passwords["bob"]),
                      addr="10.0.0.66").status_code == 200


def test_a_success_does_not_reset_another_address_s_failures_on_a_user(throttled):
    env, client, _, _ = throttled
    for _ in range(2):
        assert _auth_test(client, basic("alice", "wrong"), addr="10.0.0.2").status_code == 401
    assert _auth_test(client, basic("alice", env.passwords["alice"]),
                      addr="10.0.0.1").status_code == 200
    # .2's two failures still count: its third reaches the limit
    assert _auth_test(client, basic("alice", "wrong"), addr="10.0.0.2").status_code == 401
    assert _auth_test(client, basic("alice", "wrong"), addr="10.0.0.2").status_code == 429


# ---- credentials before the body, through waitress ------------------------------------------

@pytest.fixture
def early(env: Env) -> Iterator[tuple[Env, Any]]:
    server = make_server(env.service, "127.0.0.1", 0, 2).start()
    yield env, server
    server.stop()


def _open(server: Any) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _put_head(authorization: str | None, extra: str = "") -> bytes:
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    return (f"PUT /apiv1/jobs/submit?board=nucleo-f303re&duration_limit_seconds=1 HTTP/1.1\r\n"
            f"Host: x\r\n{auth}Content-Length: 4000000\r\n{extra}\r\n").encode()


def _spooled_files() -> list[str]:
    """Temp files this process holds open (waitress spools a large body to an unlinked
    temp file in the temp dir)."""
    tmp = os.path.realpath(os.environ.get("TMPDIR", "/tmp"))
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(tmp + "/") and target.endswith("(deleted)"):
            found.append(target)
    return found


@pytest.mark.parametrize("authorization", [
    None, "Bearer not-a-token", "Basic " + base64.b64encode(b"nobody:pw").decode(),
    "Basic !!!", "Digest x"])
def test_a_large_body_without_valid_credentials_is_refused_before_it_is_sent(
        early, authorization):
    env, server = early
    before = _spooled_files()
    with _open(server) as sock:
        sock.sendall(_put_head(authorization))  # and never the body
        answer = _read_all(sock)  # the server answers and closes
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"Content-Type: application/json" in head
    assert b'Www-Authenticate: Basic realm="hwut", Bearer realm="hwut"' in head
    parsed = httpx.Response(401, content=body).json()
    assert parsed["title"] == "Unauthorized" and parsed["description"]
    assert _spooled_files() == before
    assert env.get("/apiv1/jobs", "admin").status_code == 200


def test_a_chunked_body_without_credentials_is_refused_before_it_is_sent(early):
    env, server = early
    with _open(server) as sock:
        sock.sendall(b"PUT /apiv1/jobs/submit?board=nucleo-f303re HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:100]


def test_a_throttled_address_gets_429_before_its_body(make_env):
    env = make_env(start=False, auth_max_failures_per_address=2)
    server = make_server(env.service, "127.0.0.1", 0, 2).start()
    try:
        answers = []
        for _ in range(3):
            with _open(server) as sock:
                sock.sendall(_put_head("Basic " + base64.b64encode(b"nobody:pw").decode()))
                answers.append(_read_all(sock))
        assert [a[:12] for a in answers] == [b"HTTP/1.1 401"] * 2 + [b"HTTP/1.1 429"]
        head, _, body = answers[2].partition(b"\r\n\r\n")
        assert b"Retry-After: " in head and b"application/json" in head
        assert httpx.Response(429, content=body).json()["title"] == "Too Many Requests"
        # a valid token from there is still let through to the app
        with _open(server) as sock:
            sock.sendall(_put_head(env.headers["alice"]["Authorization"],
                                   "Expect: 100-continue\r\n"))
            assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
    finally:
        server.stop()


def test_expect_100_continue_is_not_answered_before_the_check(early):
    env, server = early
    with _open(server) as sock:
        sock.sendall(_put_head("Bearer wrong", "Expect: 100-continue\r\n"))
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
    assert b"100 Continue" not in answer


def test_valid_credentials_still_upload_and_get_100_continue(early):
    env, server = early
    from fixture_firmware import image
    data = image("hello", "elf")
    for authorization in (env.headers["alice"]["Authorization"],
                          basic("alice", env.passwords["alice"])["Authorization"]):
        with _open(server) as sock:
            sock.sendall((f"PUT /apiv1/jobs/submit?board=nucleo-f303re HTTP/1.1\r\nHost: x\r\n"
                          f"Authorization: {authorization}\r\nContent-Length: {len(data)}\r\n"
                          f"Expect: 100-continue\r\nConnection: close\r\n\r\n").encode())
            assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
            sock.sendall(data)
            answer = _read_all(sock)
        assert answer.startswith(b"HTTP/1.1 201"), answer[:300]


def test_a_known_user_with_a_wrong_password_is_refused_after_the_body(early):
    """The check before the body runs no argon2: a known name passes it, and the app
    refuses the password once the body is in (as for any request)."""
    env, server = early
    r = httpx.put(f"{server.url}/apiv1/jobs/submit", params={"board": "nucleo-f303re"},
                  auth=("alice", "wrong"), content=b"\0" * 1000)
    assert r.status_code == 401 and r.json()["title"] == "Unauthorized"


def test_a_client_sending_a_large_body_with_a_bad_token_reads_the_401(early):
    env, server = early
    r = httpx.put(f"{server.url}/apiv1/jobs/submit", params={"board": "nucleo-f303re"},
                  headers=bearer("wrong"), content=b"\0" * 4_000_000)
    assert r.status_code == 401 and r.json()["title"] == "Unauthorized"


def test_a_body_being_sent_with_valid_credentials_is_spooled(early):
    """The control for the spool check above: a valid request's large body is spooled."""
    env, server = early
    with _open(server) as sock:
        sock.sendall(_put_head(env.headers["alice"]["Authorization"]))
        sock.sendall(b"\0" * 1_000_000)
        deadline = time.monotonic() + 5
        while not _spooled_files() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _spooled_files()


def test_make_server_applies_the_config_s_waitress_settings(make_env):
    env = make_env(start=False, server_channel_timeout_seconds=7,
                   server_connection_limit=12, limits_max_executable_bytes=1000)
    server = make_server(env.service, "127.0.0.1", 0, 2)
    try:
        adj = server._server.adj  # type: ignore[attr-defined]
        assert adj.channel_timeout == 7 and adj.connection_limit == 12
        assert adj.max_request_body_size == 1000 + BODY_SLACK_BYTES
        assert server._server.channel_class.early_auth is not None  # type: ignore
    finally:
        server._server.close()  # type: ignore[attr-defined]


# ---- owner-only permissions -----------------------------------------------------------------

def test_the_data_dir_and_everything_in_it_are_private(env: Env):
    job_id = env.submit().json["id"]
    env.wait(job_id)
    assert env.log(job_id)
    data_dir = Path(env.service.config.data_dir)
    seen = {"dirs": 0, "files": 0}
    for root, _dirs, files in os.walk(data_dir):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root
        seen["dirs"] += 1
        for name in files:
            mode = stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)
            assert mode == 0o600, (os.path.join(root, name), oct(mode))
            seen["files"] += 1
    names = {p.name for p in data_dir.rglob("*")}
    assert {"server.lock", "users.json", "live.json", "artifacts", "db"} <= names
    assert len(list((data_dir / "artifacts").iterdir())) >= 3  # executable, log, trace
    assert seen["dirs"] >= 4


def test_a_new_data_dir_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        users = UserStore(tmp_path / "data" / "db" / "users.json",
                          hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        users.add("carol")
    finally:
        os.umask(old)
    for path in (tmp_path / "data", tmp_path / "data" / "db"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (tmp_path / "data" / "db").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
