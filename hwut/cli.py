"""The ``hwut`` command: serve, demo, submit and friends, and user administration.

Client commands take the server URL and credentials from --url/--token/--user/
--password, else HWUT_URL/HWUT_TOKEN/HWUT_USER/HWUT_PASSWORD, else a profile of the
client config file (--profile or HWUT_PROFILE, default ``default``) that ``hwut serve``
writes when it creates a data dir's first admin.

Exit codes come from one table (``hwut.client.EXIT_CODES``); click's own usage errors
exit with EXIT_USAGE (64), not click's 2, which a firmware may return.
"""
from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from . import __version__, ci, console, jobfile
from .client import (
    DEFAULT_PROFILE,
    EXIT_INTERRUPTED,
    EXIT_LIMIT_DEMO,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    Client,
    HwutError,
    WaitTimeout,
    client_config_path,
    describe_outcome,
    exit_code_for,
    exit_table,
    profile_conflict,
    resolve_settings,
    write_client_config,
)
from .config import Config, ConfigError, describe_board_options, describe_options, load_config
from .storage import DamagedStoreFile, StorageFull
from .users import UserError, UserStore

#: The ``hello`` fixture, shipped as package data so that ``hwut demo`` works from any install.
DEMO_FIRMWARE = Path(__file__).resolve().parent / "demo" / "hello.elf"
#: How long ``--wait`` and ``hwut demo`` wait for a job by default (queue time included).
DEFAULT_WAIT_TIMEOUT = 600.0

EXIT_HELP = "\b\nExit status:\n" + exit_table()

SUBMIT_HELP = f"""Submit FILE (ELF, Intel HEX or BIN) to run on BOARD for at most LIMIT seconds.

\b
Each FILE is one job; several FILEs are several jobs run in parallel. Join images
with '+' to put them in ONE job, as a lab flashes a bootloader and its application:
  hwut submit -b nucleo-f303re boot.elf+app.elf
A BIN goes at the start of flash, or where @ADDRESS says: boot.bin+app.bin@0x0800A000.
An ELF or HEX places itself. Images that overlap are refused (the server names both).

\b
With --wait: while the job waits, stderr says why (its queue position, or that no
instance of the board is available); the board's output streams to stdout while it
runs; a last line on stderr says how it ended, and the exit status tells it too.
Without --wait it prints the job as JSON and exits 0.

{EXIT_HELP}
"""


class HwutGroup(click.Group):
    """Exit codes from the table: click's usage errors (2 by default) and other click
    errors (1) exit EXIT_USAGE, Ctrl-C EXIT_INTERRUPTED."""

    @staticmethod
    def _recode(exc: click.ClickException) -> None:
        if exc.exit_code in (1, 2):
            # click declares exit_code a ClassVar; this instance's own value shadows it
            exc.exit_code = EXIT_USAGE  # type: ignore[misc]

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            self._recode(exc)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            self._recode(exc)
            raise
        except (KeyboardInterrupt, click.Abort):
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


