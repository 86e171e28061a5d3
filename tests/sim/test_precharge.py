"""Precharging (exact timing counted once per flash block, see ``hwut_block_exact``
in sim/native/counter.c) must not change a run in any way firmware or a user
could see: same bytes at the same virtual times, same counts, same notes."""
from __future__ import annotations

import pytest

from hwut.sim.boards import board
from hwut.sim.machine import Machine
from hwut.sim.nativelib import LIB

from .conftest import BUILD, run_firmware

native_only = pytest.mark.skipif(LIB is None, reason="the native counter is not built")

#: Images that boot only behind another (tests/api/test_multi_image.py runs the pair).
PARTS = {"boot_app"}
FIXTURES = sorted(p.stem for p in BUILD.glob("*.elf") if p.stem not in PARTS)

# Linked at 0x08000000; the source, for reading (arm-none-eabi-as, then ld -Ttext=0x08000000):
#   reset:  255 turns of an empty loop (precharged: no MMIO in the TLB yet)
#           enable DWT CYCCNT (refused to the precharged block: counted again); r0 = 1
#           read CYCCNT; cmp r0, #0; itt eq; moveq; moveq; read CYCCNT  -> delta at 0x20000000
#           read CYCCNT; cmp r0, #0; nop; nop; nop;       read CYCCNT  -> delta at 0x20000004
#           b call; call: cpsie i; bl callee      (callee: mov r0, lr; str r0 -> 0x20000008; bx lr)
#           SysTick LOAD=200, CTRL=7
#   wait:   cpsie i; ldr r0, 0x2000000c; cmp r0, #0; beq wait
#           semihosting SYS_EXIT
#   systick: stacked return address -> 0x2000000c; SysTick off; bx lr
VIEWS_IMAGE = bytes.fromhex(
    "0020002041000008000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000a3000008"
    "4ff00054ff27013ffdd1194b194a116841f0807111600121196001205d680028"
    "04bf11460a465e68761b26605d68002800bf00bf00bf5e68761b6660ffe762b6"
    "00f00cf80c4ac82151600721116062b6e0680028fbd018200849abbe7046a060"
    "70470698e060044a0021116070470000001000e0fced00e010e000e026000200")
FLASH = 0x0800_0000
WAIT_LOOP = range(FLASH + 0x8E, FLASH + 0x96)


def run_views(**machine_args: object) -> tuple[Machine, list[int], int]:
    m = Machine(board("nucleo-f303re"), **machine_args)
    m.load([(FLASH, VIEWS_IMAGE)])
    result = m.run(0.01)
    assert result.exit_code == 0, result
    words = [m.bus.read(0x2000_0000 + 4 * i, 4) for i in range(4)]
    return m, words, result.instructions


@native_only
@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_runs_the_same_with_and_without_precharging(name):
    kw = {"uart_input": b"hey\r", "input_at_s": 0.01, "presses": (("B1", 0.05, 0.06),)}
    # the hostile fixtures do the same thing for ever, and some slowly (a reset loop)
    limit = 0.01 if name.startswith("hostile_") else 0.2
    reference = run_firmware(name, limit, precharge=False, **kw)
    fast = run_firmware(name, limit, **kw)
    assert fast.machine.precharged_flash is not None
    assert fast.machine.state.pre.precharged > 0
    assert_same_run(fast, reference)


def assert_same_run(fast, reference) -> None:
    """The same output at the same virtual times, the same result and notes."""
    assert fast.timeline == reference.timeline
    assert fast.semihosting == reference.semihosting
    assert fast.result == reference.result
    assert fast.machine.notes == reference.machine.notes


@native_only
def test_precharged_counted_and_python_runs_agree():
    fast, words, count = run_views()
    assert fast.state.pre.precharged > 0 and fast.state.pre.denials > 0
    _, reference_words, reference_count = run_views(precharge=False)
    _, python_words, python_count = run_views(native=False)
    assert words == reference_words == python_words
    assert count == reference_count == python_count


@pytest.mark.parametrize("args", [{}, {"precharge": False}, {"native": False}])
def test_a_failed_it_condition_still_takes_its_cycle(args):
    _, (it_delta, control_delta, _, _), _ = run_views(**args)
    assert it_delta == control_delta > 0


