"""Quotas and fairness: the waiting-jobs limit (429), the running-instances limit, the
round-robin between owners, and ``queue_position`` telling the real order."""
from __future__ import annotations

import tempfile
import time

from fixture_firmware import SPIN_LIMIT
from hwut_testenv import Env, bearer, sim_board
from hypothesis import given, settings
from hypothesis import strategies as st

from hwut.jobs import JobStatus, format_time
from hwut.store import JobStore, QuotaExceeded

BOARD = "nucleo-f303re"


def add_user(env: Env, name: str) -> None:
    _, _, token = env.service.store.users.add(name)
    env.headers[name] = bearer(token)


def position(env: Env, job_id: int, user: str) -> int | None:
    r = env.get(f"/apiv1/jobs/{job_id}", user)
    assert r.status_code == 200, r.text
    return r.json.get("queue_position")


def drain(store: JobStore, board: str = BOARD, max_running: int | None = None) -> list[int]:
    """Claim until nothing is handed out (as instances that never free up would)."""
    order = []
    while (job := store.claim_next(board, f"{board}#0", max_running=max_running)) is not None:
        order.append(job.id)
    return order


def finish(store: JobStore, job_id: int) -> None:
    store.transition(job_id, JobStatus.RUNNING, started=format_time(store.clock()))
    store.transition(job_id, JobStatus.FINISHED, finished=format_time(store.clock()))


# ---- the waiting-jobs quota -----------------------------------------------------------

def test_submit_past_the_waiting_limit_is_429_with_retry_after(make_env):
    env = make_env(start=False, quota_max_waiting_jobs=2)
    first = [env.submit().json["id"] for _ in range(2)]
    r = env.submit()
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert r.json["title"] == "Too Many Requests"
    assert "You have 2 jobs waiting; the limit is 2 waiting jobs per user" \
        in r.json["description"]
    # refused before the body is read: a body that is no firmware gets 429, not 415
    assert env.submit(body=b"not firmware").status_code == 429
    assert env.service.store.jobs.waiting_count("alice") == 2
    assert env.submit(user="bob").status_code == 201  # the limit is per user
    assert env.client.simulate_delete(f"/apiv1/jobs/{first[0]}",
                                      headers=env.headers["alice"]).status_code == 204
    assert env.submit().status_code == 201  # room again


def test_claimed_jobs_no_longer_count_as_waiting(make_env):
    env = make_env(start=False, quota_max_waiting_jobs=1)
    assert env.submit().status_code == 201
    assert env.submit().status_code == 429
    env.service.store.jobs.claim_next(BOARD, f"{BOARD}#0")
    assert env.submit().status_code == 201


def test_the_store_checks_the_quota_under_its_lock_and_keeps_nothing(tmp_path):
    store = JobStore(tmp_path, durable=False)
    store.submit("u", "b", 1, b"x", "bin", max_waiting=1)
    files = set((tmp_path / "artifacts").iterdir())
    try:
        store.submit("u", "b", 1, b"y", "bin", max_waiting=1)
    except QuotaExceeded as exc:
        assert (exc.owner, exc.limit, exc.waiting) == ("u", 1, 1)
    else:
        raise AssertionError("no QuotaExceeded")
    assert set((tmp_path / "artifacts").iterdir()) == files  # the upload was removed
    assert store.count() == 1 and store.last_id == 1


def test_admins_are_exempt_from_the_waiting_limit(make_env):
    env = make_env(start=False, quota_max_waiting_jobs=1)
    assert [env.submit(user="admin").status_code for _ in range(3)] == [201] * 3
    strict = make_env(start=False, quota_max_waiting_jobs=1, quota_admins_exempt=False)
    assert [strict.submit(user="admin").status_code for _ in range(2)] == [201, 429]


def test_zero_means_no_waiting_limit(make_env):
    env = make_env(start=False, quota_max_waiting_jobs=0)
    assert [env.submit().status_code for _ in range(3)] == [201] * 3


