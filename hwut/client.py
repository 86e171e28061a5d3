"""An importable HTTP client for the v1 API (the CLI is built on it).

Settings come from arguments, then the environment (HWUT_URL, HWUT_TOKEN,
HWUT_USER, HWUT_PASSWORD, HWUT_PROFILE), then a named profile of the client
config file (``~/.config/hwut/client.toml`` or ``$HWUT_CLIENT_CONFIG``), which
``hwut serve`` writes when it creates a data dir's first admin so that a local
``hwut submit`` needs no setup.

The exit codes of the ``hwut`` command live here too (:data:`EXIT_CODES`): the CLI's
help, the README table and :func:`exit_code_for` all come from that one table.
"""
from __future__ import annotations

import hashlib
import os
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import tomli_w

from . import follow
from .follow import TimeCallback
from .images import ImageRef, parse_ref
from .verdict import Criteria, criteria_params

#: One image of a job that carries several: a path (``app.bin@0x0800A000`` places a BIN),
#: an ImageRef, or the bytes.
ImageArg = bytes | str | Path | ImageRef

ENDED = ("FINISHED", "ERROR", "CANCELED")

# ---- exit codes ------------------------------------------------------------------------
#: The largest firmware exit code passed through as the process's own exit status.
FIRMWARE_EXIT_MAX = 31
EXIT_LIMIT_DEMO = 0
EXIT_FIRMWARE_OTHER = 32
EXIT_FAILED = 41
EXIT_LIMIT = 42
EXIT_FAULT = 43
EXIT_CANCELED = 44
EXIT_ERROR = 45
EXIT_TIMEOUT = 46
EXIT_CPU_LIMIT = 47
EXIT_OUTPUT_LIMIT = 48
EXIT_USAGE = 64
EXIT_REFUSED = 65
EXIT_UNREACHABLE = 69
EXIT_SERVER = 70
EXIT_AUTH = 77
EXIT_INTERRUPTED = 130

#: Every exit status of the ``hwut`` command and what it means, in order; the help text
#: and the README table are written from this.
EXIT_CODES: tuple[tuple[str, str], ...] = (
    (f"0-{FIRMWARE_EXIT_MAX}", "the firmware exited (semihosting) with this code; with "
                               "criteria (--expect, --fail, ...): 0 is the verdict passed"),
    (str(EXIT_FIRMWARE_OTHER), f"the firmware exited with a code outside 0-{FIRMWARE_EXIT_MAX}"
                               "; the real code is printed"),
    (str(EXIT_FAILED), "with criteria: the verdict is failed (the reason is printed)"),
    (str(EXIT_LIMIT), "the time limit was reached (hwut demo: 0)"),
    (str(EXIT_FAULT), "the firmware faulted (e.g. HardFault)"),
    (str(EXIT_CANCELED), "the job was canceled (with criteria: the verdict is canceled)"),
    (str(EXIT_ERROR), "the job is ERROR: the infrastructure failed, not the firmware "
                      "(with criteria: the verdict is error)"),
    (str(EXIT_TIMEOUT), "gave up waiting (--timeout); the job goes on"),
    (str(EXIT_CPU_LIMIT), "the job used its CPU budget: firmware too slow to emulate"),
    (str(EXIT_OUTPUT_LIMIT), "the firmware printed more than a job keeps (log or trace cap)"),
    (str(EXIT_USAGE), "usage error: bad option or argument, unknown profile, bad config"),
    (str(EXIT_REFUSED), "request refused: a limit checked before sending, or a 4xx answer"),
    (str(EXIT_UNREACHABLE), "server unreachable, or it cannot run the board now (503)"),
    (str(EXIT_SERVER), "the server failed (other 5xx) or is not an HWUT server"),
    (str(EXIT_AUTH), "authentication failed or permission denied (401, 403)"),
    (str(EXIT_INTERRUPTED), "interrupted (Ctrl-C)"),
)


