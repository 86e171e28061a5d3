"""Issue 13, fidelity: what public STM32F303 firmware does must run as on the board.

GPIOG/GPIOH on the xE part (a ChibiOS-style PAL start-up), ITM as a debugger's SWV
capture leaves and shows it, instructions apart from cycles slept, and the level of
pins the board leaves floating or pulled, scriptable per job.
"""
from __future__ import annotations

import dataclasses
import struct
import threading

import pytest
from unicorn.arm_const import UC_ARM_REG_PC

from hwut.backends.base import RunRequest
from hwut.backends.sim import SimBackend
from hwut.sim.boards import board
from hwut.sim.core.itm import SWV_TCR, SwvConsole, console_text
from hwut.sim.machine import Machine, StopCause

from .conftest import BUILD, expected, run_firmware

GPIOA, GPIOG, GPIOH = 0x4800_0000, 0x4800_1800, 0x4800_1C00
MODER, PUPDR, IDR, ODR = 0x00, 0x0C, 0x10, 0x14
SYSCFG_EXTICR1, EXTI_IMR1, EXTI_RTSR1, EXTI_PR1 = 0x4001_0008, 0x4001_0400, 0x4001_0408, \
    0x4001_0414
ITM_TER, ITM_TCR, DEMCR = 0xE000_0E00, 0xE000_0E80, 0xE000_EDFC


# -- GPIOG and GPIOH ---------------------------------------------------------------
def test_pal_style_init_of_every_port_runs_on_the_nucleo():
    r = run_firmware("fw_pal_init", 0.1)
    assert r.uart == expected("fw_pal_init") and not r.result.faults
    lines = r.uart.split(b"\r\n")
    assert lines[0] == b"pal: AHBENR=00ff0014"  # IOPH 16, IOPA-F 17-22, IOPG 23
    assert lines[7].startswith(b"GPIOG MODER=00000000") and lines[7].endswith(b"IDR=0000ffff")
    assert lines[8].startswith(b"GPIOH ") and lines[9] == b"pal: done"


def test_g_and_h_are_ports_of_the_xe_and_reach_exti_through_exticr_codes_6_and_7():
    m = Machine(board("nucleo-f303re"))
    for base in (GPIOG, GPIOH):
        m.bus.write(base + ODR, 4, 0x1234)
        assert m.bus.read(base + ODR, 4) == 0x1234
    m.bus.write(SYSCFG_EXTICR1, 4, 0x7006)        # EXTI0 <- PG0, EXTI3 <- PH3
    m.bus.write(EXTI_IMR1, 4, 0x9)
    m.bus.write(EXTI_RTSR1, 4, 0x9)
    m.drive("PH0", 1)                              # not selected: no edge
    m.drive("PG3", 1)
    assert m.bus.read(EXTI_PR1, 4) == 0
    m.drive("PG0", 1)
    m.drive("PH3", 1)
    assert m.bus.read(EXTI_PR1, 4) == 0x9


def test_the_discovery_part_has_no_g_or_h():
    m = Machine(board("stm32f3discovery"))
    assert "GPIOG" not in m.peripherals and "GPIOH" not in m.peripherals
    assert m.bus.find(GPIOG + 4) is None and m.bus.find(GPIOH) is None
    assert m.bus.find(GPIOA + 0x1400) is m.peripherals["GPIOF"]
    with pytest.raises(ValueError, match="ports ABCDEF"):
        m.drive("PG0", 1)


# -- ITM as the bench shows it -------------------------------------------------------
@pytest.mark.parametrize("packet, shown", [
    (b"A", b"A"), (b"\0", b"\0"),                      # 8-bit: the byte, whatever it is
    (b"A\0", b"A"), (b"AB", b"AB"), (b"\0\0", b""),      # 16-bit
    (b"A\0\0\0", b"A"), (b"itm\n", b"itm\n"), (b"ab\0\0", b"ab"), (b"\0\0\0\0", b""),
    (b"\0\0A\0", b"\0\0A"),                            # a NUL below a character stays
])
def test_console_text_drops_only_the_zero_bytes_at_the_top_of_a_wide_write(packet, shown):
    assert console_text(packet) == shown


