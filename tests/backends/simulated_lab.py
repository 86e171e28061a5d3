"""An emulated board registered behind the simulated probe for one test, then gone."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hwut.backends.simlab import PROBES, start_board


@contextmanager
def registered_board(uid: str, **board: Any) -> Iterator[Any]:
    """A NUCLEO-F303RE (``start_board``'s arguments) that pyOCD finds as probe ``uid``."""
    started = start_board("nucleo-f303re", **board)
    PROBES.register(uid, started)
    try:
        yield started
    finally:
        PROBES.unregister(uid)
        started.close()
