"""Every error answer in one place: JSON ``{"title", "description"}``, never internals."""
from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from .jobs import TransitionError
from .storage import DamagedStoreFile, StorageFull
from .store import QuotaExceeded, UnknownJob

log = logging.getLogger(__name__)

#: Seconds a user over the waiting-jobs quota is told to wait before submitting again.
QUOTA_RETRY_AFTER_S = 60


def serialize_error(req: falcon.Request, resp: falcon.Response,
                    exc: falcon.HTTPError) -> None:
    """JSON whatever the client's Accept header says; the description is always present."""
    body = exc.to_dict()
    # Falcon's own answers (no route, wrong method) come titled "404 Not Found"
    body["title"] = str(body.get("title", "")).removeprefix(f"{exc.status_code} ")
    if isinstance(exc, falcon.HTTPMethodNotAllowed) and not exc.description:
        allowed = dict(exc.headers or {}).get("Allow", "")
        body["description"] = f"{req.method} is not allowed on {req.path}; allowed: {allowed}."
    elif isinstance(exc, falcon.HTTPRouteNotFound) and not exc.description:
        body["description"] = f"There is no route {req.path}; the API lives under /apiv1."
    body.setdefault("description", body.get("title", ""))
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body)


def _unknown_job(req: falcon.Request, resp: falcon.Response, exc: UnknownJob,
                 params: dict[str, Any]) -> None:
    raise falcon.HTTPNotFound(title="Not Found", description=f"There is no job {exc.args[0]}.")


def _transition(req: falcon.Request, resp: falcon.Response, exc: TransitionError,
                params: dict[str, Any]) -> None:
    raise falcon.HTTPBadRequest(title="Bad Request", description=str(exc))


def _storage_full(req: falcon.Request, resp: falcon.Response, exc: StorageFull,
                  params: dict[str, Any]) -> None:
    """The disk is full: nothing was stored and the store still works, so the client
    may retry later (507, not a 500: it is not a bug, and no path is shown)."""
    log.error("storage full on %s %s: %s", req.method, req.path, exc)
    raise falcon.HTTPError(falcon.HTTP_507, title="Insufficient Storage",
                           description="The server has no space left to store this; "
                                       "nothing was stored. Try again later.")


def _over_quota(req: falcon.Request, resp: falcon.Response, exc: QuotaExceeded,
                params: dict[str, Any]) -> None:
    raise falcon.HTTPTooManyRequests(
        title="Too Many Requests",
        description=f"You have {exc.waiting} job{'s' if exc.waiting != 1 else ''} waiting; "
                    f"the limit is {exc.limit} waiting "
                    "jobs per user (quota.max_waiting_jobs). Submit again when some have "
                    "started, or cancel some.",
        retry_after=QUOTA_RETRY_AFTER_S)


def _damaged_store(req: falcon.Request, resp: falcon.Response, exc: DamagedStoreFile,
                   params: dict[str, Any]) -> None:
    """A store file went bad while the server ran: the admin needs the file's name
    (the log has it), the client only that the server cannot serve this now."""
    log.error("on %s %s: %s", req.method, req.path, exc)
    raise falcon.HTTPServiceUnavailable(
        title="Service Unavailable",
        description="The server's store needs repair; the error was logged for its admin.")


def _unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception,
                params: dict[str, Any]) -> None:
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(
        title="Internal Server Error",
        description="The server failed to handle the request; the error was logged.")


def install(app: falcon.App) -> None:
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(UnknownJob, _unknown_job)
    app.add_error_handler(TransitionError, _transition)
    app.add_error_handler(StorageFull, _storage_full)
    app.add_error_handler(QuotaExceeded, _over_quota)
    app.add_error_handler(DamagedStoreFile, _damaged_store)
