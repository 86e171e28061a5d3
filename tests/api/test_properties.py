"""Hypothesis properties: no client input gives a 5xx; only allowed transitions;
pagination never skips or repeats a job."""
from __future__ import annotations

import itertools

import pytest
from fixture_firmware import DOCUMENTED, FAULT, FORMATS, HELLO_1S, SEMIHOST, SPIN_LIMIT, image
from hwut_testenv import sim_board
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hwut.jobs import ENDED, TRANSITIONS, JobStatus, TransitionError
from hwut.store import JobStore

#: The documented fixture images: the only uploads a property makes to be accepted.
FIXTURE_IMAGES = {f"{n}.{f}": image(n, f) for n in DOCUMENTED for f in FORMATS}
real_firmware = st.sampled_from(sorted(FIXTURE_IMAGES))

BOARD = "nucleo-f303re"

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

PATHS = ["/apiv1/jobs/submit", "/apiv1/jobs", "/apiv1/jobs/1", "/apiv1/job/1/log",
         "/apiv1/jobs/1/is_finished", "/apiv1/jobs/1/other", "/apiv1/targets/boards",
         "/apiv1/targets/boards/nucleo-f303re", "/apiv1/targets/microcontrollers",
         "/apiv1/version", "/apiv1/auth_test", "/apiv1/jobs/99999999999999999999"]
text = st.text(max_size=30)
params = st.dictionaries(st.sampled_from(["board", "duration_limit_seconds", "comment",
                                          "limit", "offset", "status", "extended"])
                         | text, text | st.integers().map(str), max_size=4)
header_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                       max_size=40)
headers = st.dictionaries(st.sampled_from(["Accept", "Content-Type", "Range", "X-Foo",
                                           "Authorization"]), header_value, max_size=3)


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory):
    from hwut_testenv import BACKENDS, FAST_HASHER, Env, make_config

    from hwut.service import build_service
    config = make_config(tmp_path_factory.mktemp("prop"))
    service = build_service(config, BACKENDS, password_hasher=FAST_HASHER)
    env = Env(service)
    env.submit()
    yield env
    service.stop()


@SETTINGS
@given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"]),
       path=st.sampled_from(PATHS) | text.map(lambda s: "/apiv1/" + s),
       query=params, extra=headers,
       who=st.sampled_from(["anonymous", "alice", "admin"]),
       body=st.binary(max_size=200) | real_firmware.map(FIXTURE_IMAGES.get)
       | st.just(b"\x7fELF\x01\x01\x01"))
def test_no_input_gives_5xx(shared_env, method, path, query, extra, who, body):
    hdrs = {**shared_env.headers[who], **extra}
    try:
        r = shared_env.client.simulate_request(method, path, params=query, headers=hdrs,
                                               body=body)
    except (UnicodeEncodeError, ValueError):
        assume(False)  # the test client itself cannot send this
        return
    assert r.status_code < 500, (r.status_code, r.text)


@SETTINGS
@given(body=st.binary(max_size=300))
def test_any_upload_is_accepted_or_refused_with_4xx(shared_env, body):
    r = shared_env.client.simulate_put(
        "/apiv1/jobs/submit", params={"board": BOARD, "duration_limit_seconds": "1"},
        body=body, headers=shared_env.headers["alice"])
    assert r.status_code in (201, 400, 413, 415), r.text
    if r.status_code != 201:
        assert r.json["description"]


@SETTINGS
@given(name=real_firmware)
def test_every_fixture_image_is_accepted_in_its_format(shared_env, name):
    r = shared_env.client.simulate_put(
        "/apiv1/jobs/submit", params={"board": BOARD, "duration_limit_seconds": "1"},
        body=FIXTURE_IMAGES[name], headers=shared_env.headers["alice"])
    assert r.status_code == 201, r.text
    assert r.json["format"] == name.rsplit(".", 1)[1]


@settings(max_examples=80, deadline=None)
@given(steps=st.lists(st.sampled_from(list(JobStatus)), max_size=8))
def test_store_only_takes_allowed_transitions(tmp_path_factory, steps):
    store = JobStore(tmp_path_factory.mktemp("sm"), durable=False)
    job = store.submit("u", "b", 1, b"x", "bin")
    current = JobStatus.WAITING
    for wanted in steps:
        if wanted in TRANSITIONS[current]:
            assert store.transition(job.id, wanted).status is wanted
            current = wanted
        else:
            with pytest.raises(TransitionError):
                store.transition(job.id, wanted)
        assert store.get(job.id).status is current
    assert (current in ENDED) == (job.id not in {j.id for j in store.live_jobs()})
    store.close()


