"""Fixtures of the scale-out tests: a RabbitMQ node (one per session, restartable), two
network namespaces, and per test an API server with a ``[broker]`` table and worker
hosts. Skipped, with the reason, only where the machine cannot run them (not root, no
``ip``, no rabbitmq-server, no Celery)."""
from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
sys.path.insert(0, str(Path(__file__).parent))

from cluster import (  # noqa: E402
    TOKEN,
    Api,
    Namespace,
    Rabbit,
    Worker,
    make_namespace,
    remove_namespace,
    why_not_runnable,
)
from hwut_testenv import BACKENDS, FAST_HASHER, make_config, sim_board  # noqa: E402

from hwut.service import build_service, make_server  # noqa: E402

REASON = why_not_runnable()


@pytest.fixture(autouse=True, scope="session")
def _runnable() -> None:
    """Under CI a machine that cannot run them fails these tests instead of skipping."""
    if REASON is not None:
        pytest.fail(f"scale-out tests: {REASON}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/scaleout" in str(item.path):
            item.add_marker(pytest.mark.scaleout)
            item.add_marker(pytest.mark.slow)
            if REASON is not None and not os.environ.get("CI"):
                item.add_marker(pytest.mark.skip(reason=f"scale-out tests: {REASON}"))


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rabbit]:
    node = Rabbit(tmp_path_factory.mktemp("rabbit"))
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def namespaces() -> Iterator[list[Namespace]]:
    tag = f"{os.getpid() % 4096:03x}"
    made: list[Namespace] = []
    try:
        for index in (0, 1):
            made.append(make_namespace(tag, index))
        yield made
    finally:
        for ns in made:
            remove_namespace(ns)


@dataclasses.dataclass
class Cluster:
    api: Api
    port: int
    rabbit: Rabbit
    base: Path
    workers: list[Worker]
    service: Any

    def worker(self, name: str, namespace: Namespace | None, instances: int = 1,
               **kwargs: Any) -> Worker:
        host = namespace.gateway if namespace is not None else "127.0.0.1"
        worker = Worker(self.base, name, self.rabbit.url(host), f"http://{host}:{self.port}",
                        instances, namespace, **kwargs)
        self.workers.append(worker)
        worker.start()
        return worker


@pytest.fixture
def make_cluster(rabbit: Rabbit, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[tuple[Cluster, Any]] = []

    def factory(**broker: Any) -> Cluster:
        config = make_config(tmp_path / "data", boards=sim_board(1),
                             scheduler_poll_seconds=0.2)
        config = dataclasses.replace(config, broker={
            "url": rabbit.url(), "worker_token": TOKEN, "lost_after_seconds": 20,
            "host_stale_seconds": 3, "max_attempts": 3, **broker})
        service = build_service(config, BACKENDS, password_hasher=FAST_HASHER)
        _, _, token = service.store.users.add("alice")
        service.start()
        server = make_server(service, "0.0.0.0", 0, 8).start()
        cluster = Cluster(Api(server.url, token), server.port, rabbit, tmp_path, [], service)
        made.append((cluster, server))
        return cluster

    yield factory
    for cluster, server in made:
        for worker in cluster.workers:  # all told at once: their warm shutdowns overlap
            worker.terminate()
        for worker in cluster.workers:
            worker.stop()
        server.stop()
        cluster.service.stop()
        _purge(rabbit)


def _purge(rabbit: Rabbit) -> None:
    """What a test left in the queue must not reach the next test's workers."""
    import subprocess

    from cluster import RABBIT_BIN
    subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", rabbit.node, "purge_queue",
                    "hwut.board.nucleo-f303re"], env=rabbit.env, capture_output=True,
                   timeout=60)
