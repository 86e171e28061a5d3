"""The OpenAPI 3.1 description of the API, written from the app itself.

Why from the code: a description kept by hand drifts. Here the paths, their methods
and path parameters come from the Falcon router (every route the app serves, and only
those), summaries from the responders' docstrings, the job schema from the fields of
:class:`hwut.jobs.Job` and the views' field lists, submit's query parameters from
``SUBMIT_PARAMS``. What the code does not declare in a form we can read (the query
parameters of the listing routes, what each responder returns) is the small table
:data:`QUERY` and :func:`_responses` below; the tests check that every route is
described and schemathesis checks the server against the description.

Served anonymously at ``GET /apiv1/openapi.json`` (a description holds no secret).
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterator
from typing import Any

import falcon

from . import __version__
from .jobs import EXTENDED_FIELDS, SHORT_FIELDS, Job, JobStatus
from .resources.jobs import SUBMIT_PARAMS
from .verdict import VERDICTS

#: Query parameters of routes that read them with the params helpers, by (path, method).
QUERY: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("/apiv1/jobs", "GET"): {
        "limit": {"type": "integer", "minimum": 0, "maximum": 1000},
        "offset": {"type": "integer", "minimum": 0},
        "status": {"type": "string", "enum": [s.value for s in JobStatus]},
        "board": {"type": "string"}, "extended": {"type": "boolean"}},
}
_FILE_ROUTES = ("log", "other", "infra_log")
_OFFSET = {"offset": {"type": "integer", "minimum": 0}}
for _what in _FILE_ROUTES + ("log/stream",):
    for _prefix in ("job", "jobs"):
        QUERY[(f"/apiv1/{_prefix}/{{job_id}}/{_what}", "GET")] = _OFFSET
for _prefix in ("job", "jobs"):  # the Nth image of a job that carries several
    QUERY[(f"/apiv1/{_prefix}/{{job_id}}/executable", "GET")] = {
        **_OFFSET, "image": {"type": "integer", "minimum": 1}}
_SUBMIT_TYPES: dict[str, dict[str, Any]] = {
    "duration_limit_seconds": {"type": "integer"}, "exit_code": {"type": "integer"},
    "ordered": {"type": "boolean"}, "run_to_end": {"type": "boolean"},
    "realtime": {"type": "boolean"},
    "on_limit": {"type": "string", "enum": ["passed", "failed"]},
}
_REPEATED = ("press", "expect", "expect_regex", "fail", "fail_regex", "expect_pin", "pin")

ERROR = {"type": "object", "required": ["title"],
         "properties": {"title": {"type": "string"}, "description": {"type": "string"}}}


def _json_type(annotation: Any) -> dict[str, Any]:
    """A JSON schema for a dataclass field's type (str | None and the like)."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing) | {"JobStatus": JobStatus})  # noqa: S307 - our own annotations
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [_json_type(a) for a in args if a is not type(None)]
        schema = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
        return {"anyOf": [schema, {"type": "null"}]} if type(None) in args else schema
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation in simple:
        return {"type": simple[annotation]}
    if annotation is JobStatus:
        return {"type": "string", "enum": [s.value for s in JobStatus]}
    origin = typing.get_origin(annotation)
    if origin is list:
        return {"type": "array"}
    if origin is dict:
        return {"type": "object"}
    return {}


def job_schemas() -> dict[str, Any]:
    props = {f.name: _json_type(f.type) for f in dataclasses.fields(Job)}
    props["verdict"] = {"anyOf": [{"type": "string", "enum": list(VERDICTS)},
                                  {"type": "null"}]}
    extended = {name: props[name] for name in EXTENDED_FIELDS}
    extended["queue_position"] = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    return {
        "JobShort": {"type": "object", "required": list(SHORT_FIELDS),
                     "properties": {n: props[n] for n in SHORT_FIELDS}},
        "Job": {"type": "object", "required": list(SHORT_FIELDS), "properties": extended},
        "Error": ERROR,
    }