def test_printf_with_32_bit_writes_shows_as_text_on_the_swv_console():
    trace: list[tuple[int, bytes]] = []
    r = run_firmware("itm_printf32", 1, trace_out=lambda port, data: trace.append((port, data)))
    assert r.result.cause is StopCause.EXIT and r.result.exit_code == 0
    assert b"".join(d for _, d in trace) == expected("itm_printf32")
    assert b"\0" not in expected("itm_printf32")
    assert expected("itm_printf32").startswith(b"itm32: TCR=0x0001000b\n")
    assert {port for port, _ in trace} == {0}


def test_without_a_debugger_capturing_the_firmware_finds_itm_off():
    r = run_firmware("itm_printf32", 1)
    assert r.result.exit_code == 1
    assert r.semihosting == b"itm32: ITMENA is off: no debugger capturing SWV\n"
    raw: list[bytes] = []   # swv_ports=0: a raw trace sink, no debugger set-up
    r = run_firmware("itm_printf32", 1, trace_out=lambda p, d: raw.append(d), swv_ports=0)
    assert r.result.exit_code == 1 and raw == []


def test_raw_packets_keep_their_width_when_no_console_decodes_them():
    raw: list[bytes] = []
    r = run_firmware("itm_printf", 1, trace_out=lambda p, d: raw.append(d), swv_ports=0)
    assert r.result.exit_code == 0 and b"".join(raw) == expected("itm_printf")


def test_the_debugger_sets_trcena_itmena_and_port_0_at_power_on_only():
    shown: list[bytes] = []
    m = Machine(board("nucleo-f303re"), trace_out=lambda p, d: shown.append(d))
    assert (m.bus.read(DEMCR, 4), m.bus.read(ITM_TCR, 4), m.bus.read(ITM_TER, 4)) == \
        (1 << 24, SWV_TCR, 1)
    m.bus.write(ITM_TER, 4, 0x3)                   # firmware adds port 1
    m.bus.write(0xE000_0004, 4, ord("x"))          # on the wire, not on the port-0 console
    m.bus.write(0xE000_0000, 4, ord("y"))
    assert shown == [b"y"]
    m.bus.write(ITM_TCR, 4, 0)
    m.reset(system=True)                           # SYSRESETREQ: the debug domain stays
    assert (m.bus.read(DEMCR, 4), m.bus.read(ITM_TCR, 4), m.bus.read(ITM_TER, 4)) == \
        (1 << 24, 0, 3)
    m.reset()                                      # power-on: the debugger sets it up again
    assert (m.bus.read(ITM_TCR, 4), m.bus.read(ITM_TER, 4)) == (SWV_TCR, 1)
    plain = Machine(board("nucleo-f303re"))
    assert (plain.bus.read(DEMCR, 4), plain.bus.read(ITM_TCR, 4),
            plain.bus.read(ITM_TER, 4)) == (0, 0, 0)


def test_swv_console_shows_only_its_ports():
    seen: list[tuple[int, bytes]] = []
    console = SwvConsole(lambda p, d: seen.append((p, d)), ports=0b101)
    for port in range(4):
        console(port, b"Z\0\0\0")
    console(0, b"\0\0\0\0")
    assert seen == [(0, b"Z"), (2, b"Z")]


# -- instructions are not cycles ---------------------------------------------------
@pytest.mark.parametrize("args", [{}, {"precharge": False}, {"native": False}])
def test_cycles_slept_in_wfi_are_not_instructions(args):
    r = run_firmware("blink", 1, **args)
    total = r.machine.counter.count
    assert r.result.instructions + r.result.slept_cycles == total
    assert r.result.slept_cycles > 0.99 * total            # a 1 kHz tick, WFI otherwise
    assert r.result.instructions < 300_000
    reference = run_firmware("blink", 1)
    assert (r.result.instructions, r.result.slept_cycles) == \
        (reference.result.instructions, reference.result.slept_cycles)


def test_a_busy_loop_sleeps_no_cycle_and_an_exit_drains_without_instructions():
    r = run_firmware("spin", 0.01)
    assert r.result.slept_cycles == 0 and r.result.instructions == r.machine.counter.count
    r = run_firmware("semihost_exit", 1)
    assert r.result.slept_cycles == 0 and r.result.instructions < 1000