@native_only
def test_code_counted_at_the_alias_still_sees_canonical_addresses():
    m, (_, _, lr, stacked_pc), _ = run_views()
    assert m.precharged_flash is not None
    assert FLASH <= lr < FLASH + 0x100 and lr & 1  # the return address of ``bl callee``
    assert stacked_pc in WAIT_LOOP  # SysTick interrupted the (counted) wait loop


@native_only
def test_an_image_linked_at_the_alias_runs_counted_throughout():
    image = bytearray(VIEWS_IMAGE)
    image[4:8] = (0x41).to_bytes(4, "little")  # reset vector at the alias
    image[60:64] = (0xA3).to_bytes(4, "little")  # SysTick too
    m = Machine(board("nucleo-f303re"))
    m.load([(FLASH, bytes(image))])
    result = m.run(0.01)
    assert result.exit_code == 0
    assert m.precharged_flash is None and m.state.pre.precharged == 0
    assert m.bus.read(0x2000_000C, 4) in range(0x8E, 0x96)  # its own addresses


@native_only
def test_a_loop_whose_returns_switched_views_is_counted_in_place():
    # speed_blt_poll's loop stays at the alias (it calls functions that read
    # peripherals), and its non-leaf callees return to canonical addresses: a switch
    # of view per return, ~2 per turn, until a counted region takes the loop in
    fast = run_firmware("speed_blt_poll", 0.3)
    reference = run_firmware("speed_blt_poll", 0.3, precharge=False)
    pre = fast.machine.state.pre
    assert fast.machine.precharge.regions or pre.suspended
    assert pre.to_alias + pre.to_canonical < 5_000  # ~100 000 before
    assert fast.timeline == reference.timeline and fast.result == reference.result


@native_only
@pytest.mark.parametrize("name", ["blink", "uart_irq", "fw_rtos", "fault_bits", "speed_blt_poll",
                                  "systick_1mhz", "hostile_irq_repend"])
def test_precharging_suspended_and_resumed_again_and_again_changes_nothing(name, monkeypatch):
    # suspend at every look, resume soon after: every hook change (the one hook over
    # everything, the regions', the TLB mode; the image's sites looked at wherever the
    # count hook runs) happens many times in the run, at whatever the firmware was doing
    from hwut.sim import precharge

    look = 200 if name in ("blink", "uart_irq") else 20_000  # these mostly sleep
    monkeypatch.setattr(precharge, "LOOK", look)
    monkeypatch.setattr(precharge, "SUSPEND_MIN", 3 * look // 2)
    monkeypatch.setattr(precharge, "SUSPEND_MAX", 3 * look // 2)
    monkeypatch.setattr(precharge, "PAYS_PRECHARGED", 0)
    kw = {"uart_input": b"hey\r", "input_at_s": 0.01, "presses": (("B1", 0.05, 0.06),)}
    limit = 0.01 if name.startswith("hostile_") else 0.1
    reference = run_firmware(name, limit, precharge=False, **kw)
    fast = run_firmware(name, limit, **kw)
    assert fast.machine.precharge.suspensions > 1
    assert_same_run(fast, reference)


@native_only
def test_site_hooks_go_only_where_their_code_runs_counted():
    # a code hook costs every counted instruction a look (the engine walks the list):
    # an unmask site is hooked at the alias, where its block runs counted, at its
    # canonical address too only inside a counted region or while precharging is
    # suspended
    m = Machine(board("nucleo-f303re"))
    m.load([(FLASH, VIEWS_IMAGE)])
    pre = m.precharge
    site = FLASH + 0x8E  # cpsie i at the top of the wait loop
    assert pre.views(site) == [site - FLASH]
    assert pre.views(site - FLASH) == [site - FLASH]
    assert pre.views(0x2000_0000) == [0x2000_0000]
    pre.regions = [(site - 0x10, site + 0x10, None)]
    assert pre.views(site) == [site, site - FLASH]
    pre.regions = []
    m.state.pre.suspended = 1
    assert pre.views(site) == [site, site - FLASH]
    assert pre.views(site - FLASH) == [site, site - FLASH]
    m.state.pre.suspended = 0
    # and the run is the one counted per instruction gives
    _, words, count = run_views()
    _, reference_words, reference_count = run_views(precharge=False)
    assert (words, count) == (reference_words, reference_count)