def _config(config_path: str | None, **cli: Any) -> Config:
    try:
        return load_config(Path(config_path) if config_path else None, cli=cli)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _fail(exc: HwutError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


@contextmanager
def _api(ctx: click.Context) -> Iterator[Client]:
    """A client from the settings; any failure becomes a message and its exit code."""
    try:
        with Client(resolve_settings(**ctx.obj)) as client:
            yield client
    except HwutError as exc:
        _fail(exc)


def _client(ctx: click.Context) -> Client:
    """Another client with the same settings (for a second thread)."""
    return Client(resolve_settings(**ctx.obj))


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def _stream(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


def _say_waiting(job_id: int) -> Callable[[str], None]:
    def on_wait(why: str) -> None:
        click.echo(f"job {job_id} waiting: {why}", err=True)
    return on_wait


_timeout_option = click.option(
    "--timeout", "-t", type=click.FloatRange(min=0), default=DEFAULT_WAIT_TIMEOUT,
    show_default=True, help="Give up waiting after this many seconds (0: never); exit 46. "
    "The job itself goes on.")


@click.group(cls=HwutGroup, epilog=EXIT_HELP)
@click.version_option(__version__, prog_name="hwut")
@click.option("--url", envvar="HWUT_URL", help="Server URL, e.g. http://127.0.0.1:5000")
@click.option("--token", envvar="HWUT_TOKEN", help="API token (Authorization: Bearer).")
@click.option("--user", envvar="HWUT_USER", help="User name for HTTP Basic.")
@click.option("--password", envvar="HWUT_PASSWORD", help="Password for HTTP Basic.")
@click.option("--profile", envvar="HWUT_PROFILE",
              help="Client config profile to use (default: 'default').")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(ctx: click.Context, url: str | None, token: str | None, user: str | None,
         password: str | None, profile: str | None, verbose: bool) -> None:
    """HWUT: run firmware on emulated or real boards and get back what the board printed."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("hwut").setLevel(logging.INFO)
    ctx.obj = {"url": url, "token": token, "user": user, "password": password,
               "profile": profile}


# ---- server side ------------------------------------------------------------------------

@main.command(epilog="Options (config [options] table, environment, default):\n\n"
              + describe_options().replace("\n", "\n\n"))
@click.option("--host", help="Listen address (server.host).")
@click.option("--port", type=int, help="Listen port, 0 for any free one (server.port).")
@click.option("--threads", type=int, help="HTTP worker threads (server.threads).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory (data_dir).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True),
              help="Server config TOML (default: the shipped one).")
@click.option("--profile", "serve_profile",
              help="Client config profile that gets the URL and the first admin's token "
                   "when this data dir is new (default: hwut --profile, HWUT_PROFILE, else "
                   "'default'); one that holds another server's is never overwritten.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, threads: int | None,
          data_dir: str | None, config_path: str | None, serve_profile: str | None) -> None:
    """Run the HWUT server with waitress until interrupted (it blocks). The config's
    [[simboards]] (simulated lab benches, see `hwut simboard`) run while it does."""
    serve_profile = serve_profile or ctx.obj.get("profile") or DEFAULT_PROFILE

    config = _config(config_path, **{"server.host": host, "server.port": port,
                                     "server.threads": threads, "data_dir": data_dir})
    benches = _start_benches(config_path)
    try:
        _serve(config, serve_profile)
    finally:
        for bench in benches:
            bench.stop()


class _Bench:
    """A ``[[simboards]]`` bench: ``python -m hwut.backends.simboard`` as a child process
    (run, not imported: the service sees backends through the contract only)."""

    def __init__(self, config_path: str, index: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hwut.backends.simboard", "--config", config_path,
             "--index", str(index)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout_s: float = 60.0) -> str:
        """Its ``ready PROBE CONSOLE`` line; ClickException when it did not start."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        line = self.process.stdout.readline().decode(errors="replace").strip() if ready else ""
        if not line.startswith("ready "):
            self.stop()
            raise click.ClickException(f"a [[simboards]] bench did not start "
                                       f"({line or 'no answer'}; see above)")
        return line

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _start_benches(config_path: str | None) -> list[_Bench]:
    """A simulated bench for each ``[[simboards]]`` table of the config file, ready."""
    if config_path is None:
        return []
    import tomllib
    with open(config_path, "rb") as fh:
        count = len(tomllib.load(fh).get("simboards", []))
    started: list[_Bench] = []
    try:
        for i in range(count):
            started.append(_Bench(config_path, i))
            _, probe, console = started[-1].wait_ready().split(" ", 2)
            click.echo(f"simulated bench {i + 1}: probe {probe}, console {console}")
    except BaseException:
        for bench in started:
            bench.stop()
        raise
    return started


def _serve(config: Config, serve_profile: str) -> None:
    from .service import DataDirInUse, build_service, ensure_admin, make_server

    try:
        service = build_service(config)
    except (DataDirInUse, DamagedStoreFile, StorageFull, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    path = client_config_path()
    try:
        conflict = profile_conflict(path, serve_profile, config.data_dir) \
            if service.store.users.is_empty() else None
    except HwutError as exc:
        service.stop()
        raise click.ClickException(exc.description) from None
    if conflict:
        service.stop()
        raise click.ClickException(f"not serving: {conflict}")
    try:
        server = make_server(service, config["server.host"], config["server.port"],
                             config["server.threads"])
    except OSError as exc:
        service.stop()
        raise click.ClickException(f"cannot listen on {config['server.host']}:"
                                   f"{config['server.port']}: {exc}") from None
    try:
        created = ensure_admin(service.store)
    except StorageFull as exc:
        server.stop()
        service.stop()
        raise click.ClickException(str(exc)) from None
    if created:
        name, password, token = created
        write_client_config(path, server.url, token, profile=serve_profile,
                            data_dir=config.data_dir)
        use = "" if serve_profile == DEFAULT_PROFILE else \
            f"; use it with `hwut --profile {serve_profile} ...`"
        click.echo(f"Created the first user '{name}' (admin). Shown once, keep them:\n"
                   f"  password: {password}\n  token:    {token}\n"
                   f"The URL and token were written to {path} as profile "
                   f"'{serve_profile}'{use}.")
    service.start()
    signal.signal(signal.SIGTERM, _interrupt)
    click.echo(f"HWUT serving on {server.url} (data dir {config.data_dir})", err=False)
    sys.stdout.flush()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()


@main.command()
@click.option("--port", type=int, default=5555, show_default=True,
              help="TCP port of the probe (pyOCD remote probe remote:localhost:PORT).")
@click.option("--console", type=click.Path(dir_okay=False), default="/tmp/hwut-simboard-0",
              show_default=True, help="Where the console's terminal appears (a symlink).")
@click.option("--board", default="nucleo-f303re", show_default=True, help="Emulated board.")
@click.option("--uid", default=None, help="The simulated probe's own id (default: "
                                          "hwutsim-bench-PORT).")
@click.option("--firmware", type=click.Path(dir_okay=False, exists=True),
              help="In flash at power-on (ELF, HEX or BIN); default: erased flash.")
@click.option("--fast", is_flag=True, help="Run ahead of the wall clock (default: real time).")
def simboard(port: int, console: str, board: str, uid: str | None, firmware: str | None,
             fast: bool) -> None:
    """Serve an emulated board as a lab bench until interrupted: its simulated debug
    probe over pyOCD's remote-probe protocol, its console on a pseudo-terminal. A
    `physical` board instance uses it with probe = "remote:localhost:PORT" and serial =
    CONSOLE; so do `pyocd list/flash/commander -u remote:localhost:PORT`."""
    args = ["--port", str(port), "--console", console, "--board", board]
    args += ["--uid", uid] if uid else []
    args += ["--firmware", firmware] if firmware else []
    args += ["--fast"] if fast else []
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "hwut.backends.simboard", *args])


@main.command()
@click.option("--broker", default=None, metavar="URL",
              help="The broker (amqp://user:password@host:5672//); default: the config's "
                   "[worker] broker, or HWUT_BROKER_URL.")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False,
                                                                        exists=True),
              help="The host's config: its [[boards]] (backend, instances, options) and a "
                   "[worker] table (server, token, host).")
