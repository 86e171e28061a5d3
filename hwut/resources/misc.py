"""Version (the one anonymous route) and auth_test."""
from __future__ import annotations

import falcon

from .. import API_VERSION, __version__


class VersionResource:
    anonymous = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"version": __version__, "api": API_VERSION}


class AuthTestResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = req.context.user
        resp.media = {"user": user.name, "role": user.role}
