"""Targets: boards and microcontrollers; anyone signed in reads, admins change.

Deleting a board that jobs still wait for cancels those jobs, with the reason in
their detail ("canceled by admin: board x deleted"): nothing could serve them
afterwards, and a job must never wait for ever. (A board the server config gives
instances cannot be deleted: 409.)
"""
from __future__ import annotations

from typing import Any

import falcon

from ..auth import require_admin
from ..config import Config
from ..jobs import JobStatus, TransitionError
from ..scheduler import Scheduler
from ..store import Store
from ..targets import TargetError
from .params import bad_request, bool_param


class _TargetBase:
    kind = "boards"

    def __init__(self, store: Store, scheduler: Scheduler, config: Config) -> None:
        self.store = store
        self.scheduler = scheduler
        self.config = config

    def not_found(self, name: str) -> falcon.HTTPNotFound:
        known = ", ".join(self.store.targets.names(self.kind)) or "none"
        return falcon.HTTPNotFound(title="Not Found",
                                   description=f"No {self.kind[:-1]} {name!r}; known: {known}")

    def extended(self, record: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class TargetListResource(_TargetBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        records = self.store.targets.list(self.kind)
        if bool_param(req, "extended"):
            records = [self.extended(r) for r in records]
        resp.media = records

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_admin(req)
        body = req.get_media()
        try:
            record = self.store.targets.create(self.kind, body)
        except TargetError as exc:
            raise bad_request(str(exc)) from None
        resp.status = falcon.HTTP_201
        resp.location = f"/apiv1/targets/{self.kind}/{record['name']}"
        resp.media = record


class TargetResource(_TargetBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        record = self.store.targets.get(self.kind, name)
        if record is None:
            raise self.not_found(name)
        resp.media = self.extended(record) if bool_param(req, "extended") else record

    def in_use(self, name: str) -> str | None:
        raise NotImplementedError

    def release(self, name: str, by: str) -> None:
        """What deleting ``name`` ends (nothing unless a kind says otherwise)."""

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        require_admin(req)
        if self.store.targets.get(self.kind, name) is None:
            raise self.not_found(name)
        reason = self.in_use(name)
        if reason:
            raise falcon.HTTPConflict(title="Conflict",
                                      description=f"Cannot delete {name!r}: {reason}")
        self.store.targets.delete(self.kind, name)
        self.release(name, req.context.user.name)
        resp.status = falcon.HTTP_204


class _BoardMixin:
    kind = "boards"
    store: Store
    scheduler: Scheduler
    config: Config

    def extended(self, record: dict[str, Any]) -> dict[str, Any]:
        result = dict(record)
        mcu_name = record.get("microcontroller")
        mcu = self.store.targets.get("microcontrollers", mcu_name) if mcu_name else None
        result["microcontroller"] = mcu
        result["manufacturer"] = mcu.get("manufacturer") if mcu else None
        instances = self.scheduler.boards_with_instances().get(record["name"], [])
        result["instances"] = [i.describe() for i in instances]
        reason = self.scheduler.why_not_runnable(record["name"])
        result["available"] = reason is None
        result["unavailable_reason"] = reason
        info = self.scheduler.board_info(record["name"])
        # a remote instance that cannot (a lab board on a worker host) takes it away
        lacking = self.scheduler.lacking(record["name"])
        result["capabilities"] = {"console_input": bool(info and info.console_input
                                                        and "console_input" not in lacking),
                                  "presses": bool(info and info.presses
                                                  and "presses" not in lacking),
                                  "pins": bool(info and info.drive_pins and "pins" not in lacking),
                                  "live_input": bool(info and info.live_input),
                                  "live_presses": bool(info and info.live_presses)}
        # what each pin reads while nothing drives it (``pin=`` scripts it per job)
        result["pins"] = [p.record() for p in info.pin_defaults] if info else []
        return result

    def in_use(self, name: str) -> str | None:
        board = self.config.board(name)
        if board is not None and board.instances:
            return f"the server config gives it {board.instances} instance(s)"
        return None

    def release(self, name: str, by: str) -> None:
        """Cancel the jobs still waiting for the deleted board: nothing can serve them."""
        for job in self.store.jobs.live_jobs():
            if job.board == name and job.status in (JobStatus.WAITING, JobStatus.QUEUED):
                try:
                    self.scheduler.cancel(job.id, by=by, why=f"board {name} deleted")
                except TransitionError:  # it ended meanwhile
                    pass


class _McuMixin:
    kind = "microcontrollers"
    store: Store

    def extended(self, record: dict[str, Any]) -> dict[str, Any]:
        result = dict(record)
        result["boards"] = [b["name"] for b in self.store.targets.list("boards")
                            if b.get("microcontroller") == record["name"]]
        return result

    def in_use(self, name: str) -> str | None:
        users = [b["name"] for b in self.store.targets.list("boards")
                 if b.get("microcontroller") == name]
        return f"used by boards {', '.join(users)}" if users else None


class BoardListResource(_BoardMixin, TargetListResource):
    pass


class BoardResource(_BoardMixin, TargetResource):
    """Also ``POST .../online`` and ``.../offline`` (admin): put a board's instances (or
    one, ``{"instance": "board#0"}``) back in service or take them out; answers the
    board's extended record."""

    def _instances(self, req: falcon.Request, name: str) -> str:
        if self.store.targets.get(self.kind, name) is None:
            raise self.not_found(name)
        body = req.get_media(default_when_empty={}) or {}
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        which = body.get("instance", name)
        names = self.scheduler.instance_names(name)
        if which != name and which not in names:
            raise bad_request(f"board {name} has no instance {which!r}; its instances: "
                              f"{', '.join(names) or 'none'}")
        return str(which)

    def on_post_online(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        require_admin(req)
        self.scheduler.set_online(self._instances(req, name))
        resp.media = self.extended(self.store.targets.get(self.kind, name) or {"name": name})

    def on_post_offline(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        require_admin(req)
        which = self._instances(req, name)
        self.scheduler.set_offline(which, f"taken offline by {req.context.user.name}")
        resp.media = self.extended(self.store.targets.get(self.kind, name) or {"name": name})


class McuListResource(_McuMixin, TargetListResource):
    pass


class McuResource(_McuMixin, TargetResource):
    pass