@click.option("--host", "host_name", default=None,
              help="This host's name as the server shows it (default: [worker] host, else "
                   "the host name).")
@click.option("--loglevel", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def worker(broker: str | None, config_path: str, host_name: str | None, loglevel: str) -> None:
    """Serve this host's board instances to a server through the broker (needs the
    `broker` extra). Jobs come from one queue per board type (hwut.board.BOARD), one at a
    time per instance, each in its own process; logs and outcomes go to the server. The
    config's [[simboards]] (simulated lab benches) run while it does, as with serve."""
    import tomllib

    from hwut.backends.registry import load_backends

    from .broker.settings import WorkerSettings
    from .broker.worker import WorkerHost, serve

    logging.getLogger().setLevel(getattr(logging, loglevel))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per report otherwise
    config = _config(config_path)
    try:
        with open(config_path, "rb") as fh:
            table = dict(tomllib.load(fh).get("worker") or {})
        if host_name:
            table["host"] = host_name
        settings = WorkerSettings.from_table(table, broker)
        host = WorkerHost(settings, config, load_backends())
    except (ConfigError, LookupError, tomllib.TOMLDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    # the host's [[simboards]] benches, as `hwut serve` starts the server's: a physical
    # instance of worker.toml finds its simulated probe and console exactly as there
    benches = _start_benches(config_path)
    try:
        serve(host, loglevel)
    except ConfigError as exc:  # Celery missing: the `broker` extra
        raise click.ClickException(str(exc)) from None
    finally:
        for bench in benches:
            bench.stop()


@main.command()
def options() -> None:
    """List every server option with its environment variable and default, then the
    board options of each installed backend (checked when the server starts)."""
    from hwut.backends.registry import load_backends

    click.echo(describe_options())
    click.echo("\nBoard options, per backend:")
    click.echo(describe_board_options(load_backends()))


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops the server like Ctrl-C: workers cancel their jobs and exit."""
    raise KeyboardInterrupt


@main.command(epilog=EXIT_HELP.replace(
    "Exit status:", f"Exit status: as submit --wait, but {EXIT_LIMIT_DEMO} when the job\n"
    "reached its time limit (the hello firmware never exits):"))
@click.argument("file", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--board", default="nucleo-f303re", show_default=True)
@click.option("--limit", default=1, show_default=True, help="Time limit in seconds.")
@_timeout_option
def demo(file: str | None, board: str, limit: int, timeout: float) -> None:
    """Start a throw-away server, run a fixture firmware through it and print its output.

    The server listens on a free loopback port with a temporary data dir and the
    shipped config; FILE defaults to the shipped ``hello`` fixture (fixtures/build/hello.elf).
    """
    from .service import build_service, make_server

    logging.getLogger("hwut").setLevel(logging.WARNING)  # the demo shows the board, not us
    firmware = Path(file) if file else DEMO_FIRMWARE
    if not firmware.exists():
        raise click.ClickException(f"{firmware} does not exist; pass a firmware FILE")
    with tempfile.TemporaryDirectory(prefix="hwut-demo-") as data_dir:
        config = _config(None, data_dir=data_dir)
        service = build_service(config)
        _, _, token = service.store.users.add("demo", admin=True)
        server = make_server(service, "127.0.0.1", 0, 4).start()
        service.start()
        click.echo(f"HWUT demo server on {server.url}; submitting {firmware.name} to {board} "
                   f"with a {limit} s limit", err=True)
        try:
            with Client(resolve_settings(url=server.url, token=token, environ={})) as client:
                job = client.submit(firmware, board, limit)
                job = client.wait(job["id"], on_log=_stream, poll=0.1,
                                  timeout=timeout or None, on_wait=_say_waiting(job["id"]))
        except WaitTimeout as exc:
            _fail(HwutError(0, exc.title, f"gave up waiting for the demo job after "
                            f"{timeout:g} s (still {exc.job['status']})", exc.exit_code))
        except HwutError as exc:
            _fail(exc)
        finally:
            service.stop()
            server.stop()
        click.echo("\n-- " + describe_outcome(job, EXIT_LIMIT_DEMO), err=True)
        sys.exit(exit_code_for(job, EXIT_LIMIT_DEMO))


# ---- client side ------------------------------------------------------------------------

@main.command(help=SUBMIT_HELP)
@click.argument("files", nargs=-1, metavar="FILE[+FILE...]...")
@click.option("--board", "-b", help="Board name (see `hwut boards`); required unless the "
              "job file names it.")
@click.option("--limit", "-l", type=int, help="Time limit in seconds (server default 60).")
@click.option("--comment", "-c", help="Title or description of the job.")
@click.option("--input", "-i", "console_input",
              help="Text sent to the board's console once the firmware listens.")
@click.option("--press", "-p", "presses", multiple=True, metavar="BUTTON@S[-S]",
              help="Press a board button at a virtual time, e.g. B1@0.5-0.7 (repeatable).")
@click.option("--pin", "pins", multiple=True, metavar="PIN@S:LEVEL",
              help="Drive a pin from outside at a virtual time: PA0@0:1 (high from the "
                   "start), PA0@0.5:0, PA0@0.7:z (released to what the board leaves on it; "
                   "see `hwut board pins NAME`). Repeatable.")
@click.option("--realtime", is_flag=True, default=None,
              help="Keep the board's time to the wall clock (an emulator otherwise runs "
                   "ahead or behind it): for a job talked to while it runs (hwut console, "
                   "write, press).")
@click.option("--trace", "trace_signals", metavar="SIGNALS",
              help="Pin trace: signals by name (LD2,PA6,USART2_TX), 'none', or 'default' "
                   "(the LEDs, the console's TX and every pin configured as output).")
@click.option("--wait", "-w", is_flag=True, help="Wait, stream the log, exit with its code.")
@_timeout_option
@click.option("--job-file", "-f", type=click.Path(dir_okay=False, exists=True),
              help="A TOML job file: images, board, limit, input, presses, [criteria].")
@click.option("--expect", multiple=True, metavar="TEXT",
              help="Text that must appear in the log (repeatable; implies --wait).")
@click.option("--expect-regex", multiple=True, metavar="RE", help="RE2 regex that must match "
              "a line (repeatable).")
@click.option("--fail", "fail_text", multiple=True, metavar="TEXT",
              help="Text that fails the job at once and stops the run (repeatable).")
@click.option("--fail-regex", multiple=True, metavar="RE",
              help="RE2 regex that fails the job at once (repeatable).")
@click.option("--ordered", is_flag=True, help="Expectations must appear in the order given.")
@click.option("--exit-code", "expect_exit", type=int,
              help="The firmware must exit with this code.")
@click.option("--on-limit", type=click.Choice(["passed", "failed"]),
              help="The verdict when the time limit is reached with no other (default failed).")
@click.option("--run-to-end", is_flag=True,
              help="Keep running after every expectation is met (to watch --fail patterns).")
@click.option("--expect-pin", multiple=True, metavar="SIGNAL:KIND[:RANGE]",
              help="A pin-trace expectation checked when the run ends, e.g. "
                   "LD2:toggles:1.9-2.1Hz, LD2:duty:40-60%, PA5:edges:4-8, LD2:high, "
                   "PA6:steady (repeatable; the job runs to its limit or exit).")
@click.option("--parse", metavar="FORMAT", help="Read the console as a test framework's "
              "output (unity, ztest, cpputest): its test cases become results, a failed "
              "one fails the job, its summary ends the run.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False, writable=True),
              help="Write a JUnit XML report of every job to this file (implies --wait).")
@click.pass_context
def submit(ctx: click.Context, files: tuple[str, ...], board: str | None, limit: int | None,
           comment: str | None, console_input: str | None, presses: tuple[str, ...],
           pins: tuple[str, ...], realtime: bool | None,
           trace_signals: str | None, wait: bool, timeout: float, job_file: str | None,
           expect: tuple[str, ...],
           expect_regex: tuple[str, ...], fail_text: tuple[str, ...],
           fail_regex: tuple[str, ...], ordered: bool, expect_exit: int | None,
           on_limit: str | None, run_to_end: bool, expect_pin: tuple[str, ...],
           parse: str | None, junit_file: str | None) -> None:
    try:
        loaded = jobfile.load(Path(job_file)) if job_file else None
        criteria = ci.criteria_from_options(expect, expect_regex, fail_text, fail_regex,
                                            ordered, expect_exit, on_limit, run_to_end,
                                            loaded.criteria if loaded else None, parse,
                                            expect_pin)
    except ValueError as exc:  # JobFileError, CriteriaError
        raise click.UsageError(str(exc)) from None
    try:
        images, board, limit, comment, console_input, press_list, pin_list = \
            ci.merge_jobfile(loaded, files, board, limit, comment, console_input, presses,
                             pins)
        if realtime is None:
            realtime = bool(loaded and loaded.realtime)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not images:
        raise click.UsageError("give a firmware FILE or a --job-file with images")
    if not board:
        raise click.UsageError("Missing option '--board' (or board in the job file)")
    wait = wait or criteria is not None or junit_file is not None
    with _api(ctx) as client:
        jobs = ci.submit_all(client, images, board, limit, comment, console_input,
                             press_list, criteria, trace_signals, pin_list, realtime)
        if not wait:
            for job in jobs:
                _print_json(job)
            return
        finals = []
        for job in jobs:
            click.echo(f"job {job['id']} submitted", err=True)
        for job in jobs:
            try:
                finals.append(client.follow(job["id"], on_log=_stream, timeout=timeout or None,
                                            on_wait=_say_waiting(job["id"])))
            except WaitTimeout as exc:
                click.echo(f"error: {exc}", err=True)
                finals.append({**exc.job, "_timeout": True})
        if junit_file:
            ci.write_junit(client, finals, Path(junit_file))
    codes = [EXIT_TIMEOUT if f.get("_timeout") else exit_code_for(f) for f in finals]
    for final in finals:
        if not final.get("_timeout"):
            click.echo(describe_outcome(final), err=True)
    sys.exit(ci.combined_exit(codes))


@main.command()
@click.argument("job_id", type=int)
@click.pass_context
def status(ctx: click.Context, job_id: int) -> None:
    """Show a job as JSON."""
    with _api(ctx) as client:
        _print_json(client.job(job_id))


KINDS = ("uart", "other", "infra")


@main.command()
@click.argument("job_id", type=int)
@click.option("--kind", "-k", type=click.Choice(KINDS), default="uart", show_default=True,
              help="uart: what the board printed; other: the ITM/SWO trace; infra: what "
                   "the emulator or probe said about the run.")
@click.option("--follow", "-f", is_flag=True, help="Keep streaming until the job ends (uart).")
@click.pass_context
def log(ctx: click.Context, job_id: int, kind: str, follow: bool) -> None:
    """Print a job's UART log (so far), or its ITM trace or infrastructure log."""
    if follow and kind != "uart":
        raise click.UsageError("--follow streams the UART log only")
    with _api(ctx) as client:
        if follow:
            client.wait(job_id, on_log=_stream, timeout=None)
        elif kind == "other":
            _stream(client.other(job_id))
        elif kind == "infra":
            _stream(client.infra_log(job_id))
        else:
            _stream(client.log(job_id))


@main.command()
@click.argument("job_id", type=int)
@click.pass_context
def other(ctx: click.Context, job_id: int) -> None:
    """Print a job's ITM/SWO trace (same as log --kind other)."""
    with _api(ctx) as client:
        _stream(client.other(job_id))


@main.command()
@click.argument("job_id", type=int)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the VCD here (GTKWave, Surfer) instead of to standard output.")
@click.option("--summary", "-s", is_flag=True,
              help="Print the per-signal summary (edges, frequency, duty cycle) as JSON.")
@click.pass_context
def trace(ctx: click.Context, job_id: int, output: str | None, summary: bool) -> None:
    """A job's pin trace (VCD: LEDs, pins, the console's bytes on virtual time)."""
    with _api(ctx) as client:
        if summary:
            _print_json(client.job(job_id).get("trace_summary"))
            return
        data = client.trace(job_id)
    if output:
        Path(output).write_bytes(data)
        click.echo(f"{len(data)} bytes of VCD written to {output}", err=True)
    else:
        _stream(data)


@main.command("infra-log")
@click.argument("job_id", type=int)
@click.pass_context
def infra_log(ctx: click.Context, job_id: int) -> None:
    """Print what the emulator or probe said about a job's run (log --kind infra)."""
    with _api(ctx) as client:
        _stream(client.infra_log(job_id))


@main.command()
@click.argument("job_id", type=int)
@click.pass_context
def cancel(ctx: click.Context, job_id: int) -> None:
    """Cancel a WAITING, QUEUED or RUNNING job."""
    with _api(ctx) as client:
        client.cancel(job_id)
    click.echo(f"job {job_id} canceled")


@main.command("write")
@click.argument("job_id", type=int)
@click.argument("text")
@_timeout_option
@click.pass_context
def write_input(ctx: click.Context, job_id: int, text: str, timeout: float) -> None:
    """Type TEXT into a running job's console. Escapes: \\r \\n \\t \\0 \\\\ \\xNN
    (most consoles end a line with \\r). A job still starting is waited for (up to
    --timeout); submit it with --realtime so that its board keeps to the wall clock."""
    try:
        data = console.unescape(text)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not data:
        raise click.UsageError("TEXT is empty")
    with _api(ctx) as client:
        answer = console.send_text(client, job_id, data, timeout or console.READY_TIMEOUT_S)
    click.echo(f"job {job_id}: {len(data.encode())} bytes sent at board time "
               f"{float(answer.get('board_time_s') or 0):.3f} s or later")


@main.command("press")
@click.argument("job_id", type=int)
@click.argument("button")
@click.option("--hold", default=0.1, show_default=True, type=float,
              help="Seconds of the board's time the button is held.")
@_timeout_option
@click.pass_context
def press_button(ctx: click.Context, job_id: int, button: str, hold: float,
                 timeout: float) -> None:
    """Press BUTTON (e.g. B1) of a running job's board."""
    with _api(ctx) as client:
        answer = client.press(job_id, button, hold, timeout or console.READY_TIMEOUT_S)
    click.echo(f"job {job_id}: {button} pressed for {hold:g} s at board time "
               f"{float(answer.get('board_time_s') or 0):.3f} s or later")


@main.command("console", epilog=EXIT_HELP)
@click.argument("job_id", type=int)
@click.option("--eol", type=click.Choice(sorted(console.EOLS)), default="cr",
              show_default=True, help="What ends each line sent.")
@_timeout_option
@click.pass_context
def console_cmd(ctx: click.Context, job_id: int, eol: str, timeout: float) -> None:
    """A serial terminal on a running job: its log on stdout, each line read from stdin
    typed into its console. Ends when the job ends (the end of stdin only stops the
    typing); exits with the job's status as submit --wait."""
    with _api(ctx) as client:
        typist = console.Console(lambda: _client(ctx), job_id, console.EOLS[eol],
                                 lambda why: click.echo(f"error: {why}", err=True))
        typist.start(sys.stdin)
        try:
            final = client.follow(job_id, on_log=_stream, timeout=timeout or None,
                                  on_wait=_say_waiting(job_id))
        except WaitTimeout as exc:
            _fail(exc)
    click.echo("\n" + describe_outcome(final), err=True)
    sys.exit(exit_code_for(final))


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


@main.command()
@click.option("--limit", default=50, show_default=True)
@click.option("--offset", default=0, show_default=True)
@click.option("--status", help="Only jobs with this status.")
@click.option("--board", help="Only jobs for this board.")
@click.pass_context
def jobs(ctx: click.Context, limit: int, offset: int, status: str | None,
         board: str | None) -> None:
    """List jobs, newest first (your own; all of them for admins)."""
    with _api(ctx) as client:
        found = client.jobs(limit, offset, status, board, extended=True)
    click.echo(f"{'ID':>8}  {'CREATED':<26}  {'BOARD':<16} {'STATUS':<9} {'STOP':<20} "
               f"{'EXIT':>5}  OWNER")
    for job in found:
        click.echo(f"{job['id']:>8}  {job['created']:<26}  {_cell(job.get('board')):<16} "
                   f"{job['status']:<9} {_cell(job.get('stop_reason')):<20} "
                   f"{_cell(job.get('exit_code')):>5}  {job['owner']}")


@main.command()
@click.option("--extended", "-x", is_flag=True, help="With instances and their state.")
@click.pass_context
def boards(ctx: click.Context, extended: bool) -> None:
    """List the boards the server offers."""
    with _api(ctx) as client:
        found = client.boards(True)
    if extended:
        _print_json(found)
        return
    for board in found:
        mcu = board.get("microcontroller") or ""
        if isinstance(mcu, dict):
            mcu = mcu.get("name", "")
        instances = board.get("instances") or []
        click.echo(f"{board['name']:<20} {mcu:<14} {len(instances)} instance(s)")
        for inst in instances:
            avail = inst.get("availability") or {}
            summary = inst.get("summary") or inst.get("state", "")
            detail = f" ({avail['detail']})" if avail.get("ok") and avail.get("detail") else ""
            if inst.get("remote"):  # on a worker host (hwut worker): how lately heard from
                detail += (f" [host {inst.get('host')}, {inst.get('health')}, heartbeat "
                           f"{inst.get('heartbeat_age_seconds')} s ago]")
            click.echo(f"  {inst['name']:<22} {inst.get('backend', ''):<8} {summary}{detail}")


@main.group(cls=HwutGroup)
def board() -> None:
    """Put board instances in and out of service (admin); show a board's pin defaults."""


def pin_table(pins: list[dict[str, Any]], every: bool = False) -> list[str]:
    """Lines of a board's pin defaults (the targets record's ``pins``): the pins the
    board wires (pulls, drivers, buttons), then in one line what every other pin
    reads; ``every``: one line for each pin."""
    wired = [p for p in pins if every or p.get("source") != "floating"]
    lines = [f"{'pin':<6} {'reads':<6} {'source':<9} why"]
    lines += [f"{p['pin']:<6} {p['level']:<6} {p['source']:<9} {p.get('why', '')}"
              for p in wired]
    floating = [p for p in pins if p.get("source") == "floating"]
    if floating and not every:
        levels = sorted({str(p["level"]) for p in floating})
        lines.append(f"{'other':<6} {'/'.join(levels):<6} {'floating':<9} the other "
                     f"{len(floating)} pins: nothing on the board drives or pulls them (their "
                     "own pull-up/down, when set, wins)")
    return lines


@board.command("pins")
@click.argument("name")
@click.option("--all", "every", is_flag=True, help="One line for every pin.")
@click.pass_context
def board_pins(ctx: click.Context, name: str, every: bool) -> None:
    """What each pin of board NAME reads while nothing drives it (board data): a job's
    --pin PIN@S:LEVEL drives one from outside, z releases it to this."""
    with _api(ctx) as client:
        found = client.board(name, extended=True)
    pins = found.get("pins") or []
    if not pins:
        raise click.ClickException(f"board {name} has no pin data (its backend says "
                                   "nothing about its pins)")
    for line in pin_table(pins, every):
        click.echo(line)
    if not (found.get("capabilities") or {}).get("pins"):
        click.echo(f"(board {name}'s backend cannot drive pins: --pin is refused)", err=True)


def _board_state(ctx: click.Context, name: str, online: bool) -> None:
    with _api(ctx) as client:
        found = client.board_state(name, online)
    for inst in found.get("instances") or []:
        if name in (inst["name"], found.get("name")):
            click.echo(f"{inst['name']:<22} {inst.get('summary') or inst.get('state', '')}")


@board.command("online")
@click.argument("name")
@click.pass_context
def board_online(ctx: click.Context, name: str) -> None:
    """Put NAME back in service: a board (all its instances) or one instance (board#0, or
    host/board#0 on a worker host), e.g. after it went offline on infrastructure errors
    and the bench was fixed."""
    _board_state(ctx, name, True)


@board.command("offline")
@click.argument("name")
@click.pass_context
def board_offline(ctx: click.Context, name: str) -> None:
    """Take NAME out of service (a board or one instance, board#0); a running job ends
    first."""
    _board_state(ctx, name, False)


# ---- users ------------------------------------------------------------------------------

@main.group(cls=HwutGroup)
def user() -> None:
    """Manage users: directly in a data dir (whether or not a server runs on it), or with
    --server through the API of the server the client settings name."""


_data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False),
                                help="Data directory (default: data_dir option).")
