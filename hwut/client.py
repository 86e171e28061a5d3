"""An importable HTTP client for the v1 API (the CLI is built on it).

Settings come from arguments, then the environment (HWUT_URL, HWUT_TOKEN,
HWUT_USER, HWUT_PASSWORD), then the client config file
(``~/.config/hwut/client.toml`` or ``$HWUT_CLIENT_CONFIG``), which the first
``hwut serve`` writes so that a local ``hwut submit`` needs no setup.
"""
from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import tomli_w

ENDED = ("FINISHED", "ERROR", "CANCELED")

#: ``hwut submit --wait`` exit codes besides the firmware's own exit code.
EXIT_LIMIT = 0
EXIT_ERROR = 100
EXIT_CANCELED = 101
EXIT_FAULT = 102
EXIT_CLIENT = 1


class HwutError(Exception):
    """The server answered with an error (or could not be reached: status 0)."""

    def __init__(self, status: int, title: str, description: str) -> None:
        super().__init__(f"{status} {title}: {description}" if status else description)
        self.status = status
        self.title = title
        self.description = description


def client_config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get("HWUT_CLIENT_CONFIG"):
        return Path(environ["HWUT_CLIENT_CONFIG"])
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "hwut" / "client.toml"


def write_client_config(path: Path, url: str, token: str, user: str | None = None) -> None:
    """Write the URL and token, readable by the owner only (it holds a credential)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"url": url, "token": token}
    if user:
        data["user"] = user
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        tomli_w.dump(data, fh)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Settings:
    url: str
    token: str | None = None
    user: str | None = None
    password: str | None = None


def resolve_settings(url: str | None = None, token: str | None = None,
                     user: str | None = None, password: str | None = None,
                     environ: Mapping[str, str] | None = None) -> Settings:
    """Flags win over the environment, which wins over the client config file."""
    environ = os.environ if environ is None else environ
    path = client_config_path(environ)
    stored: dict[str, Any] = {}
    if path.exists():
        with open(path, "rb") as fh:
            stored = tomllib.load(fh)
    url = url or environ.get("HWUT_URL") or stored.get("url") or "http://127.0.0.1:5000"
    user = user or environ.get("HWUT_USER")
    password = password or environ.get("HWUT_PASSWORD")
    token = token or environ.get("HWUT_TOKEN")
    if not token and not user:
        token = stored.get("token")
    return Settings(url.rstrip("/"), token, user, password)


def exit_code_for(job: Mapping[str, Any]) -> int:
    """The firmware's exit code when it reported one, else a code for how the job ended."""
    status, reason = job.get("status"), job.get("stop_reason")
    if status == "ERROR":
        return EXIT_ERROR
    if status == "CANCELED":
        return EXIT_CANCELED
    if reason == "fault":
        return EXIT_FAULT
    if reason == "exit" and job.get("exit_code") is not None:
        return int(job["exit_code"]) & 0xFF
    return EXIT_LIMIT


class Client:
    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None,
                 timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> None:
        auth: Any = None
        headers = {}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        elif settings.user:
            auth = httpx.BasicAuth(settings.user, settings.password or "")
        self.settings = settings
        self.sleep = sleep
        self._http = httpx.Client(base_url=settings.url + "/apiv1", headers=headers, auth=auth,
                                  timeout=timeout, transport=transport)

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
        if response.status_code >= 400:
            try:
                body = response.json()
                title, description = body.get("title", ""), body.get("description", "")
            except ValueError:
                title, description = response.reason_phrase, response.text[:200]
            raise HwutError(response.status_code, title, description)
        return response

    # ---- the API ---------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return self._request("GET", "/version").json()

    def auth_test(self) -> dict[str, Any]:
        return self._request("GET", "/auth_test").json()

    def submit(self, executable: bytes | Path, board: str, limit: int | None = None,
               comment: str | None = None, console_input: str | None = None,
               presses: list[str] | None = None) -> dict[str, Any]:
        data = Path(executable).read_bytes() if isinstance(executable, (str, Path)) \
            else executable
        params: dict[str, Any] = {"board": board}
        if limit is not None:
            params["duration_limit_seconds"] = limit
        if comment is not None:
            params["comment"] = comment
        if console_input:
            params["input"] = console_input
        if presses:
            params["press"] = list(presses)
        return self._request("PUT", "/jobs/submit", params=params, content=data).json()

    def job(self, job_id: int) -> dict[str, Any]:
        return self._request("GET", f"/jobs/{job_id}").json()

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
             board: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        if board:
            params["board"] = board
        return self._request("GET", "/jobs", params=params).json()

    def log(self, job_id: int, offset: int = 0) -> bytes:
        return self._request("GET", f"/jobs/{job_id}/log", params={"offset": offset}).content

    def other(self, job_id: int) -> bytes:
        return self._request("GET", f"/jobs/{job_id}/other").content

    def boards(self, extended: bool = False) -> list[dict[str, Any]]:
        return self._request("GET", "/targets/boards",
                             params={"extended": "true" if extended else "false"}).json()

    def microcontrollers(self) -> list[dict[str, Any]]:
        return self._request("GET", "/targets/microcontrollers").json()

    def wait(self, job_id: int, on_queue: Callable[[int | None], None] = lambda p: None,
             on_log: Callable[[bytes], None] = lambda b: None, poll: float = 0.3,
             timeout: float | None = None) -> dict[str, Any]:
        """Poll until the job ends, reporting the queue position and new log bytes."""
        offset = 0
        started = time.monotonic()
        while True:
            job = self.job(job_id)
            status = job["status"]
            if status == "WAITING":
                on_queue(job.get("queue_position"))
            elif status != "QUEUED":
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
            if timeout is not None and time.monotonic() - started > timeout:
                raise HwutError(0, "Timeout", f"job {job_id} still {status} after {timeout} s")
            self.sleep(poll)
