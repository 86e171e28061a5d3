"""The ``hwut`` command: serve, demo, submit and friends, and user administration.

Client commands take the server URL and credentials from --url/--token/--user/
--password, else HWUT_URL/HWUT_TOKEN/HWUT_USER/HWUT_PASSWORD, else the client
config file that the first ``hwut serve`` writes.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from . import __version__
from .client import (
    EXIT_CANCELED,
    EXIT_CLIENT,
    EXIT_ERROR,
    EXIT_FAULT,
    Client,
    HwutError,
    client_config_path,
    exit_code_for,
    resolve_settings,
    write_client_config,
)
from .config import ConfigError, describe_options, load_config
from .users import UserError, UserStore

#: The ``hello`` fixture, shipped as package data so that ``hwut demo`` works from any install.
DEMO_FIRMWARE = Path(__file__).resolve().parent / "demo" / "hello.elf"

SUBMIT_HELP = f"""Submit FILE (ELF, Intel HEX or BIN) to run on BOARD for at most LIMIT seconds.

\b
With --wait: the queue position goes to stderr while the job waits, the board's
output streams to stdout while it runs, and the exit status tells how it ended:
  the firmware's own exit code (0-255) when it exited by semihosting,
  0   the time limit was reached (the normal end of a firmware that never exits),
  {EXIT_ERROR} ERROR (the infrastructure failed: backend crashed or hung, server restarted),
  {EXIT_CANCELED} CANCELED,
  {EXIT_FAULT} the firmware faulted (HardFault),
  {EXIT_CLIENT}   the request failed (connection, authentication, refused upload).
Without --wait it prints the job as JSON and exits 0.
"""


def _config(config_path: str | None, **cli: Any):
    try:
        return load_config(Path(config_path) if config_path else None, cli=cli)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _users(data_dir: str | None, config_path: str | None) -> UserStore:
    from .store import users_path
    config = _config(config_path, data_dir=data_dir)
    return UserStore(users_path(config.data_dir))


def _client(ctx: click.Context) -> Client:
    return Client(resolve_settings(**ctx.obj))


def _fail(exc: HwutError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_CLIENT)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


@click.group()
@click.version_option(__version__, prog_name="hwut")
@click.option("--url", envvar="HWUT_URL", help="Server URL, e.g. http://127.0.0.1:5000")
@click.option("--token", envvar="HWUT_TOKEN", help="API token (Authorization: Bearer).")
@click.option("--user", envvar="HWUT_USER", help="User name for HTTP Basic.")
@click.option("--password", envvar="HWUT_PASSWORD", help="Password for HTTP Basic.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(ctx: click.Context, url: str | None, token: str | None, user: str | None,
         password: str | None, verbose: bool) -> None:
    """HWUT: run firmware on emulated or real boards and get back what the board printed."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("hwut").setLevel(logging.INFO)
    ctx.obj = {"url": url, "token": token, "user": user, "password": password}


# ---- server side ------------------------------------------------------------------------

@main.command(epilog="Options (config [options] table, environment, default):\n\n"
              + describe_options().replace("\n", "\n\n"))
@click.option("--host", help="Listen address (server.host).")
@click.option("--port", type=int, help="Listen port, 0 for any free one (server.port).")
@click.option("--threads", type=int, help="HTTP worker threads (server.threads).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory (data_dir).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True),
              help="Server config TOML (default: the shipped one).")