def _routes(app: falcon.App) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(uri template, resource, method map) of every route, walking the compiled router
    as falcon.inspect does (it reports class names only; we need the objects)."""
    def walk(nodes: list[Any]) -> Iterator[tuple[str, Any, dict[str, Any]]]:
        for node in nodes:
            if node.resource is not None:
                yield node.uri_template, node.resource, node.method_map
            yield from walk(node.children)
    yield from walk(app._router._roots)


_FIELD = re.compile(r"\{(\w+)(?::(\w+)(?:\(([^)]*)\))?)?\}")


def _path(template: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for name, converter, _ in _FIELD.findall(template):
        schema: dict[str, Any] = {"type": "string"}
        if converter == "int":
            schema = {"type": "integer", "minimum": 1}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _FIELD.sub(lambda m: "{" + m[1] + "}", template), params


def _summary(resource: Any, responder: Any) -> str:
    doc = (responder.__doc__ or type(resource).__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else type(resource).__name__


def _responses(path: str, method: str) -> dict[str, Any]:
    error = {"description": "An error, said in words", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    ok: dict[str, Any]
    if method == "DELETE" or path.endswith("/is_finished"):
        return {"204": {"description": "Done"}, "default": error}
    if path.endswith("/jobs/submit"):
        ok = {"201": {"description": "The job, stored and WAITING", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}}
    elif re.search(r"/jobs?/\{job_id\}$", path):
        ok = {"200": {"description": "The job (the short view for other users)", "content": {
            "application/json": {"schema": {"anyOf": [
                {"$ref": "#/components/schemas/Job"},
                {"$ref": "#/components/schemas/JobShort"}]}}}}}
    elif path.endswith("/log/stream"):
        ok = {"200": {"description": "Server-Sent Events: status, log, end",
                      "content": {"text/event-stream": {"schema": {"type": "string"}}}}}
    elif path.endswith("/input"):
        ok = {"202": {"description": "Accepted: on its way to the board, applied at the "
                                     "board's time when its backend takes it", "content": {
            "application/json": {"schema": {
                "type": "object", "required": ["job", "board_time_s"],
                "properties": {"job": {"type": "integer"},
                               "board_time_s": {"type": "number"},
                               "text_bytes": {"type": "integer"},
                               "presses": {"type": "array"}}}}}}}
    elif path.endswith("/junit"):
        ok = {"200": {"description": "JUnit XML",
                      "content": {"application/xml": {"schema": {"type": "string"}}}}}
    elif path.endswith(("/log", "/infra_log")):
        ok = {"200": {"description": "The file's bytes (from offset)",
                      "content": {"text/plain": {"schema": {"type": "string"}}}},
              "206": {"description": "The range asked for"}}
    elif path.endswith(("/other", "/executable", "/trace.vcd")):
        kind = "text/x-vcd" if path.endswith(".vcd") else "application/octet-stream"
        ok = {"200": {"description": "The file's bytes", "content": {
            kind: {"schema": {"type": "string"}}}},
              "206": {"description": "The range asked for"}}
    else:
        code = "201" if method in ("POST", "PUT") else "200"
        ok = {code: {"description": "JSON", "content": {"application/json": {"schema": {}}}}}
    return {**ok, "default": error}


def _query(path: str, method: str) -> list[dict[str, Any]]:
    if path.endswith("/jobs/submit") and method == "PUT":
        declared = {name: _SUBMIT_TYPES.get(name, {"type": "string"}) for name in SUBMIT_PARAMS}
    else:
        declared = QUERY.get((path, method), {})
    params = []
    for name, schema in declared.items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": name == "board"
                                 and path.endswith("/submit"), "schema": schema}
        if name in _REPEATED:
            param["schema"] = {"type": "array", "items": schema}
            param["explode"] = True
        params.append(param)
    return params


def describe(app: falcon.App) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``app``."""
    paths: dict[str, Any] = {}
    for template, resource, methods in _routes(app):
        if not template.startswith("/apiv1/"):  # the web page (/ui) is not the API
            continue
        path, path_params = _path(template)
        item: dict[str, Any] = {}
        for method, responder in sorted(methods.items()):
            name = getattr(responder, "__name__", "")
            if not name.startswith("on_"):  # falcon's own (OPTIONS, 405 answers)
                continue
            operation: dict[str, Any] = {
                "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower())}"
                               .rstrip("_"),
                "summary": _summary(resource, responder),
                "parameters": path_params + _query(path, method),
                "responses": _responses(path, method)}
            if getattr(resource, "anonymous", False):
                operation["security"] = []
            body = getattr(resource, "request_body", None)
            if body is not None and method in ("POST", "PUT", "PATCH"):
                operation["requestBody"] = body
            elif path.endswith("/jobs/submit"):
                operation["requestBody"] = {"required": True, "content": {
                    "application/octet-stream": {"schema": {"type": "string",
                                                            "format": "binary"}},
                    # several images in one job: one file part each, in programming
                    # order, named "image" or "image@0x0800A000" (a BIN at that address)
                    "multipart/form-data": {"schema": {
                        "type": "object", "properties": {"image": {
                            "type": "array", "items": {"type": "string",
                                                       "format": "binary"}}}}}}}
            item[method.lower()] = operation
        if item:
            paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "HWUT", "version": __version__,
                 "description": "Firmware jobs on emulated and lab boards (API v1 and "
                                "HWUT's additions)."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"basic": []}],
        "paths": paths,
        "components": {"schemas": job_schemas(), "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "basic": {"type": "http", "scheme": "basic"}}},
    }


class OpenApiResource:
    """The API's OpenAPI 3.1 description (made once, on the first request)."""

    anonymous = True

    def __init__(self, app: falcon.App) -> None:
        self.app = app
        self._doc: dict[str, Any] | None = None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._doc is None:
            self._doc = describe(self.app)
        resp.media = self._doc
