"""A job's files as streams: offsets, byte ranges, and the bound on streams at once."""
from __future__ import annotations

import falcon
import falcon.testing
from hwut_testenv import Env

from hwut.jobs import JobStatus
from hwut.resources import jobs
from hwut.resources.files import StreamSlots


def finished_log(env: Env) -> tuple[int, bytes]:
    job_id = env.submit(firmware="hello", limit=1).json["id"]
    assert env.wait(job_id) is JobStatus.FINISHED
    return job_id, env.log(job_id)


def ranged(env: Env, path: str, spec: str, **kwargs):
    return env.client.simulate_get(path, headers={**env.headers["alice"], "Range": spec},
                                   **kwargs)


def test_offset_range_and_suffix(env: Env):
    job_id, log = finished_log(env)
    path = f"/apiv1/jobs/{job_id}/log"
    r = env.get(path, params={"offset": 10})
    assert r.status_code == 200 and r.content == log[10:]
    assert r.headers["x-hwut-size"] == str(len(log)) and r.headers["accept-ranges"] == "bytes"
    r = ranged(env, path, "bytes=5-9")
    assert r.status_code == 206 and r.content == log[5:10]
    assert r.headers["content-range"] == f"bytes 5-9/{len(log)}"
    r = ranged(env, path, "bytes=-7")
    assert r.status_code == 206 and r.content == log[-7:]
    r = ranged(env, path, "bytes=100-")
    assert r.status_code == 206 and r.content == log[100:]
    r = env.get(path, params={"offset": 10 ** 9})
    assert r.status_code == 200 and r.content == b""  # a poller that has everything


def test_a_range_past_the_end_or_with_an_offset_is_refused(env: Env):
    job_id, log = finished_log(env)
    path = f"/apiv1/jobs/{job_id}/log"
    r = ranged(env, path, f"bytes={len(log)}-")
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(log)}"
    assert "description" in r.json
    r = ranged(env, path, "bytes=0-1", params={"offset": 3})
    assert r.status_code == 400 and "not both" in r.json["description"]


class _SignedIn:
    def __init__(self, user):
        self.user = user

    def process_request(self, req, resp):
        req.context.user = self.user


def test_past_the_stream_slots_a_reader_is_told_to_retry(env: Env):
    job_id, log = finished_log(env)
    slots = StreamSlots(1)
    service = env.service
    app = falcon.App(middleware=[_SignedIn(service.store.users.get("alice"))])
    app.add_route("/log/{job_id:int}", jobs.LogResource(service.store, service.scheduler,
                                                        service.config, slots))
    client = falcon.testing.TestClient(app)
    held = slots.take()
    assert held is not None
    r = client.simulate_get(f"/log/{job_id}")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    held()
    r = client.simulate_get(f"/log/{job_id}")
    assert r.status_code == 200 and r.content == log
    assert slots.take() is not None  # the stream gave its slot back when it was closed
