"""The Falcon app factory: everything it serves comes in as arguments, nothing global."""
from __future__ import annotations

import falcon

from . import errors
from .auth import AuthMiddleware, FailureThrottle
from .config import Config
from .openapi import OpenApiResource
from .requestlog import RequestLogMiddleware
from .resources import jobs, limits, liveinput, misc, stream, targets, trace, users
from .resources.files import StreamSlots
from .scheduler import Scheduler
from .store import Store
from .ui import pages as ui

BASE = "/apiv1"


def create_app(store: Store, scheduler: Scheduler, config: Config,
               auth: AuthMiddleware | None = None) -> falcon.App:
    """``auth`` is shared with the HTTP server's check before bodies (one throttle);
    by default one is made from the config."""
    if auth is None:
        auth = AuthMiddleware(store.users, FailureThrottle.from_config(config))
    app: falcon.App[falcon.Request, falcon.Response] = falcon.App(
        middleware=[RequestLogMiddleware(), ui.NoPasswordPrompt(), auth])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    errors.install(app)
    deps = (store, scheduler, config)

    app.add_route(f"{BASE}/version", misc.VersionResource())
    app.add_route(f"{BASE}/auth_test", misc.AuthTestResource())
    app.add_route(f"{BASE}/jobs", jobs.JobListResource(*deps))
    app.add_route(f"{BASE}/jobs/submit", jobs.SubmitResource(*deps))
    job, finished = jobs.JobResource(*deps), jobs.IsFinishedResource(*deps)
    streams = StreamSlots(int(config["server.max_streams"]))  # shared by the file routes
    log, other = jobs.LogResource(*deps, streams), jobs.OtherResource(*deps, streams)
    infra = jobs.InfraLogResource(*deps, streams)
    junit = jobs.JunitResource(*deps)
    # live logs hold an HTTP thread each: a quarter of the threads at most
    follow = stream.LogStreamResource(*deps, slots=StreamSlots(
        max(1, int(config["server.threads"]) // 4)))
    pintrace = trace.TraceResource(*deps, streams)
    executable = trace.ExecutableResource(*deps, streams)
    live = liveinput.InputResource(*deps)
    for prefix in ("job", "jobs"):  # the document spells both
        app.add_route(f"{BASE}/{prefix}/{{job_id:int(min=1)}}", job)
        app.add_route(f"{BASE}/{prefix}/{{job_id:int(min=1)}}/is_finished", finished)
        app.add_route(f"{BASE}/{prefix}/{{job_id:int(min=1)}}/log", log)
        app.add_route(f"{BASE}/{prefix}/{{job_id:int(min=1)}}/other", other)
        app.add_route(f"{BASE}/{prefix}/{{job_id:int(min=1)}}/infra_log", infra)
        app.add_route(f"{BASE}/{prefix}/{{job_id:int(min=1)}}/junit", junit)
        app.add_route(f"{BASE}/{prefix}/{{job_id:int(min=1)}}/log/stream", follow)
        app.add_route(f"{BASE}/{prefix}/{{job_id:int(min=1)}}/trace.vcd", pintrace)
        app.add_route(f"{BASE}/{prefix}/{{job_id:int(min=1)}}/executable", executable)
        app.add_route(f"{BASE}/{prefix}/{{job_id:int(min=1)}}/input", live)
    app.add_route(f"{BASE}/targets/boards", targets.BoardListResource(*deps))
    board = targets.BoardResource(*deps)
    app.add_route(f"{BASE}/targets/boards/{{name}}", board)
    app.add_route(f"{BASE}/targets/boards/{{name}}/online", board, suffix="online")
    app.add_route(f"{BASE}/targets/boards/{{name}}/offline", board, suffix="offline")
    app.add_route(f"{BASE}/targets/microcontrollers", targets.McuListResource(*deps))
    app.add_route(f"{BASE}/targets/microcontrollers/{{name}}", targets.McuResource(*deps))
    app.add_route(f"{BASE}/limits", limits.LimitsResource(config))
    app.add_route(f"{BASE}/users", users.UserListResource(store.users))
    app.add_route(f"{BASE}/users/{{name}}", users.UserResource(store.users))
    app.add_route(f"{BASE}/users/{{name}}/password", users.PasswordResource(store.users))
    app.add_route(f"{BASE}/users/{{name}}/tokens", users.TokenListResource(store.users))
    app.add_route(f"{BASE}/users/{{name}}/tokens/{{token_id}}",
                  users.TokenResource(store.users))
    app.add_route(f"{BASE}/openapi.json", OpenApiResource(app))
    ui.add_routes(app)  # the web page, under /ui
    if scheduler.remote is not None:  # remote worker hosts report here (hwut.broker)
        from .resources import workers
        workers.add_routes(app, BASE, scheduler.remote, auth)  # type: ignore[arg-type]
    return app