def exit_table(indent: str = "  ") -> str:
    """The exit codes as aligned text, for ``--help``."""
    return "\n".join(f"{indent}{code:<6} {meaning}" for code, meaning in EXIT_CODES)


def exit_code_for_status(status: int) -> int:
    """The exit code for a failed request: HTTP status, or 0 for no answer at all."""
    if status == 0 or status == 503:
        return EXIT_UNREACHABLE
    if status in (401, 403):
        return EXIT_AUTH
    if status >= 500:
        return EXIT_SERVER
    return EXIT_REFUSED


class HwutError(Exception):
    """The server answered with an error (or could not be reached: status 0).

    ``exit_code`` is the ``hwut`` command's exit status for it (see :data:`EXIT_CODES`).
    """

    def __init__(self, status: int, title: str, description: str,
                 exit_code: int | None = None) -> None:
        super().__init__(f"{status} {title}: {description}" if status else description)
        self.status = status
        self.title = title
        self.description = description
        self.exit_code = exit_code_for_status(status) if exit_code is None else exit_code


class LimitError(HwutError):
    """A submit the server would refuse, found before anything was sent."""

    def __init__(self, description: str) -> None:
        super().__init__(0, "Refused", description, EXIT_REFUSED)


class WaitTimeout(HwutError):
    """``wait`` gave up; the job itself goes on."""

    def __init__(self, job: Mapping[str, Any], timeout: float, why: str) -> None:
        super().__init__(0, "Timeout",
                         f"gave up waiting for job {job['id']} after {timeout:g} s "
                         f"(still {job['status']}{': ' + why if why else ''}); the job goes "
                         f"on: `hwut status {job['id']}`, `hwut cancel {job['id']}`",
                         EXIT_TIMEOUT)
        self.job = dict(job)


class ConfigError(HwutError):
    """The client config or the chosen profile is unusable."""

    def __init__(self, description: str) -> None:
        super().__init__(0, "Client config", description, EXIT_USAGE)


#: With criteria, the exit status is the verdict's (EXIT_CODES).
VERDICT_EXIT = {"passed": 0, "failed": EXIT_FAILED, "error": EXIT_ERROR,
                "canceled": EXIT_CANCELED}


def exit_code_for(job: Mapping[str, Any], limit_code: int = EXIT_LIMIT) -> int:
    """How the ``hwut`` command exits for an ended job (see :data:`EXIT_CODES`)."""
    status, reason = job.get("status"), job.get("stop_reason")
    if job.get("verdict") in VERDICT_EXIT:
        return VERDICT_EXIT[job["verdict"]]
    if status == "ERROR":
        return EXIT_ERROR
    if status == "CANCELED":
        return EXIT_CANCELED
    if reason == "fault":
        return EXIT_FAULT
    if reason == "cpu_limit":
        return EXIT_CPU_LIMIT
    if reason == "output_limit":
        return EXIT_OUTPUT_LIMIT
    if reason == "exit":
        code = job.get("exit_code")
        if isinstance(code, int) and 0 <= code <= FIRMWARE_EXIT_MAX:
            return code
        return EXIT_FIRMWARE_OTHER
    return limit_code


def describe_outcome(job: Mapping[str, Any], limit_code: int = EXIT_LIMIT) -> str:
    """One line saying how the job ended, in words a user acts on, with the exit status."""
    head = f"job {job.get('id')} {job.get('status')}"
    if job.get("verdict") in VERDICT_EXIT:
        return (f"{head}: {str(job['verdict']).upper()}: {job.get('verdict_reason')}; "
                f"exit status {exit_code_for(job, limit_code)}")
    detail = job.get("detail")
    reason = job.get("stop_reason")
    status = job.get("status")
    if status == "ERROR":
        text = ("infrastructure error, not the firmware's result"
                + (f": {detail}" if detail else ""))
    elif status == "CANCELED":
        text = detail or "canceled"
    elif reason == "fault":
        text = "the firmware FAULTED" + (f" ({detail})" if detail else "")
    elif reason == "exit":
        code = job.get("exit_code")
        text = f"the firmware exited with code {code}"
        if not (isinstance(code, int) and 0 <= code <= FIRMWARE_EXIT_MAX):
            text += f" (outside 0-{FIRMWARE_EXIT_MAX}, reported as exit status " \
                    f"{EXIT_FIRMWARE_OTHER})"
    elif reason in ("cpu_limit", "output_limit"):
        text = (detail or f"stop reason {reason}") + ", before the time limit"
    elif reason == "limit":
        limit = job.get("duration_limit_seconds")
        text = f"time limit reached ({limit:g} s) without the firmware exiting" \
            if isinstance(limit, (int, float)) else "time limit reached"
    else:
        text = f"stop reason {reason}" + (f" ({detail})" if detail else "")
    return f"{head}: {text}; exit status {exit_code_for(job, limit_code)}"


