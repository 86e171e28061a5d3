"""The broker's consumer timeout and late acknowledgement: a worker host that would hold
a job's message past it (here: a host that waits an hour for the server before it gives
a job up) does not run the job; the job ends ERROR saying why, through the real broker,
and the host's instance is not counted as failing.

Why no test with a short timeout on the broker itself: RabbitMQ 3.10 (Debian's) has the
node-wide ``consumer_timeout`` only and evaluates it once a minute (a 5 s timeout closed
a consumer's channel after 60 s), so such a test would take minutes and test RabbitMQ;
the server's own check is in tests/api/test_broker_config.py."""
from __future__ import annotations

from cluster import wait_until


def test_a_host_does_not_run_a_job_that_would_outlive_the_consumer_timeout(make_cluster):
    cluster = make_cluster()
    api = cluster.api
    worker = cluster.worker("slow-host", None, give_up_s=3600.0)
    wait_until(lambda: [i for i in api.remote_instances() if i["health"] == "ok"], 90,
               "the host")
    done = api.wait(api.submit("hello", limit=1))
    assert (done["status"], done["hosts"], done["retries"]) == \
        ("ERROR", ["slow-host/nucleo-f303re#0"], 0), done
    assert done["detail"].startswith(
        "not run: on nucleo-f303re#0 (backend sim) this job could hold its broker message "
        "for 7296 s, longer than the broker's consumer timeout (1800 s"), done["detail"]
    shown = next(i for i in api.remote_instances() if i["host"] == "slow-host")
    assert (shown["state"], shown["consecutive_failures"]) == ("idle", 0), shown
    assert "recorded" in worker.log()