def serve(host: str | None, port: int | None, threads: int | None, data_dir: str | None,
          config_path: str | None) -> None:
    """Run the HWUT server with waitress until interrupted."""
    from .server import BackgroundServer
    from .service import DataDirInUse, build_service, ensure_admin

    config = _config(config_path, **{"server.host": host, "server.port": port,
                                     "server.threads": threads, "data_dir": data_dir})
    try:
        service = build_service(config)
    except DataDirInUse as exc:
        raise click.ClickException(str(exc)) from None
    try:
        server = BackgroundServer(service.app, config["server.host"], config["server.port"],
                                  config["server.threads"])
    except OSError as exc:
        service.stop()
        raise click.ClickException(f"cannot listen on {config['server.host']}:"
                                   f"{config['server.port']}: {exc}") from None
    created = ensure_admin(service.store)
    if created:
        name, password, token = created
        path = client_config_path()
        write_client_config(path, server.url, token)
        click.echo(f"Created the first user '{name}' (admin). Shown once, keep them:\n"
                   f"  password: {password}\n  token:    {token}\n"
                   f"The URL and token were written to {path}.")
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
def options() -> None:
    """List every server option with its environment variable and default."""
    click.echo(describe_options())


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops the server like Ctrl-C: workers cancel their jobs and exit."""
    raise KeyboardInterrupt


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--board", default="nucleo-f303re", show_default=True)
@click.option("--limit", default=1, show_default=True, help="Time limit in seconds.")
def demo(file: str | None, board: str, limit: int) -> None:
    """Start a throw-away server, run a fixture firmware through it and print its output.

    The server listens on a free loopback port with a temporary data dir and the
    shipped config; FILE defaults to the shipped ``hello`` fixture (fixtures/build/hello.elf).
    """
    from .server import BackgroundServer
    from .service import build_service

    firmware = Path(file) if file else DEMO_FIRMWARE
    if not firmware.exists():
        raise click.ClickException(f"{firmware} does not exist; pass a firmware FILE")
    with tempfile.TemporaryDirectory(prefix="hwut-demo-") as data_dir:
        config = _config(None, data_dir=data_dir)
        service = build_service(config)
        _, _, token = service.store.users.add("demo", admin=True)
        server = BackgroundServer(service.app, "127.0.0.1", 0, 4).start()
        service.start()
        click.echo(f"HWUT demo server on {server.url}; submitting {firmware.name} to {board} "
                   f"with a {limit} s limit", err=True)
        try:
            with Client(resolve_settings(url=server.url, token=token, environ={})) as client:
                job = client.submit(firmware, board, limit)
                job = client.wait(job["id"], on_log=_stream, poll=0.1)
        except HwutError as exc:
            _fail(exc)
        finally:
            service.stop()
            server.stop()
        click.echo(f"\n-- job {job['id']} {job['status']} "
                   f"(stop reason {job.get('stop_reason')}, exit code {job.get('exit_code')})",
                   err=True)
        sys.exit(exit_code_for(job))


# ---- client side ------------------------------------------------------------------------

def _stream(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


@main.command(help=SUBMIT_HELP)
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--board", "-b", required=True, help="Board name (see `hwut boards`).")
@click.option("--limit", "-l", type=int, help="Time limit in seconds (server default 60).")
@click.option("--comment", "-c", help="Title or description of the job.")
@click.option("--input", "-i", "console_input",
              help="Text sent to the board's console once the firmware listens.")
@click.option("--press", "-p", "presses", multiple=True, metavar="BUTTON@S[-S]",
              help="Press a board button at a virtual time, e.g. B1@0.5-0.7 (repeatable).")
@click.option("--wait", "-w", is_flag=True, help="Wait, stream the log, exit with its code.")
@click.pass_context
def submit(ctx: click.Context, file: str, board: str, limit: int | None, comment: str | None,
           console_input: str | None, presses: tuple[str, ...], wait: bool) -> None:
    try:
        with _client(ctx) as client:
            job = client.submit(Path(file), board, limit, comment, console_input=console_input,
                                presses=list(presses))
            if not wait:
                _print_json(job)
                return
            click.echo(f"job {job['id']} submitted", err=True)
            last: list[int | None] = [None]

            def on_queue(position: int | None) -> None:
                if position != last[0]:
                    click.echo(f"job {job['id']} waiting, position {position} in the queue",
                               err=True)
                    last[0] = position

            final = client.wait(job["id"], on_queue=on_queue, on_log=_stream)
    except HwutError as exc:
        _fail(exc)
    click.echo(f"job {final['id']} {final['status']} (stop reason {final.get('stop_reason')}, "
               f"exit code {final.get('exit_code')}"
               + (f", {final['detail']}" if final.get("detail") else "") + ")", err=True)
    sys.exit(exit_code_for(final))


@main.command()
@click.argument("job_id", type=int)
@click.pass_context
def status(ctx: click.Context, job_id: int) -> None:
    """Show a job as JSON."""
    try:
        with _client(ctx) as client:
            _print_json(client.job(job_id))
    except HwutError as exc:
        _fail(exc)


@main.command()
@click.argument("job_id", type=int)
@click.option("--follow", "-f", is_flag=True, help="Keep streaming until the job ends.")
@click.pass_context
def log(ctx: click.Context, job_id: int, follow: bool) -> None:
    """Print a job's UART log (so far)."""
    try:
        with _client(ctx) as client:
            if follow:
                client.wait(job_id, on_log=_stream)
            else:
                _stream(client.log(job_id))
    except HwutError as exc:
        _fail(exc)


