"""Query-parameter parsing that tells the client what is allowed (400 otherwise)."""
from __future__ import annotations

import falcon


def bad_request(description: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="Bad Request", description=description)


def single(req: falcon.Request, name: str) -> str | None:
    """The parameter's value; given twice it is ambiguous and refused."""
    values = req.get_param_as_list(name)
    if values is None:
        return None
    if len(values) != 1:
        raise bad_request(f"give '{name}' once")
    return values[0]


def int_param(req: falcon.Request, name: str, default: int, low: int,
              high: int | None = None) -> int:
    raw = single(req, name)
    allowed = f"an integer from {low} to {high}" if high is not None else \
        f"an integer of at least {low}"
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip(), 10) if raw.strip().lstrip("+-").isdigit() else None
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise bad_request(f"'{name}' must be {allowed}, not {shown!r}")
    return value


def bool_param(req: falcon.Request, name: str) -> bool:
    raw = single(req, name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on", ""):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise bad_request(f"'{name}' must be true or false")