_config_option = click.option("--config", "config_path",
                              type=click.Path(dir_okay=False, exists=True),
                              help="Server config TOML.")
_server_option = click.option("--server", "via_server", is_flag=True,
                              help="Through the server's API (admin, or your own user) "
                                   "instead of the data dir.")


def _users(data_dir: str | None, config_path: str | None) -> tuple[UserStore, Path]:
    from .store import users_path
    config = _config(config_path, data_dir=data_dir)
    try:
        return UserStore(users_path(config.data_dir)), config.data_dir
    except DamagedStoreFile as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except UserError as exc:
        raise click.ClickException(str(exc)) from None


@user.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Give the admin role.")
@click.option("--password", "new_password", help="Password (default: a random one).")
@_data_dir_option
@_config_option
@_server_option
@click.pass_context
def user_add(ctx: click.Context, name: str, admin: bool, new_password: str | None,
             data_dir: str | None, config_path: str | None, via_server: bool) -> None:
    """Create user NAME and print its password and API token."""
    if via_server:
        with _api(ctx) as client:
            made = client.add_user(name, admin, new_password)
        created_name, role, password, token = (made["name"], made["role"],
                                               made.get("password"), made["token"])
    else:
        with _user_errors():
            created, password, token = _users(data_dir, config_path)[0].add(
                name, admin, new_password)
        created_name, role = created.name, created.role
    click.echo(f"user:     {created_name} ({role})")
    if not new_password:
        click.echo(f"password: {password}")
    click.echo(f"token:    {token}")