@main.command()
@click.argument("job_id", type=int)
@click.pass_context
def cancel(ctx: click.Context, job_id: int) -> None:
    """Cancel a WAITING, QUEUED or RUNNING job."""
    try:
        with _client(ctx) as client:
            client.cancel(job_id)
    except HwutError as exc:
        _fail(exc)
    click.echo(f"job {job_id} canceled")


@main.command()
@click.option("--limit", default=50, show_default=True)
@click.option("--offset", default=0, show_default=True)
@click.option("--status", help="Only jobs with this status.")
@click.option("--board", help="Only jobs for this board.")
@click.pass_context
def jobs(ctx: click.Context, limit: int, offset: int, status: str | None,
         board: str | None) -> None:
    """List jobs, newest first (your own; all of them for admins)."""
    try:
        with _client(ctx) as client:
            for job in client.jobs(limit, offset, status, board):
                click.echo(f"{job['id']:>8}  {job['created']}  {job['status']:<9} {job['owner']}")
    except HwutError as exc:
        _fail(exc)


@main.command()
@click.option("--extended", "-x", is_flag=True, help="With instances and their state.")
@click.pass_context
def boards(ctx: click.Context, extended: bool) -> None:
    """List the boards the server offers."""
    try:
        with _client(ctx) as client:
            found = client.boards(True)
    except HwutError as exc:
        _fail(exc)
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
            status = "available" if avail.get("ok") else "NOT available"
            detail = f": {avail['detail']}" if avail.get("detail") else ""
            click.echo(f"  {inst['name']:<22} {inst.get('backend', ''):<8} "
                       f"{inst.get('state', ''):<8} {status}{detail}")


# ---- users ------------------------------------------------------------------------------

@main.group()
def user() -> None:
    """Manage users directly in the data dir (works whether or not the server runs)."""


_data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False),
                                help="Data directory (default: data_dir option).")
_config_option = click.option("--config", "config_path",
                              type=click.Path(dir_okay=False, exists=True),
                              help="Server config TOML.")


@user.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Give the admin role.")
@click.option("--password", "new_password", help="Password (default: a random one).")
@_data_dir_option
@_config_option
def user_add(name: str, admin: bool, new_password: str | None, data_dir: str | None,
             config_path: str | None) -> None:
    """Create user NAME and print its password and API token."""
    try:
        created, password, token = _users(data_dir, config_path).add(name, admin,
                                                                     new_password)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user:     {created.name} ({created.role})")
    if not new_password:
        click.echo(f"password: {password}")
    click.echo(f"token:    {token}")


@user.command("list")
@_data_dir_option
@_config_option
def user_list(data_dir: str | None, config_path: str | None) -> None:
    """List users and their roles."""
    for record in _users(data_dir, config_path).list():
        click.echo(f"{record['name']:<20} {record['role']:<6} tokens: {record['tokens']}")


@user.command("token")
@click.argument("name")
@_data_dir_option
@_config_option
def user_token(name: str, data_dir: str | None, config_path: str | None) -> None:
    """Issue a new API token for NAME and print it."""
    try:
        click.echo(_users(data_dir, config_path).new_token(name))
    except UserError as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":
    main()
