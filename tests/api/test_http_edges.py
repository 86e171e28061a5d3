"""What the client sees at the edges of HTTP: wrong methods, unknown routes, bodies too
large for waitress itself, and the operator's request log; through a real waitress."""
from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import httpx
import pytest
from hwut_testenv import Env

from hwut.server import BackgroundServer


@pytest.fixture
def served(env: Env) -> Iterator[tuple[Env, str]]:
    limit = int(env.service.config["limits.max_executable_bytes"])
    server = BackgroundServer(env.service.app, "127.0.0.1", 0, 2,
                              max_executable_bytes=limit).start()
    yield env, server.url
    server.stop()


def test_405_names_the_allowed_methods(env: Env):
    r = env.client.simulate_post("/apiv1/version")
    assert r.status_code == 405
    assert r.json["title"] == "Method Not Allowed"
    assert "POST is not allowed on /apiv1/version" in r.json["description"]
    assert "GET" in r.json["description"]


def test_an_unknown_route_says_where_the_api_lives(env: Env):
    r = env.get("/api/v1/jobs")
    assert r.status_code == 404
    assert r.json["title"] == "Not Found" and "/apiv1" in r.json["description"]


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_an_oversized_content_length_gets_the_json_413_before_any_body(served):
    env, url = served
    token = env.headers["alice"]["Authorization"]
    # no body follows: waitress must answer from the header alone
    answer = _raw(url, (f"PUT /apiv1/jobs/submit?board=nucleo-f303re HTTP/1.1\r\n"
                        f"Host: x\r\nAuthorization: {token}\r\n"
                        f"Content-Length: 99999999999\r\n\r\n").encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"application/json" in head
    parsed = httpx.Response(413, content=body).json()
    assert parsed["title"] == "Request Entity Too Large"
    assert "executables are limited to 5242880 bytes" in parsed["description"]


def test_a_body_just_over_the_executable_limit_gets_the_app_s_json_413(served):
    env, url = served
    r = httpx.put(f"{url}/apiv1/jobs/submit", params={"board": "nucleo-f303re"},
                  headers=env.headers["alice"], content=b"\0" * (5 * 1024 * 1024 + 1))
    assert r.status_code == 413
    assert "larger than the limit of 5242880 bytes" in r.json()["description"]


def test_each_request_is_logged_without_credentials(served, caplog):
    env, url = served
    caplog.set_level(logging.INFO, logger="hwut.requests")
    basic = httpx.BasicAuth("alice", env.passwords["alice"])
    assert httpx.get(f"{url}/apiv1/auth_test", auth=basic).status_code == 200
    assert httpx.get(f"{url}/apiv1/auth_test", headers=env.headers["bob"]).status_code == 200
    assert httpx.get(f"{url}/apiv1/jobs/99", headers=env.headers["bob"]).status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "hwut.requests"]
    assert any("GET /apiv1/auth_test -> 200" in line and "(alice)" in line for line in lines)
    assert any("GET /apiv1/jobs/99 -> 404" in line and "(bob)" in line for line in lines)
    text = "\n".join(lines)
    assert env.passwords["alice"] not in text
    assert env.headers["bob"]["Authorization"].split()[1] not in text


def test_each_job_s_start_and_end_are_logged(env: Env, caplog):
    caplog.set_level(logging.INFO, logger="hwut.scheduler")
    job = env.submit(limit=1).json["id"]
    assert env.wait(job).value == "FINISHED"
    lines = [r.getMessage() for r in caplog.records if r.name == "hwut.scheduler"]
    assert any(line.startswith(f"job {job} started on nucleo-f303re#0") for line in lines)
    assert any(line.startswith(f"job {job} FINISHED: stop reason limit") for line in lines)
