"""Serving the app with waitress, in the foreground (``hwut serve``) or a thread (demo, bench)."""
from __future__ import annotations

import json
import threading
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

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

    def execute(self) -> None:
        error = self.request.error
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


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


def server_options(config: Any) -> dict[str, int]:
    """The waitress settings the service's config decides (see ``hwut options``)."""
    return {"max_executable_bytes": int(config["limits.max_executable_bytes"]),
            "channel_timeout": int(config["server.channel_timeout_seconds"]),
            "connection_limit": int(config["server.connection_limit"])}


class BackgroundServer:
    """waitress in a daemon thread; ``url`` is known once constructed (port 0 allowed)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 4,
                 max_executable_bytes: int = 5 * 1024 * 1024, channel_timeout: int = 30,
                 connection_limit: int = 100) -> None:
        # waitress reads a whole body before the app sees it: refuse oversized ones first;
        # idle connections (a stalled reader, headers that never end) are closed
        self._server = create_server(app, host=host, port=port, threads=threads,
                                     ident="hwut", clear_untrusted_proxy_headers=True,
                                     max_request_body_size=max_executable_bytes
                                     + BODY_SLACK_BYTES, channel_timeout=channel_timeout,
                                     cleanup_interval=max(1, min(10, channel_timeout)),
                                     connection_limit=connection_limit)
        self._server.channel_class = JsonErrorChannel  # type: ignore[union-attr]
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
        self._server.task_dispatcher.shutdown()  # type: ignore[union-attr]
        self._server.close()
        self._thread.join(timeout=5)
