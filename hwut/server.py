"""Serving the app with waitress, in the foreground (``hwut serve``) or a thread (demo, bench).

waitress settings the service decides (:func:`server_options`, from the config):

- ``max_request_body_size``: ``limits.max_executable_bytes`` + 64 KiB of framing; a
  larger ``Content-Length`` is refused (JSON 413) before any body byte is read;
- ``channel_timeout``: ``server.channel_timeout_seconds``; a connection idle that long
  (headers that never end, a client that stopped reading) is closed;
- ``connection_limit``: ``server.connection_limit``; past it waitress stops accepting.

Credentials before the body: waitress reads a whole request body (spooling it to a
temp file) before the app sees the request. :class:`EarlyAuthParser` asks the
``early_auth`` check given to :class:`BackgroundServer` as soon as the headers of a
request that announces a body (``Content-Length`` > 0 or chunked) are complete, and
before ``Expect: 100-continue`` is answered; a refusal (401 with the
``WWW-Authenticate`` challenges, or 429) is sent in the API's JSON shape and the
connection is closed without reading the body. The check runs in waitress's I/O
thread, so it must be cheap and never wait (see :meth:`hwut.auth.AuthMiddleware.early_refusal`:
a hash lookup for tokens, a name lookup for Basic; argon2 runs in the app, after the
body, as for every request).
"""
from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import create_server
from waitress.task import ErrorTask
from waitress.utilities import Error

from .auth import Refusal

log = logging.getLogger(__name__)

#: Decides from a request's headers (waitress's keys: ``AUTHORIZATION``) and the client
#: address whether to refuse it before its body is read; None reads the body.
EarlyAuth = Callable[[Mapping[str, str], str], "Refusal | None"]

#: Room for the request line, headers and multipart framing above the executable limit.
BODY_SLACK_BYTES = 64 * 1024
#: waitress answers these itself, before the app sees the request; our words for them.
_WAITRESS_ERRORS = {
    400: "The request could not be parsed as HTTP/1.1.",
    413: "The request body is larger than this server accepts ({max_body} bytes); "
         "executables are limited to {max_executable} bytes.",
    431: "The request headers are too large.",
}


class JsonErrorTask(ErrorTask):
    """waitress's own error answers (an oversized Content-Length, a malformed request) in
    the API's JSON shape, so a client sees one kind of error whoever refused it."""

    # types-waitress has a task's request as an Error and its headers as a Sequence; at
    # run time they are the request's parser (whose .error this answers) and a list
    request: HTTPRequestParser  # type: ignore[assignment]
    response_headers: list[tuple[str, str]]

    def execute(self) -> None:
        error = self.request.error
        if isinstance(error, EarlyRefusal):
            self._refuse(error.refusal)
            return
        assert error is not None  # waitress makes an ErrorTask only for a request in error
        adj = self.channel.server.adj
        template = _WAITRESS_ERRORS.get(error.code, "The request was refused.")
        description = template.format(max_body=adj.max_request_body_size,
                                      max_executable=adj.max_request_body_size - BODY_SLACK_BYTES)
        body = json.dumps({"title": error.reason, "description": description}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)

    def _refuse(self, refusal: Refusal) -> None:
        body = json.dumps({"title": refusal.title, "description": refusal.description}).encode()
        self.status = f"{refusal.status} {refusal.title}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.response_headers.extend(refusal.headers)
        self.set_close_on_finish()  # the body was not read: the connection cannot go on
        self.content_length = len(body)
        self.write(body)


class EarlyRefusal(Error):
    """A request refused from its headers (carried to :class:`JsonErrorTask`)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.description)
        self.refusal = refusal
        self.code = refusal.status
        self.reason = refusal.title


class EarlyAuthParser(HTTPRequestParser):
    """waitress's parser, asking ``early_auth`` once the headers of a request with a body
    are in. A refused request is complete at once (the JSON error task answers it and
    closes the connection) and whatever body bytes came along are dropped unread."""

    def __init__(self, adj: Any, early_auth: EarlyAuth | None = None, client: str = ""
                 ) -> None:
        super().__init__(adj)
        self.early_auth = early_auth
        self.client = client
        self.checked = False
        self.refused = False

    def received(self, data: bytes) -> int:
        if self.refused:
            return len(data)
        consumed: int = super().received(data)
        if (self.early_auth is not None and not self.checked and self.headers_finished
                and not self.completed and self.error is None and self.body_rcv is not None):
            self.checked = True
            try:
                refusal = self.early_auth(self.headers, self.client)
            except Exception:  # a bug in the check must not take the I/O thread down
                log.exception("early authentication check failed; reading the body")
                refusal = None
            if refusal is not None:
                self.refused = True
                self.error = EarlyRefusal(refusal)
                self.expect_continue = False  # no "100 Continue": the body is not wanted
                self.completed = True
                self.connection_close = True
                return len(data)  # the rest of this read is body: dropped
        return consumed


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask
    parser_class = EarlyAuthParser
    #: set per server by :class:`BackgroundServer` (None: no early check)
    early_auth: EarlyAuth | None = None

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None
                 ) -> None:
        super().__init__(server, sock, addr, adj, map)
        client = addr[0] if isinstance(addr, tuple) and addr else str(addr or "")
        # waitress makes each request's parser with parser_class(adj): bind ours
        self.parser_class = functools.partial(  # type: ignore[assignment]
            EarlyAuthParser, early_auth=type(self).early_auth, client=client)


def server_options(config: Any) -> dict[str, int]:
    """The waitress settings the service's config decides (see ``hwut options``)."""
    return {"max_executable_bytes": int(config["limits.max_executable_bytes"]),
            "channel_timeout": int(config["server.channel_timeout_seconds"]),
            "connection_limit": int(config["server.connection_limit"])}


class BackgroundServer:
    """waitress in a daemon thread; ``url`` is known once constructed (port 0 allowed)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 4,
                 max_executable_bytes: int = 5 * 1024 * 1024, channel_timeout: int = 30,
                 connection_limit: int = 100, early_auth: EarlyAuth | None = None) -> None:
        # waitress reads a whole body before the app sees it: refuse oversized ones first;
        # idle connections (a stalled reader, headers that never end) are closed
        self._server = create_server(app, host=host, port=port, threads=threads,
                                     ident="hwut", clear_untrusted_proxy_headers=True,
                                     max_request_body_size=max_executable_bytes
                                     + BODY_SLACK_BYTES, channel_timeout=channel_timeout,
                                     cleanup_interval=max(1, min(10, channel_timeout)),
                                     connection_limit=connection_limit)
        # credentials are checked before a body is read (see the module's docstring)
        self._server.channel_class = type(  # type: ignore[union-attr]
            "HwutChannel", (JsonErrorChannel,), {"early_auth": staticmethod(early_auth)}
            if early_auth is not None else {})
        self.port: int = self._server.effective_port  # type: ignore[union-attr]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown}:{self.port}"
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="hwut-waitress", daemon=True)

    def _serve(self) -> None:
        try:
            self._server.run()
        except OSError:
            # close() pulls the socket from under a select() in progress; expected then
            if not self._stopping:
                raise

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def run(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._server.run()

    def stop(self) -> None:
        self._stopping = True
        # requests in flight finish first: closing first pulls the trigger from under them
        self._server.task_dispatcher.shutdown()
        self._server.close()
        self._thread.join(timeout=5)
