"""``/apiv1/workers/...``: where remote worker hosts report (see :mod:`hwut.broker`).

Only there when the config has a ``[broker]`` table. Users' credentials do not open
these routes, and the worker token opens nothing else: each route checks the token
itself (``anonymous`` for the user middleware), through the API's failed-login throttle
(:meth:`hwut.auth.AuthMiddleware.check_secret`): wrong tokens count on the client's
address as wrong passwords and user tokens do, and past the limit the answer is 429. Beyond the token, a host may write
only to a job whose task it holds (the claim) and only for its current attempt
(the attempt's secret); see :mod:`hwut.broker.protocol`.

- ``POST /workers/heartbeat`` ``{"v", "host", "instances"}``: the host is alive;
  answers ``{"v", "offline": {instance: reason}}`` (its instances the server keeps
  offline: they take no job until an admin puts them back);
- ``POST /workers/jobs/{id}/attempts`` ``{"v", "claim", "host", "takes"?}``: a host
  took the job's task up (``"takes": ["input"]``: it passes live input on); answers
  ``{"v", "attempt", "token"}``, or 410 (drop the task), or 423 (the instance is
  offline: the host puts the task back in the queue);
- ``POST /workers/jobs/{id}/reports`` (a :class:`~hwut.broker.protocol.Report`):
  answers ``{"v", "ack", "cancel", "input"?}``; 409 for a report of an attempt that is
  not the job's current one (the host stops that run), 410 once the job is gone.
"""
from __future__ import annotations

import json
from typing import Any

import falcon

from ..auth import AuthMiddleware
from ..broker.dispatcher import Fenced, Gone, InstanceOffline, RemoteDispatcher
from ..broker.protocol import TAKES_INPUT, ProtocolError, Report, check
from .params import bad_request

#: No worker message is larger (a report carries at most 3 x 256 KiB in base64).
MAX_BODY_BYTES = 2 * 1024 * 1024


class _WorkerRoute:
    anonymous = True  # the user middleware lets it through; the worker token is checked here

    def __init__(self, dispatcher: RemoteDispatcher, auth: AuthMiddleware) -> None:
        self.dispatcher = dispatcher
        self.auth = auth

    def _body(self, req: falcon.Request, what: str) -> dict[str, Any]:
        self.auth.check_secret(req.get_header("Authorization"), req.remote_addr or "",
                               self.dispatcher.settings.worker_token, "A worker token")
        length = req.content_length or 0
        if length > MAX_BODY_BYTES:
            raise falcon.HTTPPayloadTooLarge(title="Payload Too Large",
                                             description=f"at most {MAX_BODY_BYTES} bytes")
        try:
            data = json.loads(req.bounded_stream.read(MAX_BODY_BYTES + 1) or b"null")
            return check(data, what)
        except (ValueError, ProtocolError) as exc:
            raise bad_request(str(exc)[:300]) from None


def _gone(exc: Exception) -> falcon.HTTPError:
    return falcon.HTTPGone(title="Gone", description=str(exc))


class HeartbeatResource(_WorkerRoute):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = self._body(req, "heartbeat")
        try:
            offline = self.dispatcher.heartbeat(data.get("host"), data.get("instances"))
        except ProtocolError as exc:
            raise bad_request(str(exc)) from None
        resp.media = {"v": 1, "offline": offline}


class AttemptResource(_WorkerRoute):
    def on_post(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        data = self._body(req, "attempt")
        claim, host, takes = data.get("claim"), data.get("host"), data.get("takes", [])
        if not isinstance(claim, str) or not isinstance(host, str) or not 0 < len(host) <= 150:
            raise bad_request("attempt: claim and host (up to 150 characters) are needed")
        if not isinstance(takes, list) or len(takes) > 16:
            raise bad_request("attempt: takes is a list of at most 16 names")
        try:
            attempt, token = self.dispatcher.open_attempt(job_id, claim, host,
                                                          TAKES_INPUT in takes)
        except Gone as exc:
            raise _gone(exc) from None
        except InstanceOffline as exc:
            raise falcon.HTTPError(falcon.HTTP_423, title="Locked",
                                   description=str(exc)) from None
        resp.media = {"v": 1, "attempt": attempt, "token": token}


class ReportResource(_WorkerRoute):
    def on_post(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        try:
            report = Report.from_json(self._body(req, "report"))
        except ProtocolError as exc:
            raise bad_request(str(exc)) from None
        try:
            resp.media = self.dispatcher.report(job_id, report)
        except Gone as exc:
            raise _gone(exc) from None
        except Fenced as exc:
            raise falcon.HTTPConflict(title="Conflict", description=str(exc)) from None
        except ProtocolError as exc:
            raise bad_request(str(exc)) from None


def add_routes(app: falcon.App, base: str, dispatcher: RemoteDispatcher,
               auth: AuthMiddleware) -> None:
    """The worker routes; ``auth``: the app's authentication (its failure throttle)."""
    app.add_route(f"{base}/workers/heartbeat", HeartbeatResource(dispatcher, auth))
    app.add_route(f"{base}/workers/jobs/{{job_id:int(min=1)}}/attempts",
                  AttemptResource(dispatcher, auth))
    app.add_route(f"{base}/workers/jobs/{{job_id:int(min=1)}}/reports",
                  ReportResource(dispatcher, auth))