# ---- fairness ---------------------------------------------------------------------------

def test_owners_take_turns_in_the_order_of_their_first_job(make_env):
    env = make_env(start=False)
    add_user(env, "carol")
    submits = ["alice", "alice", "alice", "bob", "alice", "carol", "carol", "bob", "carol"]
    ids = {}
    for n, user in enumerate(submits):
        ids[(user, n)] = env.submit(user=user).json["id"]
    a = [ids[k] for k in ids if k[0] == "alice"]
    b = [ids[k] for k in ids if k[0] == "bob"]
    c = [ids[k] for k in ids if k[0] == "carol"]
    expected = [a[0], b[0], c[0], a[1], b[1], c[1], a[2], c[2], a[3]]
    owner_of = {job_id: user for (user, _), job_id in ids.items()}
    shown = {job_id: position(env, job_id, owner_of[job_id]) for job_id in expected}
    assert sorted(shown, key=shown.get) == expected
    assert sorted(shown.values()) == list(range(1, len(expected) + 1))
    assert drain(env.service.store.jobs) == expected


def test_a_newcomer_runs_next_after_the_current_ones(make_env):
    env = make_env(start=False)
    store = env.service.store.jobs
    many = [env.submit().json["id"] for _ in range(3)]
    many += [store.submit("alice", BOARD, 1, b"x", "bin").id for _ in range(97)]
    assert store.claim_next(BOARD, f"{BOARD}#0").id == many[0]  # running
    assert position(env, many[-1], "alice") == 99
    late = env.submit(user="bob").json["id"]
    assert position(env, late, "bob") == 1
    assert position(env, many[1], "alice") == 2
    assert position(env, many[-1], "alice") == 100
    assert store.claim_next(BOARD, f"{BOARD}#1").id == late


def test_the_turns_are_per_board(tmp_path):
    store = JobStore(tmp_path, durable=False)
    a1 = store.submit("a", "x", 1, b"x", "bin").id
    b1 = store.submit("b", "y", 1, b"x", "bin").id
    a2 = store.submit("a", "x", 1, b"x", "bin").id
    b2 = store.submit("b", "x", 1, b"x", "bin").id
    assert [store.queue_position(store.get(i)) for i in (a1, a2, b2, b1)] == [1, 3, 2, 1]
    assert drain(store, "x") == [a1, b2, a2]
    assert drain(store, "y") == [b1]


def test_a_job_given_back_keeps_its_place(tmp_path):
    """A claimed job the server stopped before it ran (QUEUED -> WAITING) goes back to
    the head of its owner's queue."""
    store = JobStore(tmp_path, durable=False)
    a1, a2 = (store.submit("a", "x", 1, b"x", "bin").id for _ in range(2))
    assert store.claim_next("x", "x#0").id == a1
    store.transition(a1, JobStatus.WAITING, instance=None)
    assert store.queue_position(store.get(a1)) == 1
    assert drain(store, "x") == [a1, a2]


def test_the_queue_is_rebuilt_when_the_store_opens(tmp_path):
    store = JobStore(tmp_path, durable=False)
    a1, b1, a2 = (store.submit(o, "x", 1, b"x", "bin").id for o in "aba")
    assert store.claim_next("x", "x#0").id == a1
    store.close()
    store = JobStore(tmp_path, durable=False)  # a1 QUEUED: recover() makes it ERROR
    assert store.waiting_count("a") == 1 and store.waiting_count("b") == 1
    assert [store.queue_position(store.get(i)) for i in (b1, a2)] == [1, 2]
    assert store.claim_next("x", "x#1", max_running=1).id == b1
    assert store.claim_next("x", "x#2", max_running=1) is None  # a1 still holds one
    assert store.recover() == [a1, b1]
    assert drain(store, "x", max_running=1) == [a2]
    store.close()


