"""Authentication as Falcon middleware: HTTP Basic (argon2) or ``Authorization: Bearer``.

Resources opt out with ``anonymous = True`` (only ``/version``); everything else
needs a user, so a forgotten check fails closed. Authorization (owner or admin)
is decided by the resources, which know what they return.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

import falcon

from .users import User, UserStore

CHALLENGES = ['Basic realm="hwut"', 'Bearer realm="hwut"']


def unauthorized(description: str) -> falcon.HTTPUnauthorized:
    return falcon.HTTPUnauthorized(title="Unauthorized", description=description,
                                   challenges=CHALLENGES)


def parse_authorization(header: str) -> tuple[str, str, str] | None:
    """("basic", name, password) or ("bearer", token, "") or None if malformed."""
    scheme, _, value = header.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and value:
        return "bearer", value, ""
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        name, sep, password = decoded.partition(":")
        if not sep:
            return None
        return "basic", name, password
    return None


class AuthMiddleware:
    def __init__(self, users: UserStore) -> None:
        self.users = users

    def authenticate(self, header: str | None) -> User | None:
        if not header:
            return None
        parsed = parse_authorization(header)
        if parsed is None:
            raise unauthorized("The Authorization header is malformed; use HTTP Basic "
                               "(user:password) or 'Bearer <token>'.")
        kind, first, second = parsed
        if kind == "bearer":
            return self.users.verify_token(first)
        return self.users.verify_password(first, second)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        req.context.user = None
        if resource is None:
            return
        header = req.get_header("Authorization")
        if getattr(resource, "anonymous", False):
            return  # e.g. /version: answers everyone, whatever credentials they send
        user = self.authenticate(header)
        if user is None:
            if header:
                raise unauthorized("Wrong user name, password or token.")
            raise unauthorized("Authentication required: HTTP Basic or an API token "
                               "as 'Authorization: Bearer <token>'.")
        req.context.user = user


def require_admin(req: falcon.Request) -> User:
    user: User = req.context.user
    if not user.is_admin:
        raise falcon.HTTPForbidden(title="Forbidden", description="This needs the admin role.")
    return user
