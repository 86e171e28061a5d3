"""The web page in a real headless Chromium: sign in, submit through the form, watch the
log stream in, see the waveform, cancel a running job, be refused another user's job.
Each page is saved as a screenshot (see conftest)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from fixture_firmware import path as firmware_path

pytestmark = pytest.mark.browser


def shot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def sign_in(page, url: str, user: str, password: str) -> None:
    page.goto(f"{url}/ui/")
    page.wait_for_selector("form#signin")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    page.click("form#signin button[type=submit]")
    page.wait_for_selector(f"#who:has-text('{user}')")


def submit(page, name: str, limit: int, expect: str = "") -> int:
    page.click("a[data-nav=submit]")
    page.wait_for_selector("form#submit select[name=board] option", state="attached")
    page.set_input_files("input[name=file]", str(firmware_path(name)))
    page.select_option("select[name=board]", "nucleo-f303re")
    page.fill("input[name=limit]", str(limit))
    if expect:
        page.fill("textarea[name=expect]", expect)
    page.click("form#submit button[type=submit]")
    page.wait_for_url(re.compile(r".*#/jobs/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def field(page, name: str) -> str:
    return page.inner_text(f"#job-fields dd[data-field='{name}']")


def test_sign_in_submit_and_see_the_waveform(serve, page, screenshots):
    served = serve(boards=_nucleo())
    page.goto(f"{served.url}/ui/")
    page.wait_for_selector("form#signin")
    page.fill("input[name=user]", "alice")
    page.fill("input[name=password]", "not her password")
    page.click("form#signin button[type=submit]")
    # the API's own message, as it said it
    page.wait_for_selector("#signin-error .error:has-text('Wrong user name, password or token.')")
    shot(page, screenshots, "01-sign-in-refused")
    sign_in(page, served.url, "alice", served.env.passwords["alice"])
    page.wait_for_selector("#empty:has-text('No jobs yet')")
    shot(page, screenshots, "02-jobs-empty")

    job_id = submit(page, "blink", 2)
    page.wait_for_selector("#wave svg")
    assert field(page, "Status") == "FINISHED"
    assert "tick 7 led=1" in page.inner_text("#log")
    # the summary: LD2 toggles every 250 ms of virtual time, 7 edges in 2 s, 2 Hz, 50 %
    row = page.inner_text("#trace-summary tr[data-signal=LD2]")
    assert re.search(r"LD2\s+7\s+9\.027 µs\s+1\.75 s\s+2 Hz\s+50\.0 %", row), row
    # the waveform: one row per wire (LD2 on PA5), the console's bytes drawn as boxes
    names = page.locator("#wave text.name").all_text_contents()
    assert names == ["LD2 (PA5)", "USART2_TX"]
    assert page.locator("#wave g.uart-byte").count() == 98  # "tick N led=X\r\n" x 7
    assert page.locator("#wave path.level").count() == 1
    page.click("#wave .tools button:has-text('Zoom in')")
    assert "500 ms – 1.5 s of 2 s virtual time" in page.inner_text("#wave .tools")  # centred
    page.click("#wave .tools button:has-text('Fit')")
    shot(page, screenshots, "03-job-waveform")

    page.click("a[data-nav=jobs]")
    page.wait_for_selector(f"#jobs tr[data-job='{job_id}']")
    shot(page, screenshots, "04-jobs")
    page.click("a[data-nav=boards]")
    page.wait_for_selector("#boards section[data-board='nucleo-f303re']")
    assert "idle" in page.inner_text("#boards")
    shot(page, screenshots, "05-boards")


def test_the_log_streams_in_and_a_running_job_is_canceled(serve, page, screenshots):
    served = serve(boards=_nucleo())
    sign_in(page, served.url, "alice", served.env.passwords["alice"])
    # hello with 300 s of virtual time runs for many seconds of wall time
    job_id = submit(page, "hello", 300)
    page.wait_for_selector("#log:has-text('count=2')")
    # the job's fields and its log are polled apart: the status may show a poll later
    page.wait_for_selector("#job-fields dd[data-field='Status']:has-text('RUNNING')")
    first = len(page.inner_text("#log"))
    page.wait_for_function(
        "n => document.getElementById('log').textContent.length > n + 40", arg=first)
    assert field(page, "Status") == "RUNNING"  # it grew while the job ran
    assert "streaming while the job runs" in page.inner_text("#log-note")
    shot(page, screenshots, "06-job-running")
    page.click("#cancel")
    page.wait_for_selector("#job-fields .status[data-status=CANCELED]")
    assert page.locator("#cancel").count() == 0
    assert served.env.service.store.jobs.get(job_id).stop_reason == "cancel"
    shot(page, screenshots, "07-job-canceled")


def test_another_users_job_is_refused_and_admins_filter_by_owner(serve, page, screenshots):
    served = serve(boards=_nucleo())
    job_id = served.env.submit("alice", firmware="blink", limit=1).json["id"]
    served.env.wait(job_id, timeout=30)
    # bob signs in with a token this time
    page.goto(f"{served.url}/ui/")
    page.fill("input[name=token]", served.token("bob"))
    page.click("form#signin button[type=submit]")
    page.wait_for_selector("#empty:has-text('No jobs yet')")
    page.goto(f"{served.url}/ui/#/jobs/{job_id}")
    page.wait_for_selector(f"#refused .error:has-text('Job {job_id} belongs to another user.')")
    assert page.locator("#log").count() == 0 and page.locator("#wave").count() == 0
    shot(page, screenshots, "08-job-refused")

    page.click("#signout")
    sign_in(page, served.url, "admin", served.env.passwords["admin"])
    page.fill("#filters input[name=owner]", "bob")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("#empty:has-text('No job matches these filters.')")
    page.fill("#filters input[name=owner]", "alice")
    page.click("#filters button[type=submit]")
    page.wait_for_selector(f"#jobs tr[data-job='{job_id}']")
    page.click(f"#jobs tr[data-job='{job_id}'] a")
    page.wait_for_selector("#infra:has-text('pin trace')")  # admins see the infrastructure log
    shot(page, screenshots, "09-admin-job")


def _nucleo():
    from hwut_testenv import sim_board
    return sim_board()


def test_a_job_submitted_with_criteria_shows_its_verdict(serve, page, screenshots):
    served = serve(boards=_nucleo())
    sign_in(page, served.url, "alice", served.env.passwords["alice"])
    submit(page, "hello", 5, expect="count=1\ncount=2")
    page.wait_for_selector("#job-fields dd[data-field='Verdict']:has-text('passed')")
    assert "count=2" in field(page, "Verdict")  # the reason names the last expectation
    shot(page, screenshots, "10-job-verdict")


def test_a_slow_answer_for_the_last_view_does_not_replace_the_next(serve, page):
    """The jobs list still waiting for the server when the user opens the submit form:
    its late answer must not replace the form (a CI rehearsal met this race)."""
    import time as _time
    served = serve(boards=_nucleo())
    held: list = []

    def hold_jobs(route):
        held.append(route)   # answered only once the submit form is up

    sign_in(page, served.url, "alice", served.env.passwords["alice"])
    page.click("a[data-nav=boards]")   # away from the jobs list, so that its link navigates
    page.wait_for_selector("#boards")
    page.route(re.compile(r".*/apiv1/jobs\?.*"), hold_jobs)
    page.click("a[data-nav=jobs]")
    deadline = _time.monotonic() + 10
    while not held and _time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the jobs view asked for no list"
    page.click("a[data-nav=submit]")
    page.wait_for_selector("form#submit select[name=board] option", state="attached")
    for route in held:
        route.continue_()
    page.wait_for_timeout(500)   # the late list arrives and is dropped
    assert page.locator("form#submit").count() == 1
    assert page.locator("form#submit select[name=board] option").count() >= 1
