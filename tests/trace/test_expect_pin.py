"""Pin expectations (``expect_pin``) in the job's verdict, on the real service with blink
(LD2 toggles every 250 ms: 2 Hz), and through the CLI against the real server."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))

from fixture_firmware import image  # noqa: E402
from hwut_testenv import Env  # noqa: E402

from hwut.client import EXIT_FAILED  # noqa: E402


def run(env: Env, limit: int = 2, **params) -> dict:
    r = env.submit(firmware="blink", limit=limit, **params)
    assert r.status_code == 201, r.text
    assert env.wait(r.json["id"], timeout=60).ended
    return env.get(f"/apiv1/jobs/{r.json['id']}").json


def test_a_met_pin_expectation_passes_after_the_run(env: Env):
    job = run(env, expect_pin="LD2:toggles:1.9-2.1Hz")
    assert job["verdict"] == "passed", job["verdict_reason"]
    assert job["stop_reason"] == "limit"
    assert "pin expectation 'LD2:toggles:1.9-2.1Hz' met" in job["verdict_reason"]
    assert job["criteria"]["expect_pin"] == ["LD2:toggles:1.9-2.1Hz"]
    assert job["trace_summary"]["signals"]["LD2"]["frequency_hz"] > 1.99


def test_a_missed_pin_expectation_fails_naming_what_was_measured(env: Env):
    job = run(env, expect_pin=["LD2:duty:40-60%", "LD2:toggles:0.9-1.1Hz"])
    assert job["verdict"] == "failed"
    assert job["verdict_reason"] == ("pin expectation 'LD2:toggles:0.9-1.1Hz' not met: LD2 "
                                     "toggles at 2 Hz, expected 0.9-1.1 Hz")


def test_met_text_expectations_do_not_end_a_run_with_pin_expectations(env: Env):
    # "tick 1" comes at 0.25 s; without the pin expectation the run would stop there
    job = run(env, expect="tick 1", expect_pin="PA5:edges:7-9")
    assert job["verdict"] == "passed", job["verdict_reason"]
    assert job["stop_reason"] == "limit" and job["time_used_seconds"] >= 1.99
    assert "every expectation met" in job["verdict_reason"]
    # a fail pattern still ends the run at once
    job = run(env, fail="tick 2", expect_pin="LD2:toggles")
    assert job["verdict"] == "failed" and job["stop_reason"] == "verdict"
    assert job["time_used_seconds"] < 1.0


def test_a_trace_without_the_signal_fails_and_says_so(env: Env):
    job = run(env, limit=1, expect_pin="LD2:toggles", trace="none")
    assert job["verdict"] == "failed"
    assert "cannot be checked: the job asked for no pin trace (trace=none)" \
        in job["verdict_reason"]
    job = run(env, limit=1, expect_pin="LD2:toggles", trace="PA6")
    assert job["verdict"] == "failed"
    assert "LD2 is not in the pin trace (traced: PA6)" in job["verdict_reason"]
    assert "name it in the job's trace option" in job["verdict_reason"]


def test_bad_grammar_and_unknown_signals_are_refused_at_submit(env: Env):
    for bad, why in (("LD2:blinks", "unknown kind 'blinks'"),
                     ("LD2", "write SIGNAL:KIND[:RANGE]"),
                     ("LD2:toggles:1-2s", "a frequency is in Hz"),
                     ("LD2:duty", "duty needs a range"),
                     ("LD7:toggles", "the board has no signal 'LD7'"),
                     ("none:high", "is not a signal name")):
        r = env.submit(firmware="blink", limit=1, expect_pin=bad)
        assert r.status_code == 400, (bad, r.text)
        assert why in r.json["description"], (bad, r.json)
    r = env.submit(firmware="blink", limit=1, expect_pin=[f"PA{i}:steady" for i in range(17)])
    assert r.status_code == 400 and "at most 16 pin expectations" in r.json["description"]


def test_cli_exit_status_is_the_verdict_and_job_files_take_expect_pin(serve):
    served = serve()
    fw = served.write("blink.elf", image("blink"))
    r = served.run("submit", fw, "-b", "nucleo-f303re", "-l", "2",
                   "--expect-pin", "LD2:toggles:1.9-2.1Hz", "--expect-pin", "LD2:duty:45-55%")
    assert r.exit_code == 0, r.output
    r = served.run("submit", fw, "-b", "nucleo-f303re", "-l", "2",
                   "--expect-pin", "LD2:toggles:0.9-1.1Hz")
    assert r.exit_code == EXIT_FAILED, r.output
    assert "LD2 toggles at 2 Hz, expected 0.9-1.1 Hz" in r.stderr
    job_file = served.write("job.toml", b'''
        board = "nucleo-f303re"
        limit = 2
        image = "blink.elf"
        [criteria]
        expect = ["tick 1"]
        expect_pin = ["LD2:toggles:1.9-2.1Hz", "USART2_TX:edges:3-100"]
    ''')
    r = served.run("submit", "--job-file", job_file)
    assert r.exit_code == 0, r.output
    r = served.run("submit", "--job-file", job_file, "--expect-pin", "LD2:low")
    assert r.exit_code == EXIT_FAILED, r.output  # LD2 ends high: its last toggle is at 1.75 s
    assert "LD2 ends '1', expected low" in r.stderr
    bad = served.write("bad.toml", b'image = "blink.elf"\n[criteria]\nexpect_pin = ["LD2"]\n')
    r = served.run("submit", "--job-file", bad, "-b", "nucleo-f303re")
    assert r.exit_code != 0 and "write SIGNAL:KIND[:RANGE]" in r.output
