"""The service fixtures (``make_env``, ``env``): a real Store on tmp_path, the scheduler
on the real sim backend, deadlines on a manual clock. A module of their own so that test
folders outside ``tests/api`` can import them: several folders have a ``conftest``
module, so importing one by that name picks whichever came first."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hwut_testenv import BACKENDS, FAST_HASHER, Env, ManualClock, make_config

from hwut.service import Service, build_service


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[..., Env]]:
    services: list[Service] = []

    def factory(start: bool = True, **values: Any) -> Env:
        config = make_config(tmp_path / f"data{len(services)}", **values)
        # deadlines pass only when a test moves this clock: a loaded machine never
        # makes a job count as hung
        clock = ManualClock()
        service = build_service(config, BACKENDS, monotonic=clock,
                                password_hasher=FAST_HASHER)
        services.append(service)
        if start:
            service.start()
        return Env(service, clock)

    yield factory
    for service in services:
        service.stop()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()
