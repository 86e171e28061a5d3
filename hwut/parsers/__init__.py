"""Test framework console output turned into test cases (``--parse unity`` and friends).

Each parser reads the log one line at a time (without its line end, as the verdict's
matcher hands it on) and keeps what it found: the test cases with their verdict,
duration and message, and whether the framework printed its final summary (``done``),
so a job can end there. Memory is bounded: at most :data:`MAX_CASES` cases are kept
(the counts go on), a message is at most :data:`MAX_MESSAGE` characters.

More frameworks plug in through the ``hwut.parsers`` entry-point group (a class like
:class:`Parser`); the ones here are built in.
"""
from __future__ import annotations

from importlib.metadata import entry_points

from .base import MAX_CASES, MAX_MESSAGE, Parser, TestCase
from .cpputest import CppUTestParser
from .unity import UnityParser
from .ztest import ZtestParser

__all__ = ["MAX_CASES", "MAX_MESSAGE", "Parser", "TestCase", "names", "make"]

BUILTIN: dict[str, type[Parser]] = {"unity": UnityParser, "ztest": ZtestParser,
                                    "cpputest": CppUTestParser}


def _installed() -> dict[str, type[Parser]]:
    found = dict(BUILTIN)
    for ep in entry_points(group="hwut.parsers"):
        if ep.name not in found:
            try:
                cls = ep.load()
            except Exception:  # noqa: BLE001, S112 - a broken plug-in is not offered
                continue
            if isinstance(cls, type) and issubclass(cls, Parser):
                found[ep.name] = cls
    return found


def names() -> list[str]:
    return sorted(_installed())


def make(name: str) -> Parser:
    """A fresh parser; ValueError names the known ones."""
    cls = _installed().get(name)
    if cls is None:
        raise ValueError(f"unknown test output format {name!r}; known: {', '.join(names())}")
    return cls()