@user.command("list")
@_data_dir_option
@_config_option
@_server_option
@click.pass_context
def user_list(ctx: click.Context, data_dir: str | None, config_path: str | None,
              via_server: bool) -> None:
    """List users, their roles and how many tokens they have."""
    if via_server:
        with _api(ctx) as client:
            records = client.users()
            click.echo(f"users of the server {client.settings.url}:")
    else:
        store, where = _users(data_dir, config_path)
        records = store.list()
        click.echo(f"users in data dir {where} ({store.path}):")
    for record in records:
        click.echo(f"  {record['name']:<20} {record['role']:<6} tokens: {record['tokens']}")


@user.command("delete")
@click.argument("name")
@_data_dir_option
@_config_option
@_server_option
@click.pass_context
def user_delete(ctx: click.Context, name: str, data_dir: str | None, config_path: str | None,
                via_server: bool) -> None:
    """Delete user NAME; its tokens and password stop working at once. The last admin
    cannot be deleted."""
    if via_server:
        with _api(ctx) as client:
            client.delete_user(name)
    else:
        with _user_errors():
            _users(data_dir, config_path)[0].delete(name)
    click.echo(f"user {name} deleted")


@user.command("passwd")
@click.argument("name")
@click.option("--password", "new_password", envvar="HWUT_NEW_PASSWORD",
              help="The new password (default: asked twice, not echoed).")
