"""Serving the app with waitress, in the foreground (``hwut serve``) or a thread (demo, bench)."""
from __future__ import annotations

import threading
from typing import Any

from waitress.server import create_server


class BackgroundServer:
    """waitress in a daemon thread; ``url`` is known once constructed (port 0 allowed)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 4
                 ) -> None:
        self._server = create_server(app, host=host, port=port, threads=threads,
                                     ident="hwut", clear_untrusted_proxy_headers=True)
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
        self._server.close()
        self._server.task_dispatcher.shutdown()  # type: ignore[union-attr]
        self._thread.join(timeout=5)
