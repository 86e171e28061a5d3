"""User administration: admins manage every user; a user manages their own password and
tokens.

Routes (under ``/apiv1``):
- ``GET /users`` (admin): name, role, created and token count of every user.
- ``POST /users`` (admin): ``{"name", "role": "user"|"admin", "password"?}``; answers 201
  with the password (when the server chose it) and the first token, shown this once.
- ``GET /users/{name}`` and ``DELETE /users/{name}`` (admin; GET also for oneself).
  Deleting a user stops its tokens and password at once; the last admin cannot be
  deleted (409).
- ``PUT /users/{name}/password`` ``{"password"}`` (admin, or oneself): 204.
- ``GET /users/{name}/tokens`` (admin, or oneself): the token ids (the start of the
  token's SHA-256, which is all the server keeps); ``POST`` issues a new token (201,
  shown once); ``DELETE`` revokes all of them and ``DELETE .../tokens/{id}`` one.

Passwords and tokens never appear in a log line; a token appears in an answer only when
it is issued.
"""
from __future__ import annotations

import re
from typing import Any

import falcon

from ..users import (
    NAME_PATTERN,
    ROLES,
    TOKEN_ID_CHARS,
    LastAdmin,
    UnknownUser,
    User,
    UserError,
    UserStore,
)
from .params import bad_request

MAX_PASSWORD_CHARS = 1024


def _self_or_admin(req: falcon.Request, name: str) -> User:
    user: User = req.context.user
    if not (user.is_admin or user.name == name):
        raise falcon.HTTPForbidden(title="Forbidden",
                                   description="Only admins manage other users.")
    return user


def _admin(req: falcon.Request) -> User:
    user: User = req.context.user
    if not user.is_admin:
        raise falcon.HTTPForbidden(title="Forbidden", description="This needs the admin role.")
    return user


def _not_found(exc: UserError) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(title="Not Found", description=str(exc))


def _body(req: falcon.Request) -> dict[str, Any]:
    try:
        body = req.get_media()
    except falcon.MediaNotFoundError:
        body = None
    except falcon.MediaMalformedError:
        raise bad_request("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


def _password(body: dict[str, Any], required: bool) -> str | None:
    password = body.get("password")
    if password is None and not required:
        return None
    if not isinstance(password, str) or not password:
        raise bad_request("'password' must be a non-empty string")
    if len(password) > MAX_PASSWORD_CHARS:
        raise bad_request(f"'password' is at most {MAX_PASSWORD_CHARS} characters")
    return password


class _UserBase:
    def __init__(self, users: UserStore) -> None:
        self.users = users

    def record(self, name: str) -> dict[str, Any]:
        for record in self.users.list():
            if record["name"] == name:
                return record
        raise falcon.HTTPNotFound(title="Not Found", description=f"no user {name!r}")


class UserListResource(_UserBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _admin(req)
        resp.media = self.users.list()

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        _admin(req)
        body = _body(req)
        name = body.get("name")
        role = body.get("role", "user")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise bad_request("'name' is 1 to 64 letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise bad_request(f"'role' is one of {', '.join(ROLES)}")
        password = _password(body, required=False)
        try:
            user, chosen, token = self.users.add(name, admin=role == "admin",
                                                 password=password)
        except UserError as exc:
            raise falcon.HTTPConflict(title="Conflict", description=str(exc)) from None
        resp.status = falcon.HTTP_201
        resp.location = f"/apiv1/users/{name}"
        answer: dict[str, Any] = {"name": user.name, "role": user.role, "token": token}
        if password is None:
            answer["password"] = chosen
        resp.media = answer


class UserResource(_UserBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        _self_or_admin(req, name)
        resp.media = self.record(name)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        _admin(req)
        try:
            self.users.delete(name)
        except UnknownUser as exc:
            raise _not_found(exc) from None
        except LastAdmin as exc:
            raise falcon.HTTPConflict(title="Conflict", description=str(exc)) from None
        resp.status = falcon.HTTP_204


class PasswordResource(_UserBase):
    def on_put(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        _self_or_admin(req, name)
        password = _password(_body(req), required=True)
        assert password is not None
        try:
            self.users.set_password(name, password)
        except UnknownUser as exc:
            raise _not_found(exc) from None
        resp.status = falcon.HTTP_204


class TokenListResource(_UserBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        _self_or_admin(req, name)
        try:
            resp.media = [{"id": ident} for ident in self.users.token_ids(name)]
        except UnknownUser as exc:
            raise _not_found(exc) from None

    def on_post(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        _self_or_admin(req, name)
        try:
            token = self.users.new_token(name)
        except UnknownUser as exc:
            raise _not_found(exc) from None
        resp.status = falcon.HTTP_201
        resp.media = {"name": name, "token": token}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        _self_or_admin(req, name)
        try:
            resp.media = {"revoked": self.users.revoke(name)}
        except UnknownUser as exc:
            raise _not_found(exc) from None


class TokenResource(_UserBase):
    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str,
                  token_id: str) -> None:
        _self_or_admin(req, name)
        if not re.fullmatch(f"[0-9a-f]{{{TOKEN_ID_CHARS}}}", token_id):
            # never a token itself in a URL (URLs end up in logs)
            raise bad_request(f"a token id is {TOKEN_ID_CHARS} hex digits, the start of "
                              "the token's SHA-256 (GET .../tokens lists them)")
        try:
            self.users.revoke(name, [token_id])
        except UnknownUser as exc:
            raise _not_found(exc) from None
        resp.status = falcon.HTTP_204