def test_the_sim_backend_logs_instructions_and_cycles_asleep_apart():
    req = RunRequest(BUILD / "hal_clock.elf", "elf", "nucleo-f303re", 1, lambda d: None,
                     threading.Event())
    outcome = SimBackend("nucleo-f303re").run(req)
    line = next(x for x in outcome.infra_log.splitlines() if x.startswith("virtual time"))
    words = line.split()
    executed = int(words[words.index("instructions") - 1])
    asleep = int(words[words.index("cycles") - 1])
    assert outcome.instructions == executed and asleep > 0
    assert executed + asleep == pytest.approx(72_000_000, rel=0.01)  # 1 s, mostly at 72 MHz


# -- pins the board leaves floating or pulled -------------------------------------------
def test_the_nucleo_says_what_its_pins_read_when_nothing_drives_them():
    b = board("nucleo-f303re")
    assert b.idle_levels("GPIOC") == {13: 1, 14: 0, 15: 0}   # B1's pull-up, the LSE crystal
    assert b.idle_levels("GPIOA") == {3: 1, 5: 0}            # VCP TX idles high, LD2
    assert b.floating_level == 0
    m = Machine(b)
    # reset state: inputs, no pull except PA13-15/PB4 (debug pins)
    assert m.bus.read(GPIOA + IDR, 4) == (1 << 3) | (1 << 13) | (1 << 15)
    assert m.bus.read(0x4800_0800 + IDR, 4) == 1 << 13
    m.bus.write(GPIOA + PUPDR, 4, 0x1)             # PA0 (A0, no jumper) with its pull-up
    assert m.bus.read(GPIOA + IDR, 4) & 1 == 1
    m.bus.write(GPIOA + PUPDR, 4, 0x2)
    assert m.bus.read(GPIOA + IDR, 4) & 1 == 0


def test_a_board_that_reads_floating_pins_high_is_data():
    high = dataclasses.replace(board("nucleo-f303re"), floating_level=1)
    m = Machine(high)
    assert m.bus.read(GPIOA + IDR, 4) & 0x17 == 0x1F & 0x17   # PA0-2, PA4 float high
    assert m.bus.read(GPIOA + IDR, 4) >> 5 & 1 == 0           # LD2 holds PA5 low
    m.bus.write(GPIOA + MODER, 4, 0x3)                        # PA0 analog: input stage off
    assert m.bus.read(GPIOA + IDR, 4) & 1 == 0


def test_pins_are_scripted_by_name_at_virtual_times():
    m = Machine(board("nucleo-f303re"))
    m.load([(0x0800_0000, (BUILD / "spin.bin").read_bytes())])
    m.drive("PA0", 1, at_s=0.001)
    m.drive("pa0", None, at_s=0.002)               # released: back to floating
    m.drive("PC13", 0, at_s=0.001)                 # what press("B1") does
    levels = []
    for t in (0.0005, 0.0015, 0.0025):
        m.run(t)
        levels.append((m.bus.read(GPIOA + IDR, 4) & 1, m.bus.read(0x4800_0800 + IDR, 4) >> 13))
    assert levels == [(0, 1), (1, 0), (0, 0)]
    for bad in ("PI0", "PA16", "A0", "P", "PAx"):
        with pytest.raises(ValueError, match="no pin"):
            m.drive(bad, 1)


# -- divide-by-zero and unaligned traps -------------------------------------------
UFSR_BITS = {"UNDEFINSTR": 16, "INVSTATE": 17, "INVPC": 18, "NOCP": 19, "UNALIGNED": 24,
             "DIVBYZERO": 25}


def _fault_lines(uart: bytes) -> list[tuple[str, int, int, str]]:
    out = []
    for line in uart.decode().splitlines():
        if "Fault CFSR=" in line:
            kind, cfsr, hfsr, _, site = line.split()
            out.append((kind, int(cfsr[7:], 16), int(hfsr[7:], 16), site))
    return out