@_data_dir_option
@_config_option
@_server_option
@click.pass_context
def user_passwd(ctx: click.Context, name: str, new_password: str | None,
                data_dir: str | None, config_path: str | None, via_server: bool) -> None:
    """Set the password of NAME."""
    if not new_password:
        new_password = click.prompt(f"new password for {name}", hide_input=True,
                                    confirmation_prompt=True)
    assert new_password is not None
    if via_server:
        with _api(ctx) as client:
            client.set_password(name, new_password)
    else:
        with _user_errors():
            _users(data_dir, config_path)[0].set_password(name, new_password)
    click.echo(f"password of {name} changed")


@user.command("token")
@click.argument("name")
@_data_dir_option
@_config_option
@_server_option
@click.pass_context
def user_token(ctx: click.Context, name: str, data_dir: str | None, config_path: str | None,
               via_server: bool) -> None:
    """Issue a new API token for NAME and print it."""
    if via_server:
        with _api(ctx) as client:
            click.echo(client.new_token(name))
        return
    with _user_errors():
        click.echo(_users(data_dir, config_path)[0].new_token(name))


@user.command("tokens")
@click.argument("name")
@_data_dir_option
@_config_option
@_server_option
@click.pass_context
def user_tokens(ctx: click.Context, name: str, data_dir: str | None, config_path: str | None,
                via_server: bool) -> None:
    """List the ids of NAME's tokens (the start of each token's SHA-256)."""
    if via_server:
        with _api(ctx) as client:
            ids = [t["id"] for t in client.tokens(name)]
    else:
        with _user_errors():
            ids = _users(data_dir, config_path)[0].token_ids(name)
    for ident in ids:
        click.echo(ident)


