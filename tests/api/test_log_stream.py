"""Live logs without polling (issue 16): GET /jobs/{id}/log/stream over the real waitress
server, jobs on the real sim backend; cancel, reconnect, bounds, and the client."""
from __future__ import annotations

import base64
import json
import threading
import time

import cli_served
import httpx
import pytest
from cli_served import Served
from fixture_firmware import HELLO_BANNER, HELLO_COUNTS, image
from httpx_sse import connect_sse

from hwut import client as hc
from hwut.client import Client, Settings
from hwut.jobs import JobStatus
from hwut.resources import stream

serve, served = cli_served.serve, cli_served.served  # the fixtures


def http(s: Served, who: str = "alice") -> httpx.Client:
    return httpx.Client(base_url=s.url + "/apiv1", headers=s.env.headers[who], timeout=30)


def submit(s: Served, limit: int = 30, **params) -> int:
    r = s.env.submit(limit=limit, **params)
    assert r.status_code == 201, r.text
    return r.json["id"]


def events(h: httpx.Client, job_id: int, headers=None, params=None, stop=None):
    """(event, id, data) until the stream closes or ``stop`` says so."""
    got = []
    with connect_sse(h, "GET", f"/jobs/{job_id}/log/stream", headers=headers or {},
                     params=params or {}) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for sse in source.iter_sse():
            got.append((sse.event, sse.id, sse.data))
            if stop is not None and stop(got):
                break
    return got


def log_of(got) -> bytes:
    return b"".join(base64.b64decode(d) for e, _, d in got if e == "log")


def test_log_arrives_while_the_job_runs(served: Served):
    job_id = submit(served, limit=300)
    with http(served) as h:
        got = events(h, job_id, stop=lambda g: b"count=2" in log_of(g))
        # pushed while the job still runs: nothing waited for its end
        assert served.env.service.store.jobs.get(job_id).status is JobStatus.RUNNING
        assert [json.loads(d)["status"] for e, _, d in got if e == "status"][-1] == "RUNNING"
        h.delete(f"/jobs/{job_id}")


def test_the_stream_ends_with_the_outcome_and_verdict(served: Served):
    job_id = submit(served, limit=30, fail="count=4")
    with http(served) as h:
        got = events(h, job_id)
    assert got[0][0] == "status"
    assert got[-1][0] == "end"
    end = json.loads(got[-1][2])
    assert end["status"] == "FINISHED" and end["verdict"] == "failed"
    data = log_of(got)
    assert data.startswith(HELLO_BANNER) and b"count=4\r\n" in data
    assert int(got[-1][1]) == len(data)


def test_reconnect_from_last_event_id_loses_and_repeats_nothing(served: Served):
    job_id = submit(served, limit=2)
    with http(served) as h:
        part = events(h, job_id, stop=lambda g: sum(e == "log" for e, _, _ in g) >= 2)
        last_id = [i for e, i, _ in part if e == "log"][-1]
        rest = events(h, job_id, headers={"Last-Event-ID": last_id})
        also = events(h, job_id, params={"offset": "5"})
    whole = log_of(part) + log_of(rest)
    assert whole == HELLO_BANNER + HELLO_COUNTS[:len(whole) - len(HELLO_BANNER)]
    assert rest[-1][0] == "end" and int(rest[-1][1]) == len(whole)
    assert log_of(also) == whole[5:]


def test_cancel_ends_the_stream_with_canceled(served: Served):
    job_id = submit(served, limit=300, firmware="spin")
    with http(served) as h:
        threading.Timer(0.5, lambda: h.delete(f"/jobs/{job_id}")).start()
        got = events(h, job_id)
    assert got[-1][0] == "end"
    assert json.loads(got[-1][2])["status"] == "CANCELED"


def test_others_and_bad_resume_points_are_refused(served: Served):
    job_id = submit(served, limit=1)
    with http(served, "bob") as h:
        assert h.get(f"/jobs/{job_id}/log/stream").status_code == 403
    with http(served) as h:
        r = h.get(f"/jobs/{job_id}/log/stream", headers={"Last-Event-ID": "x; rm"})
        assert r.status_code == 400
        assert h.get("/jobs/999999/log/stream").status_code == 404


def test_streams_are_bounded(serve, monkeypatch):
    s = serve(server_threads=4)  # one stream at a time
    monkeypatch.setattr(stream, "MAX_STREAM_S", 1.5)
    job_id = submit(s, limit=300, firmware="spin")
    with http(s) as h, http(s) as h2:
        with connect_sse(h, "GET", f"/jobs/{job_id}/log/stream") as source:
            next(source.iter_sse())
            r = h2.get(f"/jobs/{job_id}/log/stream")
            assert r.status_code == 503 and r.headers["Retry-After"] == "2"
        # the slot is free again once the server noticed the client left (next keepalive)
        deadline = time.monotonic() + 5
        while h.get(f"/jobs/{job_id}/log/stream", params={"offset": 10**9}).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # a stream closes after MAX_STREAM_S without "end": the client reconnects
        t0 = time.monotonic()
        got = events(h, job_id)
        assert got[-1][0] != "end" and time.monotonic() - t0 < 10
        h.delete(f"/jobs/{job_id}")


def test_client_follow_reconnects_across_stream_bounds(serve, monkeypatch):
    s = serve()
    monkeypatch.setattr(stream, "MAX_STREAM_S", 0.3)
    job_id = submit(s, limit=2)
    seen: list[bytes] = []
    with Client(Settings(s.url, s.token("alice"))) as client:
        job = client.follow(job_id, on_log=seen.append, timeout=60)
    assert job["status"] == "FINISHED"
    data = b"".join(seen)
    assert data == HELLO_BANNER + HELLO_COUNTS[:len(data) - len(HELLO_BANNER)]
    assert data == s.env.log(job_id)


def test_client_follow_times_out(served: Served):
    job_id = submit(served, limit=300, firmware="spin")
    with Client(Settings(served.url, served.token("alice"))) as client:
        with pytest.raises(hc.WaitTimeout) as err:
            client.follow(job_id, timeout=0.5)
        client.cancel(job_id)
    assert err.value.exit_code == hc.EXIT_TIMEOUT


def test_client_falls_back_to_polling_without_the_route(serve, monkeypatch):
    s = serve()
    app = s.env.service.app
    # an older server: the route answers 404 as an unknown path does
    monkeypatch.setattr(stream.LogStreamResource, "on_get", _not_found)
    job_id = submit(s, limit=1)
    with Client(Settings(s.url, s.token("alice"))) as client:
        job = client.follow(job_id, timeout=30)
    assert job["status"] == "FINISHED" and app is s.env.service.app


def _not_found(self, req, resp, job_id):
    import falcon
    raise falcon.HTTPNotFound()


def test_image_is_hello():
    assert image("hello")