@pytest.mark.parametrize("args", [{}, {"precharge": False}, {"native": False}])
def test_division_by_zero_traps_only_with_div_0_trp(args):
    r = run_firmware("fault_div0", 0.1, **args)
    assert r.uart == expected("fault_div0")
    div = 1 << UFSR_BITS["DIVBYZERO"]
    assert _fault_lines(r.uart) == [("UsageFault", div, 0, "sdiv"), ("UsageFault", div, 0, "udiv"),
                                    ("HardFault", div, 1 << 30, "sdiv")]   # FORCED
    text = r.uart.decode()
    assert "untrapped udiv 7/0=0x00000000" in text and "untrapped sdiv -7/0=0x00000000" in text
    assert text.count("q=0x5a5a5a5a") == 3        # the destination was never written
    assert "sdiv -7/2=0xfffffffd" in text and "CCR=0x00000210" in text


@pytest.mark.parametrize("args", [{}, {"precharge": False}, {"native": False}])
def test_unaligned_accesses_trap_as_the_architecture_says(args):
    r = run_firmware("fault_unaligned", 0.1, **args)
    assert r.uart == expected("fault_unaligned")
    un = 1 << UFSR_BITS["UNALIGNED"]
    assert _fault_lines(r.uart) == [
        ("UsageFault", un, 0, "ldrex"),           # always, trap or not
        ("UsageFault", un, 0, "ldr"), ("UsageFault", un, 0, "strh"),
        ("UsageFault", un, 0, "ldrd"), ("UsageFault", un, 0, "ldm"),
        ("HardFault", un, 1 << 30, "ldr")]
    text = r.uart.decode()
    assert "untrapped ldr [1]=0x44332211" in text and "untrapped ldrh [1]=0x00002211" in text
    assert "after strh [4]=0x77665544" in text    # the faulting store stored nothing
    assert "ldrb [1]=0x00000011" in text and "ldrd [8]=0x44444444" in text


def test_trap_hooks_wait_for_the_ccr_bit():
    """Images that never set DIV_0_TRP or UNALIGN_TRP get no hook (and keep their speed)."""
    r = run_firmware("fault", 0.02)
    assert r.machine.traps.hooks == {}
    r = run_firmware("fault_div0", 0.1)
    assert r.machine.traps.hooks == {"divide": True}


def test_sites_are_found_by_their_encoding():
    from hwut.sim import traps
    sdiv, udiv = bytes.fromhex("92fbf1f0"), bytes.fromhex("b2fbf1f0")   # sdiv r0,r2,r1 ...
    smull = bytes.fromhex("82fb0101")
    assert traps.divide_sites([(0x100, sdiv + udiv + smull)]) == [(0x100, 1), (0x104, 1)]
    ldr_sp, ldr_r0_1, ldrd_r0 = bytes.fromhex("0198"), bytes.fromhex("d0f80110"), \
        bytes.fromhex("d0e90023")                          # ldr r0,[sp,#4]; ldr.w r1,[r0,#1]
    sites = dict(traps.access_sites([(0x200, ldr_sp + ldr_r0_1 + ldrd_r0)]))
    assert 0x200 not in sites                              # SP-based and aligned: never
    assert sites[0x202].disp == 1 and not sites[0x202].always
    assert sites[0x206].always and sites[0x206].mask == 3


def _ldrd_at_2() -> list[tuple[int, bytes]]:
    """Reset → movw/movt r0, 0x20000002; ldrd r2, r3, [r0]; b . — HardFault → b ."""
    vectors = struct.pack("<4I", 0x2001_0000, 0x0800_0101, 0x0800_0201, 0x0800_0201)
    code = bytes.fromhex("40f20200" "c2f20000" "d0e90023" "fee7")
    return [(0x0800_0000, vectors), (0x0800_0100, code), (0x0800_0200, bytes.fromhex("fee7"))]


@pytest.mark.parametrize("strict", [False, True])
def test_strict_alignment_checks_multiword_accesses_without_unalign_trp(strict):
    m = Machine(board("nucleo-f303re"), strict_alignment=strict)
    m.load(_ldrd_at_2())
    r = m.run(0.001)
    if strict:   # the architecture: LDRD needs word alignment, UNALIGN_TRP or not
        assert r.faults == ["HardFault: unaligned access to 0x20000002 at 0x08000108"]
        assert m.exc.faults.cfsr == 1 << 24 and m.exc.faults.hfsr == 1 << 30
    else:        # the default: checked only once firmware sets UNALIGN_TRP
        assert r.faults == [] and m.uc.reg_read(UC_ARM_REG_PC) == 0x0800_010C
