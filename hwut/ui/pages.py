"""The web page: static files under ``/ui``, shipped as package data, no build step.

Everything a page shows comes from the API (``/apiv1``) with the user's own
credentials, sent by the page's script (HTTP Basic or a token, kept in the tab's
session storage); these routes serve only the page itself, the same to everyone,
so they need no sign-in. Why plain HTML and a small script rather than a
framework: a pip install must be enough to run it, and the page is a thin view of
the API (lists, a log, a waveform drawn as SVG).

The files are read once, when the app is made, and served from memory with a
strict Content-Security-Policy (scripts and styles from this origin only).
"""
from __future__ import annotations

from importlib import resources

import falcon

#: The files the page consists of, and their types; nothing else is served.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "wave.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def load_assets() -> dict[str, bytes]:
    """The page's files from the installed package."""
    folder = resources.files("hwut.ui") / "static"
    return {name: (folder / name).read_bytes() for name in ASSETS}


class _Static:
    #: No credentials needed: the page holds no data (see the module docstring).
    anonymous = True

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def _send(self, resp: falcon.Response, name: str) -> None:
        resp.content_type = ASSETS[name]
        for header, value in SECURITY_HEADERS.items():
            resp.set_header(header, value)
        resp.data = self.files[name]


class PageResource(_Static):
    """``/ui`` (and ``/ui/``): the page; which view it shows is in the URL's fragment."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._send(resp, "index.html")


class AssetResource(_Static):
    """``/ui/{name}``: one of the page's scripts or its style sheet."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if name not in self.files:
            raise falcon.HTTPNotFound(title="Not Found",
                                      description=f"The page has no file {name[:64]!r}.")
        self._send(resp, name)


#: The header the page's script sends with every API request.
PAGE_HEADER = "X-HWUT-Page"


class NoPasswordPrompt:
    """Middleware: a 401 to the page's own requests challenges for a token only.

    A browser that gets ``WWW-Authenticate: Basic`` on a script's request opens its own
    password dialog and holds the request until it is answered (headless: for ever), so
    the page could not show the API's message. Other clients get both challenges."""

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         req_succeeded: bool) -> None:
        if resp.status in (falcon.HTTP_401, 401) and req.get_header(PAGE_HEADER):
            resp.set_header("WWW-Authenticate", 'Bearer realm="hwut"')


def add_routes(app: falcon.App, files: dict[str, bytes] | None = None) -> None:
    """Serve the page under ``/ui`` (the root redirects there)."""
    files = load_assets() if files is None else files
    app.add_route("/ui", PageResource(files))
    app.add_route("/ui/{name}", AssetResource(files))
    app.add_route("/", _Root())


class _Root:
    anonymous = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPFound("/ui/")
