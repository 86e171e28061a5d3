"""Every fault status bit the core can set, checked bit by bit against the manual.

The fixture fault_bits provokes one fault per case (one case per reset) and its
handler prints CFSR, HFSR, BFAR, MMFAR, the EXC_RETURN it was entered with and
the stacked PC. What each case must give is written here from the ARMv7-M
Architecture Reference Manual (DDI 0403E: B1.5.8 ExceptionReturn, B1.5.14 fault
behaviour, B3.1 the default memory map, B3.2.15 CFSR, B3.2.16 HFSR) and ST's
PM0214 (4.4.11-4.4.14), not taken from the simulator's output: the bit
positions are the manual's, named, and the expected output file must agree
with both.
"""
from __future__ import annotations

import pytest

from hwut.sim.core import exceptions as X

from .conftest import expected, run_firmware

# -- the manual's bit positions (B3.2.15: MMFSR = CFSR[7:0], BFSR = CFSR[15:8],
# UFSR = CFSR[31:16]; B3.2.16 HFSR) ---------------------------------------------------
MMFSR = {"IACCVIOL": 0, "DACCVIOL": 1, "MUNSTKERR": 3, "MSTKERR": 4, "MLSPERR": 5,
         "MMARVALID": 7}
BFSR = {"IBUSERR": 0, "PRECISERR": 1, "IMPRECISERR": 2, "UNSTKERR": 3, "STKERR": 4,
        "LSPERR": 5, "BFARVALID": 7}
UFSR = {"UNDEFINSTR": 0, "INVSTATE": 1, "INVPC": 2, "NOCP": 3, "UNALIGNED": 8,
        "DIVBYZERO": 9}
HFSR = {"VECTTBL": 1, "FORCED": 30, "DEBUGEVT": 31}


def cfsr(*names: str) -> int:
    value = 0
    for n in names:
        if n in MMFSR:
            value |= 1 << MMFSR[n]
        elif n in BFSR:
            value |= 1 << (8 + BFSR[n])
        else:
            value |= 1 << (16 + UFSR[n])
    return value


def hfsr(*names: str) -> int:
    return sum(1 << HFSR[n] for n in names)


