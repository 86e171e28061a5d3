"""The OpenAPI 3.1 description (issue 16): served, valid, complete, and the real server
(waitress, sim backend) checked against it by schemathesis: no 5xx, responses that
conform to the description."""
from __future__ import annotations

import cli_served
import falcon.inspect
import httpx
import pytest
import schemathesis
from cli_served import Served
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from hwut.jobs import EXTENDED_FIELDS

serve, served = cli_served.serve, cli_served.served  # the fixtures


def test_served_anonymously_valid_and_complete(served: Served):
    r = httpx.get(served.url + "/apiv1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    app = served.env.service.app
    routes = {route.path.replace(":int(min=1)", "") for route in falcon.inspect.inspect_routes(app)
              if route.path.startswith("/apiv1/")}  # the web page is not the API
    assert set(doc["paths"]) == routes
    submit = doc["paths"]["/apiv1/jobs/submit"]["put"]
    names = [p["name"] for p in submit["parameters"]]
    assert {"board", "expect", "fail_regex", "parse", "expect_pin"} <= set(names)
    pins = next(p for p in submit["parameters"] if p["name"] == "expect_pin")
    assert pins["schema"]["type"] == "array" and pins["explode"]  # repeatable
    job = doc["components"]["schemas"]["Job"]["properties"]
    assert set(EXTENDED_FIELDS) <= set(job) and "verdict" in job
    assert doc["paths"]["/apiv1/version"]["get"]["security"] == []


@pytest.fixture(scope="module")
def api(served: Served):
    doc = httpx.get(served.url + "/apiv1/openapi.json").json()
    doc["servers"] = [{"url": served.url}]
    schema = schemathesis.openapi.from_dict(doc)
    # reads and submits; user and token changes would lock the test user out
    return schema.include(method="GET").include(path_regex="^/apiv1/(jobs|job|targets|limits|"
                                                           "version|auth_test|openapi)")


@pytest.fixture(scope="module")
def submit_api(served: Served):
    doc = httpx.get(served.url + "/apiv1/openapi.json").json()
    doc["servers"] = [{"url": served.url}]
    return schemathesis.openapi.from_dict(doc).include(path="/apiv1/jobs/submit", method="PUT")


CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _check(case, served: Served) -> None:
    if case.path.endswith("/log/stream"):
        case.query = {**(case.query or {}), "offset": 10**12}
    headers = {"Authorization": f"Bearer {served.token('admin')}"}
    case.call_and_validate(base_url=served.url, headers=headers, checks=CHECKS, timeout=90)


def _run_all(schema, served: Served, examples: int) -> int:
    """Every operation of ``schema`` with ``examples`` generated cases each; how many
    operations ran."""
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            _check(case, served)
        run()
    return len(operations)


def test_reads_conform(api, served: Served):
    assert _run_all(api, served, 6) >= 20


def test_submit_conforms(submit_api, served: Served):
    assert _run_all(submit_api, served, 30) == 1


def test_live_input_conforms(served: Served):
    """POST .../input with generated bodies against a running job (and ended, unknown
    ones, as generated): no 5xx, answers as described."""
    doc = httpx.get(served.url + "/apiv1/openapi.json").json()
    doc["servers"] = [{"url": served.url}]
    body = doc["paths"]["/apiv1/jobs/{job_id}/input"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["properties"]["press"]
    schema = schemathesis.openapi.from_dict(doc).include(path="/apiv1/jobs/{job_id}/input",
                                                         method="POST")
    job_id = served.env.submit(limit=300, firmware="echo", realtime="true").json["id"]
    (operation,) = [r.ok() for r in schema.get_all_operations()]

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        if case.path_parameters and case.path_parameters.get("job_id", 0) % 2:
            case.path_parameters = {"job_id": job_id}  # half of them reach the running job
        _check(case, served)
    try:
        run()
    finally:
        served.env.client.simulate_delete(f"/apiv1/jobs/{job_id}",
                                          headers=served.env.headers["alice"])
        served.env.wait(job_id, timeout=30)


def test_the_checks_bite(served: Served):
    """A description the server does not keep to is caught (so the passes above mean
    something): here the job schema wants a field no job has."""
    doc = httpx.get(served.url + "/apiv1/openapi.json").json()
    for name in ("Job", "JobShort"):
        doc["components"]["schemas"][name]["required"].append("no_such_field")
    schema = schemathesis.openapi.from_dict(doc).include(path="/apiv1/jobs/{job_id}",
                                                         method="GET")
    job_id = served.env.submit(limit=1).json["id"]
    (operation,) = [r.ok() for r in schema.get_all_operations()]
    case = operation.Case(path_parameters={"job_id": job_id})
    with pytest.raises(BaseException) as err:  # a group of failures; checked below
        _check(case, served)
    failures = getattr(err.value, "exceptions", [err.value])
    assert any("no_such_field" in f"{f} {getattr(f, 'validation_message', '')} "
               f"{getattr(f, 'message', '')}" for f in failures), failures
