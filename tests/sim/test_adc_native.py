"""The ADC's software-started single conversion taken in C (sim/native/adc.c,
``sim.adc_native``) against the Python model it stands in for
(``Machine(native_adc=False)``): the fixtures that read the ADC, and programs of
ADC accesses that hypothesis writes, run both ways to the same registers, values,
RAM, output and instruction count; and the state goes back to the model whenever
something C was not handed changes."""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unicorn import arm_const as A

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.machine import Machine
from hwut.sim.mmio_cache import available
from hwut.sim.peripherals.adc import Adc

from .conftest import BUILD, expected, run_firmware

pytestmark = pytest.mark.skipif(not available(), reason="the native module is not built")

ADC1, COMMON = 0x5000_0000, 0x5000_0300
ISR, IER, CR, CFGR, SMPR1, SQR1, DR = 0x00, 0x04, 0x08, 0x0C, 0x14, 0x30, 0x40
ADEN, ADDIS, ADSTART, ADSTP, ADVREGEN, ADCAL = 1, 2, 4, 0x10, 1 << 28, 1 << 31
REGISTERS = [getattr(A, f"UC_ARM_REG_R{i}") for i in range(13)] + [
    A.UC_ARM_REG_SP, A.UC_ARM_REG_LR, A.UC_ARM_REG_PC, A.UC_ARM_REG_XPSR]
MODES = [{}, {"precharge": False}]


def _adc_state(m: Machine) -> tuple:
    """The model's own state (taken back from C at the run's end)."""
    adc = m.peripherals["ADC1"]
    return dict(adc.values), adc._data, adc._due, adc._rank, adc._event is None


def _state(m: Machine) -> tuple:
    ram = bytes(m.uc.mem_read(0x2000_0000, 0x1_0000))
    return (tuple(m.uc.reg_read(r) for r in REGISTERS), m.counter.count, ram, _adc_state(m))


def _machine(image: list[tuple[int, bytes]], **args) -> Machine:
    m = Machine(board("nucleo-f303re"), **args)
    m.load(image)
    return m


def _fixture(name: str) -> list[tuple[int, bytes]]:
    return [(s.address, s.data) for s in load(BUILD / f"{name}.elf").segments]


@pytest.mark.parametrize("machine_args", MODES, ids=["precharged", "counted"])
def test_mbed_analogin_reads_are_the_models_stop_for_stop(machine_args):
    image = _fixture("speed_rtx_ticker")
    native, python = _machine(image, **machine_args), _machine(image, native_adc=False,
                                                               **machine_args)
    t, turn = 0.0, 0
    while t < 0.015:
        # odd stops: inside conversions, inside the EOC poll, between reads; and longer
        # runs, in which C starts conversions itself (each run's end takes the state back,
        # and the next access that reaches the model hands it over again)
        turn += 1
        t += 37e-6 if turn % 3 else 743e-6
        native.run(t)
        python.run(t)
        assert _state(native) == _state(python), f"at {t:.6f} s"
    assert native.native_adcs[0].conversions > 10 and not python.native_adcs


@pytest.mark.parametrize("machine_args", MODES, ids=["precharged", "counted"])
def test_mbed_pattern_output_and_timeline_are_the_models(monkeypatch, machine_args):
    started: list[str] = []
    start = Adc._start_conversion
    monkeypatch.setattr(Adc, "_start_conversion",
                        lambda self, at: (started.append(self.name), start(self, at))[1])
    native = run_firmware("speed_rtx_ticker", 0.32, **machine_args)
    in_python = len(started)
    python = run_firmware("speed_rtx_ticker", 0.32, native_adc=False, **machine_args)
    assert native.uart == expected("speed_rtx_ticker")
    assert native.timeline == python.timeline
    assert (native.result.instructions, native.result.slept_cycles) == \
        (python.result.instructions, python.result.slept_cycles)
    assert _state(native.machine) == _state(python.machine)
    # ~1530 conversions by 0.32 s: all but the first started in C, each DR read there
    in_c = native.machine.native_adcs[0].conversions
    assert in_python <= 2 and in_c + in_python == len(started) - in_python > 1500
    assert native.machine.read_cache.native_hits >= 2 * in_c