@user.command("revoke")
@click.argument("name")
@click.argument("token", required=False)
@click.option("--all", "revoke_all", is_flag=True, help="Revoke every token of NAME.")
@_data_dir_option
@_config_option
@_server_option
@click.pass_context
def user_revoke(ctx: click.Context, name: str, token: str | None, revoke_all: bool,
                data_dir: str | None, config_path: str | None, via_server: bool) -> None:
    """Revoke TOKEN of NAME (the token itself, or its id from `hwut user tokens`), or with
    --all every token of NAME. A token given is hashed here; it is never sent."""
    if bool(token) == revoke_all:
        raise click.UsageError("give either a TOKEN (or token id) or --all")
    if via_server:
        with _api(ctx) as client:
            if revoke_all:
                count = client.revoke_all_tokens(name)
            else:
                assert token is not None
                client.revoke_token(name, token)
                count = 1
    else:
        with _user_errors():
            count = _users(data_dir, config_path)[0].revoke(
                name, None if revoke_all else [str(token)])
    click.echo(f"{count} token(s) of {name} revoked")


if __name__ == "__main__":
    main()


# ---- the store --------------------------------------------------------------------------

@main.group(cls=HwutGroup)
def store() -> None:
    """Check or repair the data dir's database files (see README, "The data dir")."""


@store.command("check")
@_data_dir_option
@_config_option
def store_check(data_dir: str | None, config_path: str | None) -> None:
    """Say whether every store file is readable; changes nothing (a server may run)."""
    from .storecheck import check_command
    text, code = check_command(_config(config_path, data_dir=data_dir).data_dir)
    click.echo(text)
    sys.exit(code)


@store.command("repair")
@_data_dir_option
@_config_option
def store_repair(data_dir: str | None, config_path: str | None) -> None:
    """Salvage what is readable from damaged store files (the server must be stopped);
    each damaged original is kept beside its repaired file."""
    from .storecheck import repair_command
    text, code = repair_command(_config(config_path, data_dir=data_dir).data_dir)
    click.echo(text)
    sys.exit(code)
