"""``hwut submit`` for CI (issue 16): criteria options, job files, several images, exit
codes that never collide; the real CLI against the real waitress server, jobs on sim."""
from __future__ import annotations

import cli_served
from cli_served import Served
from fixture_firmware import path

from hwut import client as hc

serve, served = cli_served.serve, cli_served.served  # the fixtures

HELLO = str(path("hello"))
EXIT3 = str(path("semihost_exit"))


def submit(s: Served, *args: str) -> object:
    return s.run("submit", "--board", "nucleo-f303re", *args)


def test_expect_passes_exits_0_log_on_stdout_unprefixed(served: Served):
    r = submit(served, HELLO, "--limit", "5", "--expect", "count=2")
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes.startswith(b"HWUT hello from NUCLEO-F303RE\r\nSYSCLK=72000000\r\n"
                                     b"count=0\r\n")
    assert b"count=2\r\n" in r.stdout_bytes
    last = r.stderr.strip().splitlines()[-1]
    assert "PASSED: every expectation met" in last and last.endswith("exit status 0")


def test_fail_text_fails_fast_with_its_own_code(served: Served):
    r = submit(served, HELLO, "--limit", "30", "--expect", "count=50", "--fail", "count=1")
    assert r.exit_code == hc.EXIT_FAILED == 41, r.output
    # stopped soon after count=1 (the log sink sees output a few wall milliseconds late)
    assert "count=20" not in r.stdout
    assert "fail pattern 'count=1' at line 4" in r.stderr


def test_missing_expectation_and_exit_code(served: Served):
    r = submit(served, HELLO, "--limit", "1", "--expect-regex", "^count=1[0-9]{2}$")
    assert r.exit_code == 41 and "never appeared" in r.stderr
    r = submit(served, EXIT3, "--exit-code", "3")
    assert r.exit_code == 0, r.output
    r = submit(served, EXIT3, "--exit-code", "0")
    assert r.exit_code == 41 and "expected 0" in r.stderr


def test_without_criteria_the_v1_codes_stay(served: Served):
    assert submit(served, EXIT3, "--wait").exit_code == 3
    assert submit(served, HELLO, "--limit", "1", "--wait").exit_code == hc.EXIT_LIMIT


def test_job_file_with_two_images_merges_exit_codes(served: Served):
    job_file = served.write("job.toml", f'''
board = "nucleo-f303re"
limit = 1
images = ["{HELLO}", "{EXIT3}"]
[criteria]
expect = ["semihosting: hello", {{ regex = "^ok$" }}]
ordered = true
exit_code = 3
'''.encode())
    r = served.run("submit", "--job-file", job_file)
    assert r.exit_code == 41, r.output  # hello never prints it: failed; semihost_exit passes
    outcomes = [line for line in r.stderr.splitlines() if "exit status" in line]
    assert len(outcomes) == 2
    assert "FAILED" in outcomes[0] and "PASSED" in outcomes[1]
    # the command line adds to the file, and wins
    r = served.run("submit", "--job-file", job_file, "--exit-code", "0")
    assert r.exit_code == 41


def test_bad_criteria_and_job_files_are_usage_errors(served: Served):
    r = submit(served, HELLO, "--expect-regex", "(")
    assert r.exit_code == hc.EXIT_USAGE and "not valid RE2" in r.stderr
    for text, words in (('board = 1\nimage = "x.elf"', "does not exist"),
                        (f'image = "{HELLO}"\nboard = 3', "board must be a board name"),
                        (f'image = "{HELLO}"\nlimt = 3', "unknown key(s) 'limt'"),
                        (f'image = "{HELLO}"\n[criteria]\nexpect = [{{glob = "a"}}]',
                         "'text' or 'regex'"),
                        (f'image = "{HELLO}"\n[criteria]\nordered = true', "no expect"),
                        ("image = ", "not valid TOML")):
        r = served.run("submit", "--job-file", served.write("bad.toml", text.encode()))
        assert r.exit_code == hc.EXIT_USAGE, (text, r.output)
        assert words in r.stderr, (text, r.stderr)


def test_timeout_has_its_own_code(served: Served):
    # paced to the wall clock: unpaced, the emulator runs hello's 30 s in ~0.3 s
    r = submit(served, HELLO, "--limit", "30", "--realtime", "--expect", "never",
               "--timeout", "0.5")
    assert r.exit_code == hc.EXIT_TIMEOUT, r.output
    job_id = int(r.stderr.split()[1])
    served.run("cancel", str(job_id))