def test_capture_adc_converts_in_c_as_in_python():
    outputs = []
    for native_adc in (True, False):
        out = bytearray()
        m = Machine(board("nucleo-f303re"), uart_out=lambda name, data, out=out: out.extend(data),
                    native_adc=native_adc)
        m.load(_fixture("capture_adc"))
        for i, t in enumerate([0.010, 0.011, 0.0125, 0.0135, 0.015]):
            m.drive_pin("GPIOA", 15, 1 - i % 2, t)
        r = m.run(0.1)
        outputs.append((bytes(out), r.exit_code, r.instructions, _adc_state(m)))
        if native_adc:
            assert m.native_adcs[0].conversions == 1   # ADSTART, EOC and DR all in C
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == expected("capture_adc")


def test_without_the_native_handler_every_access_reaches_the_model():
    m = _machine(_fixture("speed_rtx_ticker"), native_adc=False)
    m.run(0.01)
    table = m.read_cache._cache   # no native handler covers the ADC (other peripherals' may)
    assert m.native_adcs == [] and not any(
        table.natives[i].lo <= ADC1 < table.natives[i].hi for i in range(table.n_natives))
    assert m.peripherals["ADC1"].native_link is None


# -- what C was not handed: the model takes the state back ------------------------------
def _mbed_running() -> Machine:
    m = _machine(_fixture("speed_rtx_ticker"))
    m.run(0.004)
    return m


def test_a_new_input_value_is_converted_from_the_next_conversion_on():
    m = _mbed_running()
    adc = m.peripherals["ADC1"]
    adc.set_input(1, 1000)
    m.run(0.006)
    assert adc._data == 1000
    assert m.native_adcs[0].handed or m.native_adcs[0].conversions > 0


def test_host_accesses_take_the_state_back_and_the_next_firmware_access_hands_it_again():
    m = _mbed_running()
    link, adc = m.native_adcs[0], m.peripherals["ADC1"]
    m.run(0.0041)
    assert not link.handed                       # the run's end took it back
    before = link.conversions
    m.run(0.005)
    assert link.conversions > before             # handed again at the next access
    assert adc.read(CR, 4) & ADEN
    assert not link.handed


def test_clock_and_common_changes_take_the_state_back():
    m = _mbed_running()
    link = m.native_adcs[0]
    link.offer()
    assert link.handed
    m.clocks.update(HCLK=36_000_000)
    assert not link.handed
    link.offer()
    assert link.handed
    m.peripherals["ADC12_COMMON"].write(0x08, 4, 0)
    assert not link.handed


def test_an_enabled_interrupt_keeps_the_state_in_python():
    m = _mbed_running()
    link, adc = m.native_adcs[0], m.peripherals["ADC1"]
    adc.write(IER, 4, 0x4)
    link.offer()
    assert not link.handed
    adc.write(IER, 4, 0)
    link.offer()
    assert link.handed


# -- programs of ADC accesses, both ways ---------------------------------------------
def _movw_movt(reg: int, value: int) -> bytes:
    def half(op: int, imm: int) -> bytes:
        first = op | ((imm >> 11) & 1) << 10 | (imm >> 12) & 0xF
        second = ((imm >> 8) & 7) << 12 | reg << 8 | imm & 0xFF
        return struct.pack("<HH", first, second)
    return half(0xF240, value & 0xFFFF) + half(0xF2C0, value >> 16)


STORE_R1, STORE_R3, NEXT = 0x6011, 0x6013, 0x3204   # str r1,[r2]; str r3,[r2]; adds r2,#4
LOADS = {4: 0x6801, 2: 0x8801, 1: 0x7801}          # ldr/ldrh/ldrb r1,[r0]


