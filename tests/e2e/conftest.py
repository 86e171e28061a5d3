"""End-to-end fixtures: the real waitress server in a subprocess, jobs on the sim backend."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # hwut_e2e
sys.path.insert(0, str(Path(__file__).parents[1] / "api"))  # fixture_firmware

from hwut_e2e import Server, sim_config


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``hwut serve`` with one sim instance of nucleo-f303re."""
    server = Server(tmp_path, sim_config(tmp_path)).start()
    yield server
    server.stop()
