"""A real Store on tmp_path, the scheduler on the real sim backend, falcon's test client."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # hwut_testenv, fixture_firmware, ...

from disk_support import tiny_disk_at
from hwut_testenv import BACKENDS, FAST_HASHER, Env, ManualClock, make_config

from hwut.service import Service, build_service


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[..., Env]]:
    services: list[Service] = []

    def factory(start: bool = True, **values: Any) -> Env:
        config = make_config(tmp_path / f"data{len(services)}", **values)
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


@pytest.fixture
def idle_env(make_env: Callable[..., Env]) -> Env:
    """Workers not started: jobs stay WAITING."""
    return make_env(start=False)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs under tmp_path (skipped where mounting is not allowed)."""
    yield from tiny_disk_at(tmp_path / "disk")
