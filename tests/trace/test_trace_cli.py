"""``hwut trace ID -o out.vcd`` and ``hwut submit --trace`` against the real server."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))

from fixture_firmware import image  # noqa: E402

from hwut.client import EXIT_LIMIT  # noqa: E402
from hwut.trace import summarize  # noqa: E402


def test_trace_command_writes_the_vcd_and_prints_the_summary(serve, tmp_path):
    served = serve()
    fw = served.write("blink.elf", image("blink"))
    r = served.run("submit", fw, "-b", "nucleo-f303re", "-l", "1", "--trace", "LD2", "--wait")
    assert r.exit_code == EXIT_LIMIT, r.output  # the time limit ended it
    job_id = int(r.stderr.split()[1])
    out = tmp_path / "out.vcd"
    r = served.run("trace", str(job_id), "-o", str(out))
    assert r.exit_code == 0, r.output
    summary = summarize(out)
    assert set(summary["signals"]) == {"PA5", "LD2"}
    assert summary["signals"]["LD2"]["edges"] == 3
    r = served.run("trace", str(job_id), "--summary")
    assert json.loads(r.stdout)["signals"]["LD2"]["edges"] == 3
    r = served.run("trace", str(job_id), who="bob")
    assert r.exit_code != 0 and "belongs to another user" in r.output
