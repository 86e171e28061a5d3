"""`hwut serve --config examples/lab-simulated-probe.toml`: the server starts the
simulated bench (`hwut simboard`) and serves it as a `physical` board instance; the
fixtures run through real pyOCD and pyserial print what they print on the `sim`
backend (the same text; the time base is the wall clock here, virtual time there):
every fixture of fixtures/build but those in ``EXCLUDED`` (each with its reason), one
server and one simulated bench for all of them, one job after the other.

The example's port and console path are replaced by free ones, so that tests running
at once do not meet; everything else is the committed file."""
from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

pytest.importorskip("pyocd")
pytest.importorskip("serial")

from hwut_e2e import REPO, Server, admin_token, wait_ended  # noqa: E402

from hwut.backends.base import RunRequest, StopReason  # noqa: E402
from hwut.backends.sim import SimBackend  # noqa: E402

EXAMPLE = REPO / "examples" / "lab-simulated-probe.toml"
BUILD = REPO / "fixtures" / "build"

@dataclass(frozen=True)
class Case:
    """One fixture's job on both backends."""

    name: str
    #: Virtual seconds on the sim (the firmware's whole output, or a prefix of it).
    sim_limit: float
    #: The bench's job limit, whole seconds (the API's): the bench is the wall clock's and
    #: on a loaded host runs behind it, so firmware that exits gets room to reach its exit.
    limit: int
    #: The firmware exits (semihosting): the whole log and the exit code must match.
    #: Else it runs to its limit: the logs must agree as far as both got.
    exits: bool = False
    #: Console input given at submit (the sim feeds it in virtual time, the bench types it
    #: into the serial port).
    input: str = ""


EXITS = ["bootloader", "core_exceptions", "core_system", "flash_program", "float",
         "fw_chibios_clock", "fw_chibios_clock_hsi", "fw_cube_bitband", "fw_cube_bitband_48",
         "fw_embassy_time", "fw_embassy_time_hsi", "fw_i2c_bitbang", "fw_mbed_vectors",
         "fw_mbed_vectors_hsi", "fw_rtos", "fw_uart_dma", "fw_uart_dma_hsi", "semihost_exit",
         "semihost_exit0", "systick_1mhz", "timers", "pin_levels"]
#: Run for ever, printing (or faulting: fault, fault_div0 and fault_unaligned end as
#: fault on both, the bench seeing handled faults through its vector catch).
#: hal_clock's first line comes at 0.5 s of board time: on a loaded host the bench,
#: paced by the wall clock, can get there seconds later.
RUNS = ["hello", "blink", "hal_clock", "uart_loop", "fw_pal_init", "fw_unity",
        "fw_unity_pass", "fw_ztest", "fw_cpputest", "fault", "fault_div0", "fault_unaligned",
        "spin", "capture_adc", "speed_rtx_ticker", "speed_blt_poll", "speed_hal_delay",
        "speed_rtos_idle", "speed_rtos2_itm", "speed_gpio_poll", "ramp_waits"]
#: The hostile ones: each must run and end with its documented stop (fixtures/README.md),
#: its text agreeing as far as both got. Short sim limits: some are slow to emulate.
HOSTILE = {"hostile_fault_loop": 0.02, "hostile_lockup": 0.02, "hostile_vtor_unmapped": 0.02,
           "hostile_irq_repend": 0.02, "hostile_unmodelled": 0.02, "hostile_selfmod": 0.02,
           "hostile_uart_spam": 0.02, "hostile_uart_spam_max": 0.002,
           "hostile_semihost_spam": 0.002, "hostile_reset_loop": 0.001,
           "hostile_itm_spam": 0.02}
CASES = ([Case(f"{n}.elf", 1, 20, exits=True) for n in EXITS]
         + [Case(f"{n}.elf", 1, 6 if n == "hal_clock" else 2) for n in RUNS]
         + [Case("hello.hex", 1, 2), Case("hello.bin", 1, 2),
            Case("echo.elf", 1, 2, input="ab\rc"), Case("uart_irq.elf", 1, 2, input="hello\r")]
         + [Case(f"{n}.elf", limit, 1) for n, limit in HOSTILE.items()]
         # 29 faults, one case per reset: each caught fault costs the bench a halt
         + [Case("fault_bits.elf", 1, 8)])