def test_transition_table_matches_the_lifecycle():
    reachable = {JobStatus.WAITING}
    for _ in range(4):
        reachable |= {t for s in reachable for t in TRANSITIONS[s]}
    assert reachable == set(JobStatus)
    for status in ENDED:
        assert TRANSITIONS[status] == frozenset()
    assert JobStatus.FINISHED not in TRANSITIONS[JobStatus.WAITING]
    assert JobStatus.RUNNING not in TRANSITIONS[JobStatus.WAITING]


@settings(max_examples=40, deadline=None)
@given(owners=st.lists(st.sampled_from(["a", "b"]), min_size=0, max_size=25),
       ended=st.sets(st.integers(0, 24)), limit=st.integers(1, 7),
       status=st.sampled_from([None, JobStatus.WAITING, JobStatus.CANCELED]),
       owner=st.sampled_from([None, "a"]))
def test_pagination_never_skips_or_repeats(tmp_path_factory, owners, ended, limit, status,
                                           owner):
    store = JobStore(tmp_path_factory.mktemp("page"), durable=False, shard_size=4)
    for i, who in enumerate(owners):
        job = store.submit(who, "b", 1, b"x", "bin")
        if i in ended:
            store.transition(job.id, JobStatus.CANCELED)
    everything = store.list(owner=owner, status=status, limit=1000)
    pages = []
    for offset in itertools.count(0, limit):
        page = store.list(owner=owner, status=status, limit=limit, offset=offset)
        pages.extend(page)
        if len(page) < limit:
            break
    assert [j.id for j in pages] == [j.id for j in everything]
    assert len({j.id for j in pages}) == len(pages)
    assert [j.id for j in everything] == sorted((j.id for j in everything), reverse=True)
    expected = [i + 1 for i, who in enumerate(owners)
                if (owner is None or who == owner)
                and (status is None or (status is JobStatus.CANCELED) == (i in ended))]
    assert sorted(j.id for j in everything) == expected
    store.close()


#: The detail of a job that passed its deadline (the test moves the scheduler's clock).
PAST_DEADLINE = "the job did not end within "
#: What a plan's step runs: firmware, board, and how its job ends if nobody cancels it.
RUNS = {
    "hello": ("hello", BOARD, ("FINISHED", "limit", None), HELLO_1S),
    "exit": ("semihost_exit", BOARD, ("FINISHED", "exit", 3), SEMIHOST),
    "fault": ("fault", BOARD, ("FINISHED", "fault", None), FAULT),
    "spin": ("spin", BOARD, None, b""),  # never ends by itself: canceled by admin below
    # never ends by itself: the scheduler's clock passes its deadline below (the real
    # sim backend is told through the run's token: an infrastructure error)
    "error": ("spin", BOARD, ("ERROR", "infrastructure_error", None), b""),
}


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(st.sampled_from(sorted(RUNS)), st.booleans()),
                     min_size=1, max_size=8))
def test_live_scheduler_only_takes_allowed_transitions(make_env, plan):
    env = make_env(boards=sim_board())
    seen: list[tuple[JobStatus | None, JobStatus]] = []
    store = env.service.store.jobs
    # every write of a live job, with the status before it, told under the store's lock
    store.listen(lambda before, job: seen.append((before, job.status)))
    ids = []
    for run, cancel in plan:
        firmware, board, _, _ = RUNS[run]
        limit = SPIN_LIMIT if firmware == "spin" else 1
        job_id = env.submit(firmware=firmware, board=board, limit=limit).json["id"]
        ids.append(job_id)
        if cancel:
            env.client.simulate_delete(f"/apiv1/jobs/{job_id}", headers=env.headers["alice"])
    for job_id, (run, cancel) in zip(ids, plan, strict=True):
        if run == "spin" and not cancel:
            env.client.simulate_delete(f"/apiv1/jobs/{job_id}", headers=env.headers["admin"])
        if run == "error" and not cancel:  # the only job running: the clock moves for all
            env.pass_deadlines(job_id)
        assert env.wait(job_id, timeout=10).ended
        job = store.get(job_id)
        outcome, log = RUNS[run][2:]
        if job.status is JobStatus.CANCELED:
            assert job.detail == f"canceled by {'alice' if cancel else 'admin'}"
        else:  # not canceled, or it ended before the cancel came
            assert (job.status.value, job.stop_reason, job.exit_code) == outcome
            if job.status is JobStatus.FINISHED:
                assert env.log(job_id) == log
            else:
                assert job.detail.startswith(PAST_DEADLINE)
    assert all(before is None and after is JobStatus.WAITING  # a submit
               or before is not None and after in TRANSITIONS[before]
               for before, after in seen), seen
    env.service.stop()