def _op_code(op: tuple) -> bytes:
    kind = op[0]
    if kind == "write":
        _, address, value = op
        return _movw_movt(0, address) + _movw_movt(1, value) + struct.pack("<H", 0x6001)
    if kind == "read":
        _, address, size = op
        return _movw_movt(0, address) + struct.pack("<HHH", LOADS[size], STORE_R1, NEXT)
    if kind == "start":   # Mbed: CR |= ADSTART
        return _movw_movt(0, ADC1 + CR) + struct.pack("<HHHH", 0x6801, 0x2304, 0x4319, 0x6001)
    if kind == "poll":    # wait for EOC, at most op[1] turns; keep the turns left
        return _movw_movt(0, ADC1 + ISR) + struct.pack(
            "<HHHHHHHH", 0x2300 | op[1], 0x6801, 0x0749, 0xD401, 0x3B01, 0xD1FA, STORE_R3, NEXT)
    return struct.pack("<H", 0xBF00) * op[1]   # nops


def _program(ops: list[tuple]) -> list[tuple[int, bytes]]:
    code = _movw_movt(2, 0x2000_0000)
    code += _op_code(("write", ADC1 + CR, ADVREGEN)) + _op_code(("write", ADC1 + CR, ADEN))
    code += _op_code(("write", ADC1 + SQR1, 1 << 6))   # channel 1: the board's A0, 2048
    code += b"".join(_op_code(op) for op in ops) + struct.pack("<H", 0xE7FE)   # b .
    vectors = struct.pack("<4I", 0x2001_0000, 0x0800_0101, 0x0800_0081, 0x0800_0081)
    return [(0x0800_0000, vectors), (0x0800_0080, struct.pack("<H", 0xE7FE)),
            (0x0800_0100, code)]


_cr = st.sampled_from([ADEN | ADSTART, ADSTART, ADEN, ADVREGEN | ADEN | ADSTART, ADSTP,
                       ADDIS, ADCAL, 0])
_write = st.one_of(
    st.tuples(st.just(ADC1 + CR), _cr),
    st.tuples(st.just(ADC1 + ISR), st.integers(0, 0x1F)),
    st.tuples(st.just(ADC1 + IER), st.sampled_from([0, 0, 0x4])),
    st.tuples(st.just(ADC1 + CFGR), st.sampled_from([0, 1 << 12, 1 << 13, 1 << 5, 2 << 3,
                                                      1 << 12 | 1 << 5])),
    st.tuples(st.just(ADC1 + SQR1), st.sampled_from([1 << 6, 18 << 6, 2 << 6, 1 | 1 << 6])),
    st.tuples(st.just(ADC1 + SMPR1), st.sampled_from([0, 1 << 3, 4 << 3])),
    st.tuples(st.just(COMMON + 0x08), st.sampled_from([0, 1 << 16, 2 << 16])),
).map(lambda w: ("write", *w))
_read = st.one_of(
    st.tuples(st.sampled_from([ISR, CR, DR, DR, CFGR]), st.just(4)),
    st.tuples(st.sampled_from([ISR, DR]), st.sampled_from([1, 2])),
).map(lambda r: ("read", ADC1 + r[0], r[1]))
_op = st.one_of(_write, _read, st.just(("start",)), st.just(("start",)),
                st.tuples(st.just("poll"), st.integers(1, 40)),
                st.tuples(st.just("nops"), st.integers(1, 30)))
#: A conversion started, and DR, ISR or CR read or written around its end.
_around_the_end = st.tuples(
    st.integers(0, 24), st.one_of(_read, _write, st.just(("start",)))).map(
    lambda t: [("start",)] + ([("nops", t[0])] if t[0] else []) + [t[1]])
_ops = st.lists(st.one_of(_op.map(lambda op: [op]), _around_the_end), min_size=1,
                max_size=20).map(lambda chunks: [op for chunk in chunks for op in chunk])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops, mode=st.sampled_from([0, 1]), split=st.integers(20, 3000))
def test_access_programs_read_the_same_both_ways(ops, mode, split):
    _both_ways(ops, mode, [split / 8e6, 0.001])   # a stop in the program (8 MHz), its end