#: EXC_RETURN values (B1.5.8, table B1-8): basic frame, to Handler / to Thread on MSP / PSP.
HANDLER_MSP, THREAD_MSP, THREAD_PSP = 0xFFFF_FFF1, 0xFFFF_FFF9, 0xFFFF_FFFD
#: case -> (handler, CFSR bits, HFSR bits, BFAR if BFARVALID, LR, stacked PC)
#: The stacked PC is the faulting instruction for every synchronous fault (B1.5.6,
#: ReturnAddress), the address that could not be fetched for IBUSERR/IACCVIOL and
#: INVSTATE, "-" where the frame is in unmapped memory or undefined (an interrupt).
MANUAL: dict[str, tuple[str, int, int, int | None, int, str]] = {
    # A7.7.194 UDF: UNDEFINED -> UsageFault UNDEFINSTR
    "UNDEFINSTR": ("UsageFault", cfsr("UNDEFINSTR"), 0, None, THREAD_MSP, "udf"),
    # A2.3.1: BX to an even address clears EPSR.T; the next instruction -> INVSTATE
    "INVSTATE": ("UsageFault", cfsr("INVSTATE"), 0, None, THREAD_MSP, "even_target"),
    # B1.5.6 ExceptionTaken: EPSR.T = vector[0]; PendSV's vector is even, so its first
    # instruction -> INVSTATE, taken from Handler mode (priority 0 beats PendSV's 0x80)
    "INVSTATE vector": ("UsageFault", cfsr("INVSTATE"), 0, None, HANDLER_MSP, "pendsv"),
    # B1.5.8: EXC_RETURN[3:0] = 0b0011 is no return -> INVPC, tail-chained from the
    # handler: LR = 0xF0000000 | EXC_RETURN[27:0], the SVC's frame (PC after the SVC)
    "INVPC": ("UsageFault", cfsr("INVPC"), 0, None, 0xFFFF_FFF3, "after_svc"),
    # B3.2.20 CPACR.CP10 = 0b00: any FP instruction -> NOCP
    "NOCP": ("UsageFault", cfsr("NOCP"), 0, None, THREAD_MSP, "vadd"),
    # CP10 = 0b01: privileged access only; the same VADD unprivileged (CONTROL.nPRIV)
    # -> NOCP (the MSR to CONTROL cleared FPCA: a basic frame)
    "NOCP unprivileged": ("UsageFault", cfsr("NOCP"), 0, None, THREAD_MSP, "vadd"),
    # A3.2.1: unaligned LDR with CCR.UNALIGN_TRP -> UNALIGNED
    "UNALIGNED": ("UsageFault", cfsr("UNALIGNED"), 0, None, THREAD_MSP, "ldr"),
    # A7.7.127 SDIV with CCR.DIV_0_TRP, divisor 0 -> DIVBYZERO
    "DIVBYZERO": ("UsageFault", cfsr("DIVBYZERO"), 0, None, THREAD_MSP, "sdiv"),
    # B3.2.15: instruction bus error: IBUSERR, BFAR not written
    "IBUSERR": ("BusFault", cfsr("IBUSERR"), 0, None, THREAD_MSP, "0x60000000"),
    # precise data bus error: PRECISERR and BFARVALID, BFAR = the address
    "PRECISERR": ("BusFault", cfsr("PRECISERR", "BFARVALID"), 0, 0x6000_0000, THREAD_MSP,
                  "ldr"),
    # a store through the write buffer (default map, ACTLR.DISDEFWBUF clear, Cortex-M4
    # TRM 4.3.1): IMPRECISERR, BFAR not written, the stacked PC not the store's
    "IMPRECISERR": ("BusFault", cfsr("IMPRECISERR"), 0, None, THREAD_MSP, "-"),
    # asynchronous: with PRIMASK set it waits, pending (SHCSR.BUSFAULTPENDED), and is
    # taken when the mask goes, not escalated (the fixture prints "pended, " first; the
    # CPS that sets the mask comes after a reset from unprivileged code's fault)
    "IMPRECISERR masked": ("BusFault", cfsr("IMPRECISERR"), 0, None, THREAD_MSP, "-"),
    # BusFault disabled: HardFault, FORCED
    "IMPRECISERR disabled": ("HardFault", cfsr("IMPRECISERR"), hfsr("FORCED"), None,
                             THREAD_MSP, "-"),
    # ACTLR.DISDEFWBUF set: no write buffer, the same store is precise, BFAR valid
    "PRECISERR store DISDEFWBUF": ("BusFault", cfsr("PRECISERR", "BFARVALID"), 0, 0x6000_0000,
                                   THREAD_MSP, "str"),
    # stacking error: STKERR, SP adjusted, BFAR not written; the BusFault (priority 0)
    # arrives late on the SVC's entry (SVCall priority 0x80): LR of that entry
    "STKERR": ("BusFault", cfsr("STKERR"), 0, None, THREAD_PSP, "-"),
    # unstacking error: UNSTKERR, chained: LR = the EXC_RETURN of the failed return
    "UNSTKERR": ("BusFault", cfsr("UNSTKERR"), 0, None, THREAD_PSP, "-"),
    # B3.1 table B3-1: Peripheral, System and Device regions are Execute Never; a
    # fetch there is IACCVIOL with or without an MPU; MMFAR not written (no MMARVALID)
    "IACCVIOL peripheral": ("MemManage", cfsr("IACCVIOL"), 0, None, THREAD_MSP, "0x48000000"),
    "IACCVIOL system": ("MemManage", cfsr("IACCVIOL"), 0, None, THREAD_MSP, "0xe0001000"),
    "IACCVIOL device": ("MemManage", cfsr("IACCVIOL"), 0, None, THREAD_MSP, "0xa0000000"),
    # B1.5.8: EXC_RETURN is a return only in Handler mode; in Thread mode a branch
    # to 0xFFFFFFF9 fetches from 0xFFFFFFF8, System region, Execute Never
    "IACCVIOL thread EXC_RETURN": ("MemManage", cfsr("IACCVIOL"), 0, None, THREAD_MSP,
                                   "0xfffffff8"),
    # C1.7.1 / B3.2.16: BKPT with debug disabled -> HardFault, HFSR.DEBUGEVT
    "DEBUGEVT": ("HardFault", 0, hfsr("DEBUGEVT"), None, THREAD_MSP, "bkpt"),
    # B1.5.14: a configurable fault disabled in SHCSR escalates: FORCED, CFSR kept
    "FORCED disabled": ("HardFault", cfsr("UNDEFINSTR"), hfsr("FORCED"), None, THREAD_MSP,
                        "udf"),
    # ... or one that cannot preempt (PRIMASK: execution priority 0)
    "FORCED priority": ("HardFault", cfsr("UNDEFINSTR"), hfsr("FORCED"), None, THREAD_MSP,
                        "udf"),
    "FORCED BusFault": ("HardFault", cfsr("PRECISERR", "BFARVALID"), hfsr("FORCED"),
                        0x6000_0000, THREAD_MSP, "ldr"),
    # B1.5.14: a bus error on the vector read -> HardFault, HFSR.VECTTBL
    "VECTTBL": ("HardFault", 0, hfsr("VECTTBL"), None, THREAD_MSP, "-"),
}
#: The bits no case sets, and why (the table in ``sim.core.exceptions.FAULT_BITS``).
NEVER = {"DACCVIOL", "MUNSTKERR", "MSTKERR", "MLSPERR", "MMARVALID", "LSPERR"}


def parse(uart: bytes) -> dict[str, dict[str, str]]:
    cases = {}
    for line in uart.decode().splitlines():
        if ": " not in line or "=" not in line:
            continue
        name, rest = line.split(": ", 1)
        words = rest.split()
        first = next(i for i, w in enumerate(words) if "=" in w)
        cases[name] = {"handler": words[first - 1], "before": " ".join(words[:first - 1]),
                       **dict(w.split("=", 1) for w in words[first:])}
    return cases


