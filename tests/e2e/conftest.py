"""End-to-end fixtures: the real waitress server in a subprocess."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # hwut_e2e
sys.path.insert(0, str(Path(__file__).parents[1] / "api"))  # hwut_fakes

from hwut_e2e import Server, fake_config


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path, fake_config(tmp_path)).start()
    yield server
    server.stop()