def _both_ways(ops: list[tuple], mode: int, ends: list[float]) -> None:
    image = _program(ops)
    states = []
    for native_adc in (True, False):
        m = _machine(image, native_adc=native_adc, **MODES[mode])
        for end in ends:
            m.run(end)
        states.append(_state(m))
    assert states[0] == states[1]


@pytest.mark.parametrize("mode", [0, 1], ids=["precharged", "counted"])
def test_every_cycle_around_a_conversions_end_reads_the_same_both_ways(mode):
    """A conversion takes 14 cycles here (8 MHz, SMP 1.5 + 12.5 ADC clocks): DR, ISR and
    CR read, and ADSTART written again, at each cycle from its start to past its end."""
    for nops in range(0, 16):
        for last in (("read", ADC1 + DR, 4), ("read", ADC1 + ISR, 4), ("start",),
                     ("read", ADC1 + CR, 4), ("write", ADC1 + ISR, 0x1F)):
            ops = [("start",), ("nops", nops), last, ("read", ADC1 + DR, 4)] if nops else \
                [("start",), last, ("read", ADC1 + DR, 4)]
            _both_ways(ops + [("start",), ("read", ADC1 + ISR, 4)], mode, [0.001])


@pytest.mark.parametrize("ovrmod", [0, 1 << 12])
def test_a_conversion_over_an_unread_eoc_keeps_or_overwrites_dr_both_ways(ovrmod):
    """The second conversion ends with EOC still set: OVR, and DR keeps the first's data
    unless OVRMOD (the alignment changed in between, so that the two differ)."""
    ops = [("write", ADC1 + CFGR, ovrmod), ("start",), ("nops", 20),
           ("write", ADC1 + CFGR, ovrmod | 1 << 5), ("start",), ("nops", 20),
           ("read", ADC1 + ISR, 4), ("read", ADC1 + DR, 4)]
    for mode in (0, 1):
        _both_ways(ops, mode, [0.001])
    m = _machine(_program(ops))
    m.run(0.001)
    isr, dr = struct.unpack("<2I", bytes(m.uc.mem_read(0x2000_0000, 8)))
    assert isr & 0x10 and dr == (2048 << 4 if ovrmod else 2048)


@pytest.mark.parametrize("mode", [0, 1], ids=["precharged", "counted"])
def test_a_sequence_of_channels_reads_the_same_both_ways_at_every_cycle(mode):
    """Three ranks (channels 1, 18 and 2; 14, 14 and 20 cycles: SMP2 = 7.5 ADC clocks),
    one ADSTART: EOC after each, EOS and ADSTART's clear after the last; DR and ISR
    read at each cycle from the start to past the sequence's end."""
    setup = [("write", ADC1 + SMPR1, 2 << 6),
             ("write", ADC1 + SQR1, 2 | 1 << 6 | 18 << 12 | 2 << 18)]
    for nops in range(0, 52, 3):
        for last in (("read", ADC1 + DR, 4), ("read", ADC1 + ISR, 4), ("read", ADC1 + CR, 4)):
            ops = setup + [("start",)] + ([("nops", nops)] if nops else []) + [
                last, ("poll", 30), ("read", ADC1 + DR, 4), ("read", ADC1 + ISR, 4),
                ("poll", 30), ("read", ADC1 + DR, 4), ("read", ADC1 + CR, 4)]
            _both_ways(ops, mode, [0.001])
    m = _machine(_program(setup + [("start",), ("nops", 60), ("read", ADC1 + ISR, 4),
                                   ("read", ADC1 + DR, 4)]))
    m.run(0.001)
    assert m.native_adcs[0].conversions == 1
    isr, dr = struct.unpack("<2I", bytes(m.uc.mem_read(0x2000_0000, 8)))
    # EOSMP, EOC, EOS and OVR; DR kept rank 1's data (A0's 2048): ranks 2 and 3 ended
    # over an unread EOC without OVRMOD
    assert isr & 0x1E == 0x1E and dr == 2048