@pytest.mark.parametrize("args", [{}, {"precharge": False}, {"native": False},
                                  {"timing": "block"}])
def test_every_fault_bit_as_the_manual_gives_it(args):
    r = run_firmware("fault_bits", 0.5, **args)
    assert r.uart == expected("fault_bits")
    assert r.uart.startswith(b"fault_bits: start\r\n") and r.uart.endswith(b"fault_bits: done\r\n")
    assert b"no fault" not in r.uart
    got = parse(r.uart)
    assert list(got) == list(MANUAL)                      # every case, in order, once
    for name, (handler, cfsr_bits, hfsr_bits, bfar, lr, pc) in MANUAL.items():
        case = got[name]
        assert case["handler"] == handler, name
        assert case["before"] == ("pended," if name == "IMPRECISERR masked" else ""), name
        assert int(case["CFSR"], 16) == cfsr_bits, name   # exactly these bits, no others
        assert int(case["HFSR"], 16) == hfsr_bits, name
        if bfar is not None:
            assert int(case["BFAR"], 16) == bfar, name
        assert int(case["LR"], 16) == lr, name
        assert case["PC"] == pc, name
        assert not int(case["CFSR"], 16) & cfsr(*NEVER), name


def test_every_bit_the_table_calls_modelled_has_a_case():
    """``FAULT_BITS`` (the table in the exception model) and the fixture agree: a bit
    marked modelled is set by some case, a bit marked not modelled by none."""
    set_by_cases = 0
    for _, cfsr_bits, hfsr_bits, *_ in MANUAL.values():
        set_by_cases |= cfsr_bits | hfsr_bits << 32
    for name, (register, modelled, _why) in X.FAULT_BITS.items():
        table = {"MMFSR": MMFSR, "BFSR": BFSR, "UFSR": UFSR}.get(register)
        bit = cfsr(name) if table else hfsr(name) << 32
        assert bool(set_by_cases & bit) == modelled, name
    assert set(X.FAULT_BITS) == set(MMFSR) | set(BFSR) | set(UFSR) | set(HFSR)


def test_each_fault_is_reported_in_the_run_result():
    """What the backend puts in the infrastructure log: one line per fault, named for
    the handler that took it and saying why."""
    faults = run_firmware("fault_bits", 0.5).result.faults
    for line in ("UsageFault: execution in ARM state (EPSR.T clear)",
                 "UsageFault: bad exception return 0xfffffff3 from SVCall",
                 "UsageFault: floating-point instruction at",
                 "BusFault: stacking for SVCall failed: frame at 0x200100e0",
                 "BusFault: unstacking for the return from SVCall failed: PSP 0x20010100",
                 "MemManage: instruction fetch from 0x48000000 (execute never)",
                 "MemManage: instruction fetch from 0xfffffff8 (execute never)",
                 "HardFault: BKPT at",
                 "HardFault: vector table read for IRQ16 at 0x10004000 failed"):
        assert any(f.startswith(line) for f in faults), line


def test_floating_point_sites_are_the_coprocessor_10_and_11_encodings():
    """The NOCP trap's sites (``sim.traps``): every FP encoding, whatever its form, and
    nothing of another coprocessor or outside the coprocessor space."""
    from hwut.sim import thumb, traps
    fp = {  # A6.4-A6.6: each a coprocessor 10/11 instruction
        "vadd.f32 s0, s0, s1": "30ee200a", "vldr s0, [pc, #4]": "9fed010a",
        "vstr d0, [r0]": "80ed000b", "vpush {s16-s31}": "2ded108a",
        "vmov r0, s0": "10ee100a", "vmrs APSR_nzcv, fpscr": "f1ee10fa",
        "vmov r0, r1, d0": "51ec100b", "vcvt.f32.s32 s0, s0": "b8eec00a",
    }
    other = {"mcr p15, 0, r0, c7, c5, 4": "07ee950f", "ldr.w r0, [r1]": "d1f80000",
             "udiv r0, r1, r2": "b1fbf2f0", "sdiv": "92fbf1f0"}
    for name, code in fp.items():
        raw = bytes.fromhex(code)
        assert thumb.is_floating_point(raw[0] | raw[1] << 8, raw[2] | raw[3] << 8), name
    for name, code in other.items():
        raw = bytes.fromhex(code)
        assert not thumb.is_floating_point(raw[0] | raw[1] << 8, raw[2] | raw[3] << 8), name
    image = b"".join(bytes.fromhex(c) for c in (*fp.values(), *other.values()))
    assert traps.floating_point_sites([(0x0800_0000, image)]) == [
        0x0800_0000 + 4 * i for i in range(len(fp))]
    # at an odd offset the same bytes are no instruction start
    assert traps.floating_point_sites([(0x0800_0000, b"\x00" + image[:4])]) == []
