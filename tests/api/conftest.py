"""A real Store on tmp_path, the scheduler on the real sim backend, falcon's test client."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # hwut_testenv, fixture_firmware, ...

from disk_support import tiny_disk_at
from hwut_testenv import Env
from service_fixtures import env, make_env  # noqa: F401 (fixtures)


@pytest.fixture
def idle_env(make_env: Callable[..., Env]) -> Env:  # noqa: F811 (the fixture)
    """Workers not started: jobs stay WAITING."""
    return make_env(start=False)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs under tmp_path (skipped where mounting is not allowed)."""
    yield from tiny_disk_at(tmp_path / "disk")
