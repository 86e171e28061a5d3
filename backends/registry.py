"""Finding backends through the ``hwut.backends`` entry-point group."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import entry_points

from .base import Backend

log = logging.getLogger(__name__)

GROUP = "hwut.backends"


class InstalledBackends(dict[str, type[Backend]]):
    """Backend classes by entry-point name, plus why each broken plug-in did not load.

    A broken plug-in is installed all the same: keeping its reason lets the server say
    "unavailable: <reason>" for boards that use it instead of "not installed".
    """

    def __init__(self, found: Mapping[str, type[Backend]] | None = None,
                 failures: Mapping[str, str] | None = None) -> None:
        super().__init__(found or {})
        self.failures: dict[str, str] = dict(failures or {})


def load_backends() -> InstalledBackends:
    """Every installed backend by name; a broken plug-in is logged and skipped."""
    found: dict[str, type[Backend]] = {}
    failures: dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a third-party plug-in may fail in any way
            log.exception("backend plug-in %r failed to load; skipped", ep.name)
            failures[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            log.error("backend plug-in %r is not a Backend subclass; skipped", ep.name)
            failures[ep.name] = f"{ep.value} is not a Backend subclass"
            continue
        found[ep.name] = cls
    return InstalledBackends(found, failures)


def load_failure(name: str, backends: Mapping[str, type[Backend]]) -> str | None:
    """Why the installed plug-in ``name`` did not load, if ``backends`` knows."""
    failures: Mapping[str, str] = getattr(backends, "failures", {})
    return failures.get(name)
