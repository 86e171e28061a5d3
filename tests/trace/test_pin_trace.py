"""Pin traces: recorded on the emulated board, written as VCD with pyvcd, read back
with pyvcd's own tokenizer, summarised, capped; and through the service as an artifact."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from vcd.reader import TokenKind, tokenize

from hwut.backends import simboards
from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.machine import Machine
from hwut.sim.trace import PinRecorder, UnknownSignal
from hwut.trace import check, parse_expectation, summarize

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
from hwut_testenv import Env  # noqa: E402

FIXTURES = Path(__file__).parents[2] / "fixtures" / "build"
NUCLEO = board("nucleo-f303re")


def run_traced(name: str, seconds: float, signals: list[str] | None = None,
               cap: int = 8 * 1024 * 1024) -> tuple[bytes, object, Machine]:
    recorders: list[PinRecorder] = []
    machine = Machine(NUCLEO, uart_out=lambda n, d: [r.uart(n, d) for r in recorders])
    recorders.append(PinRecorder(machine, signals, cap_bytes=cap))
    image = load(FIXTURES / f"{name}.elf", "elf", simboards.memory_map(NUCLEO.soc))
    machine.load([(s.address, s.data) for s in image.segments])
    machine.run(seconds)
    out = bytearray()
    result = recorders[0].write_vcd(out.extend)
    return bytes(out), result, machine


def changes_of(vcd: bytes, name: str) -> list[tuple[int, object]]:
    """(time, value) of every change of ``name``, read back with pyvcd's tokenizer: a
    scalar's value as text ("0", "1", "x"), a vector's as an int or text ("z")."""
    ids, now, seen = set(), 0, []
    for token in tokenize(io.BytesIO(vcd)):
        if token.kind is TokenKind.VAR and token.var.reference == name:
            ids.add(token.var.id_code)
        elif token.kind is TokenKind.CHANGE_TIME:
            now = token.time_change
        elif token.kind in (TokenKind.CHANGE_SCALAR, TokenKind.CHANGE_VECTOR):
            change = token.data
            if change.id_code in ids:
                seen.append((now, change.value))
    return seen


def test_blink_ld2_has_the_expected_edges_and_period():
    vcd, result, _ = run_traced("blink", 2.1)
    assert result.truncated_at_s is None
    ld2 = changes_of(vcd, "LD2")
    assert ld2 == changes_of(vcd, "PA5")  # one wire, two names
    # configured as output (low) right after reset, then a toggle every 250 ms
    assert ld2[0][1] == "x" and ld2[1][1] == "0" and ld2[1][0] < 1_000_000
    toggles = ld2[2:]
    assert [v for _, v in toggles] == ["1", "0"] * 4
    gaps = [b[0] - a[0] for a, b in zip(toggles, toggles[1:])]
    assert all(abs(g - 250_000_000) < 50_000 for g in gaps), gaps  # ns: 250 ms +- 50 us
    summary = summarize(vcd)
    led = summary["signals"]["LD2"]
    assert led["edges"] == 8 and led["rising"] == 4
    assert led["frequency_hz"] == pytest.approx(2.0, rel=1e-4)
    assert led["duty_cycle"] == pytest.approx(0.5, abs=1e-3)
    assert summary["end_s"] == pytest.approx(2.1)
    assert check("LD2:toggles:1.9-2.1Hz", summary)[0]
    assert not check("LD2:toggles:0.9-1.1Hz", summary)[0]
    assert check("LD2:duty:45-55%", summary)[0]
    assert check("PA5:edges:8", summary)[0]


def test_uart_bytes_are_on_the_time_axis():
    vcd, _, _ = run_traced("blink", 0.3)
    tx = changes_of(vcd, "USART2_TX")
    assert {v for _, v in tx if not isinstance(v, int)} == {"z"}
    text = bytes(v for _, v in tx if isinstance(v, int))
    assert text == b"tick 1 led=1\r\n"
    starts = [t for t, v in tx if isinstance(v, int)]
    # the first byte's frame starts right after the LED's first toggle (250 ms)
    assert 250_000_000 < starts[0] < 250_200_000
    # each byte is a frame of 10 bits at 115200 baud: about 86.8 us apart
    assert all(abs((b - a) - 86_806) < 200 for a, b in zip(starts, starts[1:]))


def test_chosen_signals_only_and_unknown_names_refused():
    vcd, result, _ = run_traced("blink", 0.3, ["LD2"])
    assert result.signals == ("PA5",)
    assert b"USART2_TX" not in vcd and b"LD2" in vcd
    with pytest.raises(UnknownSignal, match="no signal 'PZ9'"):
        run_traced("blink", 0.01, ["PZ9"])


def test_the_cap_cuts_the_trace_where_it_was_reached_and_says_so():
    whole, _, _ = run_traced("blink", 2.1)
    cap = 1024
    vcd, result, _ = run_traced("blink", 2.1, cap=cap)
    assert len(vcd) <= cap < len(whole)
    assert result.truncated_at_s is not None and 0.25 < result.truncated_at_s < 2.1
    assert b"$comment trace cut at" in vcd
    summary = summarize(vcd)  # still a VCD pyvcd reads
    assert summary["truncated"] is True
    assert summary["signals"]["LD2"]["edges"] < 8


def test_expectation_grammar():
    assert parse_expectation("LD2:toggles:0.9-1.1Hz").low == pytest.approx(0.9)
    assert parse_expectation("LD2:toggles:2kHz").high == pytest.approx(2002)
    assert parse_expectation("LD2:duty:40-60%").high == pytest.approx(0.6)
    assert parse_expectation("LD2:high").kind == "high"
    for bad in ("LD2", "LD2:blinks", "LD2:duty", "LD2:high:3", "LD2:toggles:3-1Hz",
                "LD2:toggles:1V", ":toggles", "LD2:edges:4Hz"):
        with pytest.raises(ValueError):
            parse_expectation(bad)
    ok, why = check("LD9:toggles", {"signals": {}})
    assert not ok and "not in the pin trace" in why


def test_the_service_keeps_the_trace_and_its_summary(env: Env):
    r = env.submit(firmware="blink", limit=1)
    assert r.status_code == 201, r.text
    job_id = r.json["id"]
    env.wait(job_id, timeout=30)
    view = env.get(f"/apiv1/jobs/{job_id}").json
    assert view["status"] == "FINISHED"
    led = view["trace_summary"]["signals"]["LD2"]
    assert led["edges"] == 3 and led["first_change_s"] < 0.001
    r = env.get(f"/apiv1/jobs/{job_id}/trace.vcd")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/x-vcd")
    assert summarize(r.content)["signals"]["LD2"] == led
    assert env.get(f"/apiv1/jobs/{job_id}/trace.vcd", "bob").status_code == 403


def test_trace_option_none_and_bad_names(env: Env):
    r = env.submit(firmware="blink", limit=1, trace="none")
    job_id = r.json["id"]
    env.wait(job_id, timeout=30)
    assert env.get(f"/apiv1/jobs/{job_id}").json["trace_summary"] is None
    assert env.get(f"/apiv1/jobs/{job_id}/trace.vcd").status_code == 404
    r = env.submit(firmware="blink", limit=1, trace="LD7")
    assert r.status_code == 400 and "no signal 'LD7'" in r.json["description"]
    r = env.submit(firmware="blink", limit=1, trace="ld2,PA6")
    assert r.status_code == 201 and r.json["trace"] == "LD2,PA6"


def test_the_trace_cap_is_a_server_option(make_env):
    env = make_env(jobs_max_trace_bytes=700)
    job_id = env.submit(firmware="blink", limit=2).json["id"]
    env.wait(job_id, timeout=30)
    view = env.get(f"/apiv1/jobs/{job_id}").json
    assert view["status"] == "FINISHED" and view["stop_reason"] == "limit"
    assert view["trace_summary"]["truncated"] is True
    assert len(env.get(f"/apiv1/jobs/{job_id}/trace.vcd").content) <= 700
    infra = env.get(f"/apiv1/jobs/{job_id}/infra_log").text
    assert "pin trace cut at" in infra