#: Every fixture in fixtures/build that is not compared, and why.
EXCLUDED = {
    "button": "needs presses: a lab has no finger on the button, the physical backend "
              "refuses press= at submit (tests/backends/test_physical_lab.py)",
    "fw_button_poll": "needs presses (as button)",
    "disco_hello": "built for the STM32F3DISCOVERY; the example lab is one NUCLEO-F303RE",
    "itm_printf": "its output is the ITM (SWO), which the physical backend does not capture "
                  "(it reads the ST-LINK's virtual COM port)",
    "itm_printf32": "ITM output on ports a debugger's SWV capture enables (the sim plays "
                    "that debugger; the physical backend sets up no SWV)",
    "boot_split": "reads the application's area, which on a bench holds what earlier jobs "
                  "programmed there (pyOCD erases only the sectors it writes; the sim starts "
                  "erased): its verdict on a bench depends on the bench's history",
    "boot_app": "an application alone at 0x0800A000: it starts behind boot_split (the "
                "two-image job runs on the bench in tests/backends/test_multi_image_backends.py)",
    "compute": "one semihosting line after ~13 s of board time at 8 MHz: the bench runs no "
               "faster than the wall clock (the sim tests run it)",
    "tim_script": "prints a checksum of DWT cycle counts, which are the simulator's (one "
                  "instruction a cycle), not a real core's: it holds the simulator's native "
                  "timer path to its Python model (tests/sim/test_native_timer.py)",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _on_bench(lab, case: Case) -> tuple[dict, bytes, str]:
    server, headers = lab
    params: dict[str, str | int] = {"board": "nucleo-f303re", "duration_limit_seconds": case.limit}
    if case.input:
        params["input"] = case.input
    r = httpx.put(f"{server.url}/apiv1/jobs/submit", headers=headers,
                  content=(BUILD / case.name).read_bytes(), params=params)
    assert r.status_code in (200, 201), r.text
    job = wait_ended(server.url, r.json()["id"], headers, timeout=90)
    log = httpx.get(f"{server.url}/apiv1/jobs/{job['id']}/log", headers=headers).content
    infra = httpx.get(f"{server.url}/apiv1/jobs/{job['id']}/infra_log", headers=headers).text
    return job, log, infra


def _on_sim(case: Case) -> tuple[StopReason, int | None, bytes]:
    log = bytearray()
    outcome = SimBackend("nucleo-f303re").run(RunRequest(
        BUILD / case.name, case.name.rsplit(".", 1)[1], "nucleo-f303re", case.sim_limit,
        log.extend, threading.Event(), uart_input=case.input.encode()))
    return outcome.reason, outcome.exit_code, bytes(log)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("lab")
    port, console = _free_port(), tmp / "console"
    text = EXAMPLE.read_text()
    assert "port = 5555" in text and 'serial = "/tmp/hwut-simboard-0"' in text
    config = tmp / "lab.toml"
    config.write_text(text.replace("5555", str(port))
                      .replace("/tmp/hwut-simboard-0", str(console)))
    server = Server(tmp, config).start()
    assert f"probe remote:localhost:{port}, console {console}" in server.banner
    try:
        yield server, {"Authorization": f"Bearer {admin_token(server)}"}
    finally:
        server.stop()
    assert not console.exists(), "the simulated bench outlived the server"


def test_the_instance_is_physical_and_idle(lab):
    server, headers = lab
    boards = httpx.get(f"{server.url}/apiv1/targets/boards", params={"extended": "true"},
                       headers=headers).json()
    (board,) = boards
    assert board["instances"][0]["backend"] == "physical"
    assert board["instances"][0]["state"] == "idle"
    assert board["microcontroller"]["name"] == "stm32f303re"


def test_every_fixture_is_compared_or_excluded_with_a_reason():
    compared = {c.name.rsplit(".", 1)[0] for c in CASES}
    built = {p.stem for p in BUILD.glob("*.elf")}
    assert built - compared == set(EXCLUDED), built - compared ^ set(EXCLUDED)
    assert not compared & set(EXCLUDED)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_fixtures_print_what_they_print_on_sim(lab, case):
    # the sim's run (CPU) goes on beside the bench's (mostly the wall clock's)
    with ThreadPoolExecutor(1) as pool:
        on_sim = pool.submit(_on_sim, case)
        job, log, infra = _on_bench(lab, case)
        reason, exit_code, expected = on_sim.result()
    assert job["status"] == "FINISHED", job["detail"]
    assert job["stop_reason"] == reason.value, (job, reason)
    if case.exits:
        assert job["exit_code"] == exit_code
        assert log == expected
        return
    # the same text as far as both got (the bench, bound to the wall clock, and the sim,
    # bound to its virtual limit, stop at different places)
    at = next((i for i, (a, b) in enumerate(zip(log, expected)) if a != b),
              min(len(log), len(expected)))
    assert at == min(len(log), len(expected)), \
        f"differs at byte {at}: {log[at - 40:at + 40]!r} against " \
        f"{expected[at - 40:at + 40]!r} (bench {len(log)}, sim {len(expected)} bytes)"
    if expected:  # firmware that prints: at least its first line on both
        assert b"\n" in log[:at], (log[:200], expected[:200], infra)
    else:
        assert log == b"", log[:200]
