"""Finding backends through the ``hwut.backends`` entry-point group."""
from __future__ import annotations

import logging
from importlib.metadata import entry_points

from .base import Backend

log = logging.getLogger(__name__)

GROUP = "hwut.backends"


def load_backends() -> dict[str, type[Backend]]:
    """Every installed backend by name; a broken plug-in is logged and skipped."""
    found: dict[str, type[Backend]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception:  # a third-party plug-in may fail in any way
            log.exception("backend plug-in %r failed to load; skipped", ep.name)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            log.error("backend plug-in %r is not a Backend subclass; skipped", ep.name)
            continue
        found[ep.name] = cls
    return found
