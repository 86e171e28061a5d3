"""pytest plugin (entry point ``pytest11``): firmware tests against an HWUT board.

    def test_boots(hwut_board):
        run = hwut_board.run("build/app.elf", limit=10, fail=["PANIC"])
        run.expect("boot ok")
        line = run.expect(r"^temp=(\\d+)$", regex=True)
        assert run.result()["verdict"] in (None, "passed")

    def test_echo(hwut_board):                  # talking to a running job
        run = hwut_board.run("build/echo.elf", limit=60, realtime=True)
        run.expect("echo ready", timeout=1)     # timeouts: the board's (virtual) seconds
        run.write("ping\r")
        run.expect("ping", timeout=0.5)
        run.press("B1", hold=0.1)

``hwut_board`` gives a :class:`Board` on a server: by default a local one started once
per session (a temporary data dir, the sim backend, a free loopback port); with
``--hwut-url`` (or HWUT_URL) and ``--hwut-token`` (HWUT_TOKEN) a remote one. The
board is ``--hwut-board`` (default ``nucleo-f303re``). JUnit comes from pytest's own
``--junitxml``; each run's job id, board and verdict are added to the test's
properties there.

Nothing heavy is imported until a test asks for the fixture, so having the plugin
installed costs other pytest runs nothing.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

try:
    import pytest
except ImportError as exc:  # only pytest loads this module (entry point pytest11)
    raise ImportError("hwut.pytest_plugin is a pytest plug-in: pip install 'hwut[pytest]' "
                      f"({exc})") from exc

from .images import ImageRef

if TYPE_CHECKING:
    from .client import Client, Settings

DEFAULT_BOARD = "nucleo-f303re"
#: Wall seconds ``expect`` waits at most (``wall_timeout``; the job's own limit and the
#: board's time, ``timeout``, end it sooner).
DEFAULT_EXPECT_TIMEOUT = 60.0
#: How much of the log an AssertionError quotes.
TAIL_BYTES = 2000


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hwut", "HWUT: firmware on emulated boards")
    group.addoption("--hwut-url", default=os.environ.get("HWUT_URL"),
                    help="HWUT server to run jobs on (default: a local one per session)")
    group.addoption("--hwut-token", default=os.environ.get("HWUT_TOKEN"),
                    help="API token for --hwut-url")
    group.addoption("--hwut-board", default=DEFAULT_BOARD, help="board the jobs run on")


class _Found(Exception):
    """Stops following the log: the pattern appeared."""


class _TooLate(Exception):
    """Stops following the log: the board's time passed the expect's timeout."""


class Run:
    """One job on the board; ``expect`` reads its log as it grows, in order, knowing
    when the board printed each line (the stream's ``time`` events, see hwut.follow).

    ``write``/``press`` talk to the running job (submit it with ``realtime=True`` so that
    its board does not run ahead of the test). Timeouts of ``expect`` are the board's
    seconds (virtual on an emulator), counted from the board's time this handle last
    knew of: the previous match, write or press, or the start. ``wall_timeout`` (wall
    seconds) only guards against a server that stops answering."""

    def __init__(self, client: Client, job: dict[str, Any], timeout: float) -> None:
        self.client, self.job, self.timeout = client, job, timeout
        self.id: int = job["id"]
        self.offset = 0          # log bytes received so far
        self._pending = b""      # received bytes not yet matched (from a line start)
        self._pending_at = 0     # the log offset of _pending's first byte
        self._marks: list[tuple[int, float]] = []  # line-end times not yet passed
        self._next_t: float | None = None          # the time of the log event to come
        self.board_time = 0.0    # the board's latest time this handle knows
        self._since = 0.0        # where the next expect's timeout counts from
        self.log = bytearray()   # everything received, for messages
        self.final: dict[str, Any] | None = None

    # ---- what the stream brings ------------------------------------------------------

    def _on_time(self, offset: int, t: float, marks: list[tuple[int, float]],
                 deadline: float | None) -> None:
        self._marks += [m for m in marks if m[0] > self.offset]
        if offset > self.offset:
            self._next_t = t  # the log event that follows ends at t
            return
        self.board_time = max(self.board_time, t)  # no output: the board got this far
        if deadline is not None and self.board_time > deadline:
            raise _TooLate

    def _take(self, data: bytes, pattern: Any, deadline: float | None) -> None:
        self.offset += len(data)
        self.log += data
        self._pending += data
        try:
            self._scan(pattern, deadline)
        finally:
            if self._next_t is not None:
                self.board_time = max(self.board_time, self._next_t)
                self._next_t = None
        if deadline is not None and self.board_time > deadline:
            raise _TooLate

    def _line_time(self, end: int) -> float | None:
        """The board's time of the line ending at log offset ``end`` (marks passed are
        dropped); None when the server sent no times."""
        while self._marks and self._marks[0][0] < end:
            self._marks.pop(0)
        if self._marks:
            return self._marks[0][1]
        return self._next_t

    def _scan(self, pattern: Any, deadline: float | None = None) -> None:
        while b"\n" in self._pending:
            raw, _, self._pending = self._pending.partition(b"\n")
            self._pending_at += len(raw) + 1
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if pattern(line):
                at = self._line_time(self._pending_at)
                if at is not None:
                    self.board_time = max(self.board_time, at)
                    if deadline is not None and at > deadline:
                        raise _TooLate
                    self._since = at
                else:
                    self._since = self.board_time
                raise _Found(line)

    # ---- the test's side -------------------------------------------------------------

    def expect(self, pattern: str, regex: bool = False, timeout: float | None = None,
               wall_timeout: float | None = None) -> str:
        """The next log line (after what earlier expects consumed) holding ``pattern``
        (a text, or a regex with ``regex=True``); AssertionError with the log's end when
        the job ends first, or when ``timeout`` seconds of the board's time (virtual on
        an emulator) pass without it: counted from the board's time this handle last
        knew (see the class). ``wall_timeout``: wall seconds at most (default the
        board's ``timeout``), whatever the board does."""
        compiled = re.compile(pattern) if regex else None

        def matches(line: str) -> bool:
            return bool(compiled.search(line)) if compiled else pattern in line

        deadline = None if timeout is None else self._since + timeout
        from .client import WaitTimeout
        wall = self.timeout if wall_timeout is None else wall_timeout
        try:
            self._scan(matches, deadline)
            if self.final is None:
                self.final = self.client.follow(
                    self.id, on_log=lambda data: self._take(data, matches, deadline),
                    on_time=lambda offset, t, marks: self._on_time(offset, t, marks,
                                                                   deadline),
                    timeout=wall, offset=self.offset)
                self.board_time = max(self.board_time,
                                      float(self.final.get("time_used_seconds") or 0.0))
            if self._pending:  # the last line has no line end
                line = self._pending.decode("utf-8", "replace").rstrip("\r")
                if matches(line):
                    self._pending_at += len(self._pending)
                    self._pending = b""
                    self._since = self.board_time
                    return line
        except _Found as found:
            return str(found)
        except _TooLate:
            self._fail(f"{pattern!r} did not appear within {timeout:g} s of the board's time "
                       f"(from {self._since:.6f} s; the board is at {self.board_time:.6f} s)")
        except WaitTimeout:
            self._fail(f"{pattern!r} did not appear within {wall:g} s of wall time")
        if deadline is not None and self.board_time > deadline:
            self._fail(f"{pattern!r} did not appear within {timeout:g} s of the board's time "
                       f"(from {self._since:.6f} s); job {self.id} ended at "
                       f"{self.board_time:.6f} s")
        self._fail(f"{pattern!r} did not appear before job {self.id} ended "
                   f"({(self.final or {}).get('stop_reason')})")
        raise AssertionError  # not reached

    def write(self, text: str) -> float:
        """Console input into the running job (waiting for it to start); returns the
        board's time the server knew when it passed the input on (it lands at or after
        it). AssertionError when the job has ended."""
        return self._send(lambda: self.client.write(self.id, text, self.timeout))

    def press(self, button: str, hold: float = 0.1) -> float:
        """Press ``button`` for ``hold`` seconds of the board's time (see :meth:`write`)."""
        return self._send(lambda: self.client.press(self.id, button, hold, self.timeout))

    def _send(self, send: Any) -> float:
        from .client import HwutError
        try:
            answer = send()
        except HwutError as exc:
            if exc.status != 409:
                raise
            status = self.client.job(self.id)["status"]
            if status in ("FINISHED", "ERROR", "CANCELED"):
                self._fail(f"job {self.id} is {status}: it takes no input any more")
            self._fail(f"job {self.id} did not start taking input within "
                       f"{self.timeout:g} s ({status})")
        board_time = float(answer.get("board_time_s") or 0.0)
        self.board_time = max(self.board_time, board_time)
        self._since = max(self._since, board_time)
        return board_time

    def _fail(self, why: str) -> NoReturn:
        tail = bytes(self.log[-TAIL_BYTES:]).decode("utf-8", "replace")
        raise AssertionError(f"{why}; the log ends with:\n{tail}")

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """The ended job's record (waiting for its end), with ``verdict`` when the run
        had criteria."""
        if self.final is None:
            self.final = self.client.follow(self.id, on_log=self._keep,
                                            timeout=timeout or self.timeout,
                                            offset=self.offset)
        return self.final

    def _keep(self, data: bytes) -> None:
        self.offset += len(data)
        self.log += data
        self._pending += data

    @property
    def verdict(self) -> str | None:
        return self.result().get("verdict")

    def cancel(self) -> None:
        if self.final is None and self.client.job(self.id)["status"] not in (
                "FINISHED", "ERROR", "CANCELED"):
            self.client.cancel(self.id)


class Board:
    """A board on an HWUT server; runs end (are canceled) with the test."""

    def __init__(self, client: Client, name: str, node: Any = None,
                 timeout: float = DEFAULT_EXPECT_TIMEOUT) -> None:
        self.client, self.name, self.node, self.timeout = client, name, node, timeout
        self.runs: list[Run] = []

    def run(self, image: str | Path | bytes | Sequence[str | Path | bytes | ImageRef],
            limit: int = 10, input: str | None = None,
            presses: Sequence[str] = (), expect: Sequence[str] = (),
            fail: Sequence[str] = (), exit_code: int | None = None,
            parse: str | None = None, pins: Sequence[str] = (), realtime: bool = False,
            **options: Any) -> Run:
        """Submit ``image`` (a path or the bytes), or a list of them for ONE job of several
        images (a bootloader and its application; ``"app.bin@0x0800A000"`` or an
        ImageRef places a BIN); ``pins``: scripted pin levels (``"PA0@0:1"``); criteria
        as for ``hwut submit`` (``expect``, ``fail``, ``exit_code``, ``parse``;
        ``ordered``, ``on_limit``, ``run_to_end``, ``expect_pin`` (a list) as options).
        ``realtime``: the board's time keeps to the wall clock, for a test that talks to
        it (``write``, ``press``)."""
        from .ci import criteria_from_options
        criteria = criteria_from_options(
            list(expect), [], list(fail), [], bool(options.get("ordered")), exit_code,
            options.get("on_limit"), bool(options.get("run_to_end")), parse=parse,
            expect_pin=tuple(options.get("expect_pin", ())))
        data: bytes | Path | list[bytes | str | Path | ImageRef]
        if isinstance(image, bytes):
            data = image
        elif isinstance(image, (str, Path)):
            data = Path(image)
        else:
            data = list(image)
        job = self.client.submit(data, self.name, limit, console_input=input,
                                 presses=list(presses), criteria=criteria, pins=list(pins),
                                 realtime=realtime)
        run = Run(self.client, job, self.timeout)
        self.runs.append(run)
        if self.node is not None:
            self.node.user_properties.append(("hwut_job", str(job["id"])))
            self.node.user_properties.append(("hwut_board", self.name))
        return run

    def close(self) -> None:
        for run in self.runs:
            try:
                run.cancel()
            except Exception:  # noqa: BLE001, S110 - teardown must go on
                pass
            if self.node is not None and run.final is not None:
                self.node.user_properties.append(
                    (f"hwut_job_{run.id}_verdict", str(run.final.get("verdict"))))


class _LocalServer:
    """A throw-away HWUT server for the session: temporary data dir, sim backend."""

    def __init__(self) -> None:
        import logging

        from .config import load_config
        from .service import build_service, ensure_admin, make_server
        logging.getLogger("hwut").setLevel(logging.WARNING)
        self._tmp = tempfile.TemporaryDirectory(prefix="hwut-pytest-")
        config = load_config(None, environ={}).with_values(data_dir=self._tmp.name)
        self.service = build_service(config)
        admin = ensure_admin(self.service.store)
        assert admin is not None
        self.token = admin[2]
        self.server = make_server(self.service, "127.0.0.1", 0, 8).start()
        self.service.start()
        self.url = self.server.url

    def close(self) -> None:
        self.server.stop()
        self.service.stop()
        self._tmp.cleanup()


@pytest.fixture(scope="session")
def hwut_settings(request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Where the boards are: ``--hwut-url``/``--hwut-token``, or a local server."""
    from .client import Settings
    url = request.config.getoption("--hwut-url")
    if url:
        yield Settings(url, request.config.getoption("--hwut-token"))
        return
    local = _LocalServer()
    try:
        yield Settings(local.url, local.token)
    finally:
        local.close()


@pytest.fixture
def hwut_board(hwut_settings: Settings, request: pytest.FixtureRequest) -> Iterator[Board]:
    """A :class:`Board` (``--hwut-board``); its runs are canceled after the test."""
    from .client import Client
    with Client(hwut_settings) as client:
        board = Board(client, request.config.getoption("--hwut-board"), request.node)
        try:
            yield board
        finally:
            board.close()