ops = st.lists(st.one_of(st.tuples(st.just("submit"), st.sampled_from("abcd"),
                                   st.sampled_from("xy")),
                         st.tuples(st.just("claim"), st.sampled_from("xy")),
                         st.tuples(st.just("cancel"), st.integers(0, 40))),
               max_size=40)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_queue_position_is_the_order_claim_next_hands_jobs_out(steps):
    with tempfile.TemporaryDirectory() as tmp:
        store = JobStore(tmp, durable=False)
        try:
            for step in steps:
                if step[0] == "submit":
                    store.submit(step[1], step[2], 1, b"x", "bin")
                elif step[0] == "claim":
                    store.claim_next(step[1], f"{step[1]}#0")
                else:
                    waiting = [j for j in store.live_jobs() if j.status is JobStatus.WAITING]
                    if waiting:
                        job = waiting[step[1] % len(waiting)]
                        store.transition(job.id, JobStatus.CANCELED)
            for board in "xy":
                queued = [j for j in store.live_jobs()
                          if j.board == board and j.status is JobStatus.WAITING]
                shown = {j.id: store.queue_position(j) for j in queued}
                order = drain(store, board)
                assert [shown[i] for i in order] == list(range(1, len(queued) + 1))
        finally:
            store.close()


# ---- the running-instances quota --------------------------------------------------------

def test_a_user_at_the_running_limit_waits_while_others_run(make_env):
    env = make_env(start=False, boards=sim_board(2), quota_max_running_per_user=1)
    scheduler, store = env.service.scheduler, env.service.store.jobs
    limit = scheduler.max_running(env.service.config.board(BOARD))
    assert limit == 1
    a = [env.submit().json["id"] for _ in range(3)]
    assert store.claim_next(BOARD, f"{BOARD}#0", max_running=limit).id == a[0]
    assert store.claim_next(BOARD, f"{BOARD}#1", max_running=limit) is None
    assert store.get(a[1]).status is JobStatus.WAITING
    b = env.submit(user="bob").json["id"]
    assert store.claim_next(BOARD, f"{BOARD}#1", max_running=limit).id == b
    finish(store, a[0])
    assert store.claim_next(BOARD, f"{BOARD}#0", max_running=limit).id == a[1]
    finish(store, b)
    assert store.claim_next(BOARD, f"{BOARD}#1", max_running=limit) is None  # a[1] runs


def test_the_default_running_limit_is_every_instance(make_env):
    env = make_env(start=False, boards=sim_board(2))
    assert env.service.scheduler.max_running(env.service.config.board(BOARD)) is None
    a = [env.submit().json["id"] for _ in range(2)]
    assert drain(env.service.store.jobs) == a


def test_workers_keep_to_the_running_limit(make_env):
    env = make_env(boards=sim_board(2), quota_max_running_per_user=1)
    a1, a2 = (env.submit(firmware="spin", limit=SPIN_LIMIT).json["id"] for _ in range(2))
    assert env.wait(a1, lambda s: s is JobStatus.RUNNING) is JobStatus.RUNNING
    time.sleep(0.3)  # the idle instance had time to take a2, and must not
    assert env.service.store.jobs.get(a2).status is JobStatus.WAITING
    assert position(env, a2, "alice") == 1
    b = env.submit(user="bob", firmware="spin", limit=SPIN_LIMIT).json["id"]
    assert env.wait(b, lambda s: s is JobStatus.RUNNING) is JobStatus.RUNNING
    for job_id in (a1, b):
        assert env.client.simulate_delete(f"/apiv1/jobs/{job_id}",
                                          headers=env.headers["admin"]).status_code == 204
    assert env.wait(a2, lambda s: s is JobStatus.RUNNING) is JobStatus.RUNNING
    env.client.simulate_delete(f"/apiv1/jobs/{a2}", headers=env.headers["admin"])
    assert env.wait(a2) is JobStatus.CANCELED
