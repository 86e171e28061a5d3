"""Talking to a running job from a terminal: ``hwut write``, ``hwut press`` and
``hwut console`` (the log on stdout, the lines typed on stdin into the board's
console, as a serial terminal does).

A command line cannot carry a carriage return, and most firmware consoles end a line
with one, so the text given to ``hwut write`` knows a few backslash escapes; and the
console sends each line with the end the firmware expects (``--eol``).
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .client import ENDED, Client, HwutError
from .liveinput import MAX_TEXT_BYTES

#: What ``--eol`` names.
EOLS = {"cr": "\r", "lf": "\n", "crlf": "\r\n"}
_ESCAPES = {"r": "\r", "n": "\n", "t": "\t", "\\": "\\", "0": "\0"}
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.?)", re.S)
#: Wall seconds a console waits for its job to start taking input.
READY_TIMEOUT_S = 600.0


def unescape(text: str) -> str:
    r"""``\r``, ``\n``, ``\t``, ``\0``, ``\\`` and ``\xNN``; ValueError for any other."""
    def one(match: re.Match[str]) -> str:
        code = match[1]
        if code.startswith("x") and len(code) == 3:
            return chr(int(code[1:], 16))
        if code in _ESCAPES:
            return _ESCAPES[code]
        raise ValueError(f"unknown escape '\\{code}' (known: \\r \\n \\t \\0 \\\\ \\xNN)")
    return _ESCAPE.sub(one, text)


def pieces(text: str) -> list[str]:
    """``text`` cut where needed so that no piece is over the server's bound for one
    input (UTF-8 bytes), never inside a character."""
    out: list[str] = []
    piece: list[str] = []
    size = 0
    for char in text:
        n = len(char.encode())
        if size + n > MAX_TEXT_BYTES:
            out.append("".join(piece))
            piece, size = [], 0
        piece.append(char)
        size += n
    if piece:
        out.append("".join(piece))
    return out


def send_text(client: Client, job_id: int, text: str, ready_timeout: float) -> dict[str, Any]:
    """All of ``text``, in pieces the server takes, waiting out its rate limit (429);
    the answer to the last piece."""
    answer: dict[str, Any] = {}
    for piece in pieces(text):
        while True:
            try:
                answer = client.write(job_id, piece, ready_timeout)
                break
            except HwutError as exc:
                if exc.status != 429:
                    raise
                client.sleep(0.25)
    return answer


class Console:
    """Lines from ``lines`` (stdin) into the job while ``follow`` streams its log; the
    typing runs on its own thread with its own client, and stops at the end of the
    lines or when the job stops taking input. ``errors`` gets what went wrong."""

    def __init__(self, make_client: Callable[[], Client], job_id: int, eol: str,
                 errors: Callable[[str], None]) -> None:
        self._make_client = make_client
        self.job_id = job_id
        self.eol = eol
        self._errors = errors
        self.sent = 0

    def type_lines(self, lines: Iterable[str]) -> None:
        with self._make_client() as client:
            for line in lines:
                try:
                    send_text(client, self.job_id, line.rstrip("\r\n") + self.eol,
                              READY_TIMEOUT_S)
                    self.sent += 1
                except HwutError as exc:
                    if exc.status == 409 and client.job(self.job_id)["status"] in ENDED:
                        return  # the job ended: what is left of the input has nowhere to go
                    self._errors(f"input not sent: {exc}")
                    if exc.status not in (400, 413):
                        return

    def start(self, lines: Iterable[str]) -> threading.Thread:
        thread = threading.Thread(target=self.type_lines, args=(lines,), daemon=True,
                                  name=f"hwut-console-{self.job_id}")
        thread.start()
        return thread