# ---- client config and profiles --------------------------------------------------------

DEFAULT_PROFILE = "default"
DEFAULT_URL = "http://127.0.0.1:5000"


def client_config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get("HWUT_CLIENT_CONFIG"):
        return Path(environ["HWUT_CLIENT_CONFIG"])
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "hwut" / "client.toml"


def read_profiles(path: Path) -> dict[str, dict[str, Any]]:
    """The profiles of a client config file. The older flat file (``url``, ``token`` at the
    top level) reads as the profile ``default``."""
    if not path.exists():
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the client config {path}: {exc}") from None
    profiles = {name: dict(value) for name, value in data.get("profiles", {}).items()
                if isinstance(value, dict)}
    flat = {k: v for k, v in data.items() if k in ("url", "token", "user")}
    if flat and DEFAULT_PROFILE not in profiles:
        profiles[DEFAULT_PROFILE] = flat
    return profiles


class ProfileConflict(ConfigError):
    """``hwut serve`` would replace a profile that points at another live server."""


def _same_dir(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return os.path.realpath(a) == os.path.realpath(b)


def profile_conflict(path: Path, profile: str, data_dir: Path) -> str | None:
    """Why writing ``profile`` for a server on ``data_dir`` would lose another server's
    credentials, or None when it would not: the profile is new, points at the same data
    dir, or its data dir is gone (that server's tokens went with it)."""
    current = read_profiles(path).get(profile)
    if not current or not current.get("token"):
        return None
    other = current.get("data_dir")
    if _same_dir(other, str(data_dir)):
        return None
    if other and not Path(other).exists():
        return None
    where = f"data dir {other}" if other else "a server (saved before profiles had data dirs)"
    return (f"the client profile {profile!r} in {path} holds the URL and token of "
            f"{current.get('url')} ({where}); not overwritten. Serve with "
            f"`hwut serve --profile NAME` to save this server under another name, then use "
            f"`hwut --profile NAME ...` (or HWUT_PROFILE=NAME)")


def write_client_config(path: Path, url: str, token: str, user: str | None = None,
                        profile: str = DEFAULT_PROFILE, data_dir: Path | None = None) -> None:
    """Save the URL and token as ``profile``, keeping the other profiles; the file is
    readable by the owner only (it holds credentials). A flat file is converted."""
    profiles = read_profiles(path)
    entry: dict[str, Any] = {"url": url, "token": token}
    if user:
        entry["user"] = user
    if data_dir is not None:
        entry["data_dir"] = str(Path(data_dir).resolve())
    profiles[profile] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        tomli_w.dump({"profiles": profiles}, fh)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Settings:
    url: str
    token: str | None = None
    user: str | None = None
    password: str | None = None
    profile: str | None = None


def resolve_settings(url: str | None = None, token: str | None = None,
                     user: str | None = None, password: str | None = None,
                     environ: Mapping[str, str] | None = None,
                     profile: str | None = None) -> Settings:
    """Flags win over the environment, which wins over the profile in the client config.

    The profile is ``profile``, else ``$HWUT_PROFILE``, else ``default``; naming one that
    the file does not hold is an error (a typo must not reach another server)."""
    environ = os.environ if environ is None else environ
    path = client_config_path(environ)
    asked = profile or environ.get("HWUT_PROFILE") or None
    profiles = read_profiles(path)
    name = asked or DEFAULT_PROFILE
    stored = profiles.get(name)
    if stored is None:
        if asked:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(f"no client profile {asked!r} in {path}; known: {known}")
        stored = {}
    url = url or environ.get("HWUT_URL") or stored.get("url") or DEFAULT_URL
    user = user or environ.get("HWUT_USER")
    password = password or environ.get("HWUT_PASSWORD")
    token = token or environ.get("HWUT_TOKEN")
    if not token and not user:
        token = stored.get("token")
    return Settings(url.rstrip("/"), token, user, password, name if stored else None)


def token_id(token: str) -> str:
    """The public name of a token: the start of its SHA-256 (what the server stores)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:12]


# ---- the client ------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """What the server accepts on submit (``GET /limits``)."""

    max_executable_bytes: int | None = None
    min_duration_seconds: int | None = None
    max_duration_seconds: int | None = None
    default_duration_seconds: int | None = None
    max_input_bytes: int | None = None
    max_comment_chars: int | None = None
    max_images: int | None = None
    max_pins: int | None = None


class Client:
    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None,
                 timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        auth: Any = None
        headers = {}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        elif settings.user:
            auth = httpx.BasicAuth(settings.user, settings.password or "")
        self.settings = settings
        self.sleep = sleep
        self.monotonic = monotonic
        try:
            self._http = httpx.Client(base_url=settings.url + "/apiv1", headers=headers,
                                      auth=auth, timeout=timeout, transport=transport)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot use the server URL {settings.url!r} or the "
                              f"credentials: {exc}") from None
        self._limits: Limits | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise HwutError(0, "Connection failed",
                            f"cannot reach {self.settings.url}: {exc}") from None
        except (httpx.InvalidURL, httpx.StreamError, ValueError, TypeError) as exc:
            # e.g. a URL too long for the server, a header that is not ASCII
            raise HwutError(0, "Request failed", f"cannot send the request to "
                            f"{self.settings.url}: {exc}", EXIT_USAGE) from None
        if response.status_code >= 400:
            try:
                body = response.json()
                title, description = body.get("title", ""), body.get("description", "")
            except (ValueError, AttributeError):
                title, description = response.reason_phrase, response.text[:200]
            raise HwutError(response.status_code, title, description)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise HwutError(0, "Bad answer", f"{self.settings.url} answered {method} {path} "
                            "with something that is not JSON: is it an HWUT server?",
                            EXIT_SERVER) from None

    # ---- the API ---------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return self._json("GET", "/version")

    def auth_test(self) -> dict[str, Any]:
        return self._json("GET", "/auth_test")

    def limits(self) -> Limits:
        """The server's submit limits; an older server without ``/limits`` gives the
        fixed ones only (input bytes, comment length)."""
        if self._limits is None:
            try:
                data = self._json("GET", "/limits")
            except HwutError as exc:
                if exc.status != 404:
                    raise
                from .inputs import MAX_INPUT_BYTES
                data = {"max_input_bytes": MAX_INPUT_BYTES, "max_comment_chars": 1000}
            names = Limits.__dataclass_fields__
            self._limits = Limits(**{k: v for k, v in data.items()
                                     if k in names and isinstance(v, int)})
        return self._limits

    def check_submit(self, size: int, limit: int | None, comment: str | None,
                     console_input: str | None) -> None:
        """Refuse (LimitError) what the server would refuse, before uploading anything."""
        lim = self.limits()
        if lim.max_executable_bytes is not None and size > lim.max_executable_bytes:
            raise LimitError(f"the executable is {size} bytes; the server accepts at most "
                             f"{lim.max_executable_bytes} (limits.max_executable_bytes)")
        if limit is not None:
            low, high = lim.min_duration_seconds, lim.max_duration_seconds
            if (low is not None and limit < low) or (high is not None and limit > high):
                raise LimitError(f"the time limit is {limit} s; the server accepts "
                                 f"{low}-{high} s")
        if console_input and lim.max_input_bytes is not None:
            n = len(console_input.encode("utf-8", "surrogateescape"))
            if n > lim.max_input_bytes:
                raise LimitError(f"--input is {n} bytes; the server accepts at most "
                                 f"{lim.max_input_bytes} bytes of console input")
        if comment and lim.max_comment_chars is not None \
                and len(comment) > lim.max_comment_chars:
            raise LimitError(f"--comment is {len(comment)} characters; the server accepts "
                             f"at most {lim.max_comment_chars}")

    @staticmethod
    def _read(image: ImageArg, n: int) -> tuple[str, bytes, int | None]:
        """(name, bytes, BIN address) of one image argument."""
        if isinstance(image, bytes):
            return f"image{n}", image, None
        ref = image if isinstance(image, ImageRef) else parse_ref(str(image))
        try:
            return ref.path.name, ref.path.read_bytes(), ref.address
        except OSError as exc:
            raise HwutError(0, "Unreadable", f"cannot read {ref.path}: {exc}",
                            EXIT_USAGE) from None

    def submit(self, executable: bytes | Path | str | Sequence[ImageArg], board: str,
               limit: int | None = None,
               comment: str | None = None, console_input: str | None = None,
               presses: list[str] | None = None, check: bool = True,
               criteria: Criteria | None = None, trace: str | None = None,
               pins: list[str] | None = None, realtime: bool = False) -> dict[str, Any]:
        """Submit one job. ``executable``: a path or the bytes (one image, the v1 upload),
        or a list of them for ONE job with several images (a bootloader and its
        application), sent as multipart/form-data; in a list, ``app.bin@0x0800A000``
        places a BIN. ``pins``: scripted pin levels (``PA0@0:1``). ``realtime``: the
        board's time keeps to the wall clock, for a job that is talked to while it runs
        (:meth:`write`, :meth:`press`)."""
        if isinstance(executable, (bytes, str, Path)):
            several, images = False, [self._read(executable, 1)]
        else:
            several, images = True, [self._read(i, n) for n, i in enumerate(executable, 1)]
        if several and not images:
            raise HwutError(0, "No image", "a job needs at least one image", EXIT_USAGE)
        if check:
            for _, data, _ in images:
                self.check_submit(len(data), limit, comment, console_input)
            lim = self.limits()
            if lim.max_images is not None and len(images) > lim.max_images:
                raise LimitError(f"{len(images)} images in one job; the server accepts at "
                                 f"most {lim.max_images}")
            if pins and lim.max_pins is not None and len(pins) > lim.max_pins:
                raise LimitError(f"{len(pins)} pin levels; the server accepts at most "
                                 f"{lim.max_pins}")
        params: list[tuple[str, Any]] = [("board", board)]
        if limit is not None:
            params.append(("duration_limit_seconds", limit))
        if comment is not None:
            params.append(("comment", comment))
        if console_input:
            params.append(("input", console_input))
        params += [("press", p) for p in presses or ()]
        if criteria is not None:  # in order: an ordered expectation list stays ordered
            params += criteria_params(criteria)
        if trace:
            params.append(("trace", trace))
        params += [("pin", p) for p in pins or ()]
        if realtime:
            params.append(("realtime", "true"))
        if not several:
            return self._json("PUT", "/jobs/submit", params=params, content=images[0][1])
        files = [("image" if at is None else f"image@0x{at:08X}",
                  (name, data, "application/octet-stream")) for name, data, at in images]
        return self._json("PUT", "/jobs/submit", params=params, files=files)

    def write(self, job_id: int, text: str, ready_timeout: float = 0.0) -> dict[str, Any]:
        """Console input into the running job, applied at the board's time its backend
        takes it; the answer's ``board_time_s`` is the board's time the server knew (the
        input lands at or after it). HwutError 409 when the job is not running: see
        :meth:`send_input` for ``ready_timeout``."""
        return self.send_input(job_id, {"text": text}, ready_timeout)

    def press(self, job_id: int, button: str, hold_s: float = 0.1,
              ready_timeout: float = 0.0) -> dict[str, Any]:
        """Press ``button`` of the running job's board for ``hold_s`` board seconds."""
        return self.send_input(job_id, {"press": button, "hold_s": hold_s}, ready_timeout)

    def send_input(self, job_id: int, body: Mapping[str, Any],
                   ready_timeout: float = 0.0) -> dict[str, Any]:
        """POST ``body`` to the job's input. A job that is queued, or running with its
        board still starting, answers 409; for up to ``ready_timeout`` seconds that is
        retried every 50 ms (a client that submits and talks at once need not time it).
        A job that has ended raises its 409 at once."""
        started = self.monotonic()
        while True:
            try:
                return dict(self._json("POST", f"/jobs/{job_id}/input", json=dict(body)))
            except HwutError as exc:
                if exc.status != 409 or self.monotonic() - started >= ready_timeout:
                    raise
                if self.job(job_id)["status"] in ENDED:
                    raise
            self.sleep(0.05)

    def job(self, job_id: int) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{job_id}")

    def cancel(self, job_id: int) -> None:
        self._request("DELETE", f"/jobs/{job_id}")

    def is_finished(self, job_id: int) -> bool:
        try:
            self._request("GET", f"/jobs/{job_id}/is_finished")
        except HwutError as exc:
            if exc.status != 404:
                raise
            self.job(job_id)  # raises 404 itself when there is no such job
            return False
        return True

    def jobs(self, limit: int = 50, offset: int = 0, status: str | None = None,
             board: str | None = None, extended: bool = False) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        if board:
            params["board"] = board
        if extended:
            params["extended"] = "true"
        return self._json("GET", "/jobs", params=params)

    def log(self, job_id: int, offset: int = 0) -> bytes:
        return self._request("GET", f"/jobs/{job_id}/log", params={"offset": offset}).content

    def junit(self, job_id: int) -> bytes:
        """The ended job's JUnit XML report (a ``<testsuites>`` with one testsuite)."""
        return self._request("GET", f"/jobs/{job_id}/junit").content

    def other(self, job_id: int) -> bytes:
        """The ITM/SWO trace."""
        return self._request("GET", f"/jobs/{job_id}/other").content

    def trace(self, job_id: int) -> bytes:
        """The pin trace (VCD), once the job ended; 404 when it kept none."""
        return self._request("GET", f"/jobs/{job_id}/trace.vcd").content

    def infra_log(self, job_id: int) -> bytes:
        """What the emulator or probe said about the run."""
        return self._request("GET", f"/jobs/{job_id}/infra_log").content

    def boards(self, extended: bool = False) -> list[dict[str, Any]]:
        return self._json("GET", "/targets/boards",
                          params={"extended": "true" if extended else "false"})

    def board(self, name: str, extended: bool = False) -> dict[str, Any]:
        return self._json("GET", f"/targets/boards/{name}",
                          params={"extended": "true" if extended else "false"})

    def board_state(self, name: str, online: bool) -> dict[str, Any]:
        """Put a board's instances (or one, "board#0", or one on a worker host,
        "host/board#0") back in service, or take them out (admin); the board's extended
        record."""
        board = name.split("#", 1)[0].rpartition("/")[2]
        body = {"instance": name} if "#" in name else {}
        return self._json("POST", f"/targets/boards/{board}/{'online' if online else 'offline'}",
                          json=body)

    def microcontrollers(self) -> list[dict[str, Any]]:
        return self._json("GET", "/targets/microcontrollers")

    # ---- users -----------------------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        return self._json("GET", "/users")

    def add_user(self, name: str, admin: bool = False, password: str | None = None
                 ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "role": "admin" if admin else "user"}
        if password:
            body["password"] = password
        return self._json("POST", "/users", json=body)

    def delete_user(self, name: str) -> None:
        self._request("DELETE", f"/users/{name}")

    def set_password(self, name: str, password: str) -> None:
        self._request("PUT", f"/users/{name}/password", json={"password": password})

    def new_token(self, name: str) -> str:
        return self._json("POST", f"/users/{name}/tokens")["token"]

    def tokens(self, name: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/users/{name}/tokens")

    def revoke_token(self, name: str, token_or_id: str) -> None:
        """Revoke one token, given as the token itself (hashed here, never sent) or its id."""
        ident = token_or_id if len(token_or_id) == 12 else token_id(token_or_id)
        self._request("DELETE", f"/users/{name}/tokens/{ident}")

    def revoke_all_tokens(self, name: str) -> int:
        return int(self._json("DELETE", f"/users/{name}/tokens")["revoked"])

    # ---- waiting ---------------------------------------------------------------------

    def why_waiting(self, job: Mapping[str, Any]) -> str:
        """Why a WAITING job has not started: no instance of its board can run it, or its
        place in the queue."""
        board = job.get("board")
        if board:
            try:
                info = self.board(str(board), extended=True)
            except HwutError as exc:
                if exc.status == 404:
                    return f"board {board} no longer exists on the server"
                if exc.status != 403:
                    raise
                info = None
            if info is not None:
                instances = info.get("instances") or []
                usable = [i for i in instances if (i.get("availability") or {}).get("ok")]
                if not usable:
                    if not instances:
                        return f"no instance of board {board} exists on the server"
                    details = "; ".join(
                        f"{i.get('name')}: {(i.get('availability') or {}).get('detail')}"
                        for i in instances)
                    return f"no instance of board {board} is available ({details})"
        position = job.get("queue_position")
        if position is None:
            return "waiting for a board instance"
        return f"position {position} in the queue for {board}"

    def follow(self, job_id: int, on_log: Callable[[bytes], None] = lambda b: None,
               timeout: float | None = 600.0,
               on_wait: Callable[[str], None] = lambda why: None, offset: int = 0,
               on_time: TimeCallback | None = None) -> dict[str, Any]:
        """Like :meth:`wait`, but the server pushes the log as it grows (hwut.follow);
        ``on_time`` gets the board's time of what follows (see hwut.follow)."""
        return follow.follow(self, job_id, on_log, on_wait, timeout, offset, on_time)

    def wait(self, job_id: int, on_queue: Callable[[int | None], None] = lambda p: None,
             on_log: Callable[[bytes], None] = lambda b: None, poll: float = 0.3,
             timeout: float | None = 600.0,
             on_wait: Callable[[str], None] = lambda why: None,
             start_offset: int = 0) -> dict[str, Any]:
        """Poll until the job ends, reporting why it waits and new log bytes (from
        ``start_offset`` on). :meth:`follow` does the same without polling.

        ``on_queue`` gets the queue position while the job is WAITING, ``on_wait`` a
        sentence saying why it waits (each time it changes). After ``timeout`` seconds
        (None: never) :class:`WaitTimeout` is raised; the job is not canceled. Polls start
        50 ms apart and slow down to ``poll`` seconds, so short jobs return at once."""
        offset = start_offset
        started = self.monotonic()
        why = ""
        delay = min(0.05, poll)
        while True:
            job = self.job(job_id)
            status = job["status"]
            if status == "WAITING":
                on_queue(job.get("queue_position"))
                now_why = self.why_waiting(job)
                if now_why != why:
                    why = now_why
                    on_wait(why)
            elif status != "QUEUED":
                why = ""
                try:
                    chunk = self.log(job_id, offset)
                except HwutError as exc:
                    if exc.status != 404:
                        raise
                    chunk = b""
                offset += len(chunk)
                if chunk:
                    on_log(chunk)
            if status in ENDED:
                return job
            if timeout is not None and self.monotonic() - started > timeout:
                raise WaitTimeout(job, timeout, why)
            self.sleep(delay)
            delay = min(delay * 2, poll)
