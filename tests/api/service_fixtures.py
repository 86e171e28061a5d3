"""The service fixtures of ``tests/api/conftest.py`` (``make_env``, ``env``) under a module
name of their own, for test folders outside ``tests/api`` to import: several folders
have a ``conftest`` module, so importing one by that name picks whichever came first.
Unlike the API tests' own, a job may take a minute of wall time before it counts as hung."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hwut_testenv import BACKENDS, FAST_HASHER, Env, make_config

from hwut.service import Service, build_service


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[..., Env]]:
    services: list[Service] = []

    def factory(start: bool = True, **values: Any) -> Env:
        # The API tests' quick hang backstop (about 2 s of wall time for a 1 s job) is
        # for the failure tests; on a loaded machine it would kill these jobs as hung.
        values.setdefault("scheduler_hang_grace_seconds", 60.0)
        config = make_config(tmp_path / f"data{len(services)}", **values)
        service = build_service(config, BACKENDS, password_hasher=FAST_HASHER)
        services.append(service)
        if start:
            service.start()
        return Env(service)

    yield factory
    for service in services:
        service.stop()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()
