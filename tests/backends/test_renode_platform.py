"""The Renode platform files describe the same board as our own model (sim/soc, sim/boards).

Both are data about one chip; this keeps them from drifting apart and keeps the
.repl files within the format's rules (four-space indents, ``using`` first).
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from hwut.backends.renode import PLATFORMS, RenodeBackend, console_of, platform_dir
from hwut.sim.boards import BOARDS
from hwut.sim.soc.stm32f303 import FLASH_SIZE_REGISTER, STM32F303RE

SOC = platform_dir() / "stm32f303re.repl"
BOARD = platform_dir() / PLATFORMS["nucleo-f303re"]
_ENTRY = re.compile(r"^(?P<name>\w+):(?P<rest>.*)$")


def entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Entry name -> (the head after the colon, its indented attribute lines)."""
    found: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        match = _ENTRY.match(line)
        if match:
            current = match.group("name")
            head, attrs = found.get(current, ("", []))
            found[current] = (head or match.group("rest").strip(), attrs)
        elif line.startswith(" ") and current is not None:
            found[current][1].append(line.strip())
        else:
            current = None
    return found


def address(head: str) -> int:
    match = re.search(r"@\s*(?:sysbus\s+)?<?\s*(0x[0-9A-Fa-f]+)", head)
    assert match, head
    return int(match.group(1), 16)


def irqs(attrs: list[str], output: str = "IRQ") -> list[int]:
    """NVIC lines an entry's named output drives (``IRQ -> nvic@37``)."""
    return [int(n) for a in attrs for n in re.findall(rf"^{output}\s*->\s*nvic@(\d+)$", a)]


#: Renode models with more than one GPIO output: a bare ``-> x@n`` on them is Renode's
#: "Error E15: Ambiguous choice of default interrupt" (seen on Renode 1.15.3).
MULTI_OUTPUT = ("UART.STM32F7_USART",)


SOC_ENTRIES = entries(SOC)


@pytest.mark.parametrize("path", [SOC, BOARD])
def test_indentation_follows_the_platform_format(path):
    in_script = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if "'''" in line:
            in_script = line.count("'''") == 1 and not in_script
            continue
        if in_script:
            continue
        assert "\t" not in line, f"{path.name}:{number}: tab"
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 4 == 0, f"{path.name}:{number}: indent {indent} is not a multiple of 4"


@pytest.mark.parametrize("path", [SOC, BOARD])
def test_scripts_hold_no_double_slash(path):
    """Renode's .repl reader takes a double slash for a comment even inside a script
    (seen on 1.15.3: "Error E00: Syntax error"); IronPython 2's ``/`` floors whole
    numbers already."""
    in_script = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if "'''" in line:
            in_script = line.count("'''") == 1 and not in_script
            continue
        assert not (in_script and "//" in line), f"{path.name}:{number}: {line.strip()}"


def test_the_board_uses_the_soc_file_first():
    lines = [ln for ln in BOARD.read_text().splitlines()
             if ln.strip() and not ln.startswith("//")]
    assert lines[0] == 'using "./stm32f303re.repl"'


def test_core_matches_our_model():
    head, attrs = SOC_ENTRIES["cpu"]
    assert "CPU.CortexM" in head and f'cpuType: "{STM32F303RE.cpu}"' in attrs
    head, attrs = SOC_ENTRIES["nvic"]
    assert address(head) == 0xE000E000
    mask = int(next(a for a in attrs if a.startswith("priorityMask")).split(":")[1], 16)
    assert mask == (0xFF << (8 - STM32F303RE.priority_bits)) & 0xFF
    assert "systickFrequency: 8000000" in attrs  # HSI at reset; rcc follows the set-up


def test_memories_match_our_model():
    memories = {m.name: m for m in STM32F303RE.memories}
    _, flash_attrs = SOC_ENTRIES["flash"]
    text = SOC.read_text()
    assert re.search(r"flash: Memory\.MappedMemory @ \{\s*sysbus 0x08000000;\s*sysbus 0x0\s*\}",
                     text)
    assert f"size: 0x{memories['flash'].size:X}" in flash_attrs
    for repl, ours in (("sram", "sram"), ("ccmram", "ccmram")):
        head, attrs = SOC_ENTRIES[repl]
        assert address(head) == memories[ours].base
        assert f"size: 0x{memories[ours].size:X}" in attrs


@pytest.mark.parametrize("spec", [p for p in STM32F303RE.peripherals
                                  if p.name.startswith(("USART", "UART", "GPIO", "RCC", "EXTI",
                                                        "SYSCFG"))],
                         ids=lambda p: p.name)
def test_peripherals_sit_where_our_model_puts_them(spec):
    name = {"RCC": "rcc", "EXTI": "exti", "SYSCFG": "syscfg"}.get(spec.name)
    if name is None and spec.name.startswith("GPIO"):
        name = f"gpioPort{spec.name[-1]}"
    name = name or spec.name.lower()
    head, attrs = SOC_ENTRIES[name]
    assert address(head) == spec.base
    if spec.name.startswith(("USART", "UART")):
        assert "UART.STM32F7_USART" in head
        assert irqs(attrs) == [spec.irqs["irq"]]
        assert any(a.startswith("frequency:") for a in attrs)


@pytest.mark.parametrize("name", sorted(n for n, (head, _) in SOC_ENTRIES.items()
                                        if head.startswith(MULTI_OUTPUT)))
def test_every_connection_of_a_multi_output_model_names_its_output(name):
    _, attrs = SOC_ENTRIES[name]
    connections = [a for a in attrs if "->" in a]
    assert connections and all(re.match(r"^\w+\s*->", a) for a in connections), connections


def test_usart_receive_dma_requests_reach_the_channels_of_our_model():
    """RM0316 table 78, as in sim/soc: USART1/2/3 RX on DMA1 channels 5/6/3."""
    from hwut.sim.soc.stm32f303 import DMA_REQUESTS
    for usart in ("USART1", "USART2", "USART3"):
        dma, channel = DMA_REQUESTS[(usart, "rx")]
        _, attrs = SOC_ENTRIES[usart.lower()]
        assert f"ReceiveDmaRequest -> {dma.lower()}@{channel}" in attrs


@pytest.mark.parametrize("dma", ["DMA1", "DMA2"])
def test_dma_channels_reach_the_irqs_of_our_model(dma):
    spec = next(p for p in STM32F303RE.peripherals if p.name == dma)
    head, attrs = SOC_ENTRIES[dma.lower()]
    assert head == f"DMA.STM32G0DMA @ sysbus 0x{spec.base:08X}"
    channels = spec.irqs["irqs"]
    assert f"numberOfChannels: {len(channels)}" in attrs
    first, last = min(channels.values()), max(channels.values())
    assert f"[0-{len(channels) - 1}] -> nvic@[{first}-{last}]" in attrs
    assert list(channels.values()) == list(range(first, last + 1))


@pytest.mark.parametrize("name,model", [("pwr", "PWR"), ("flashInterface", "FLASH"),
                                        ("dwt", "DWT"), ("dbgmcu", "DBGMCU"), ("crc", "CRC")])
def test_what_firmware_commonly_touches_is_mapped_where_our_model_has_it(name, model):
    head, _ = SOC_ENTRIES[name]
    assert address(head) == next(p.base for p in STM32F303RE.peripherals if p.name == model)


def test_timers_sit_on_the_irqs_of_our_model():
    for spec in STM32F303RE.peripherals:
        entry = f"timer{spec.name[3:]}" if spec.name.startswith("TIM") else None
        if entry not in SOC_ENTRIES:
            continue
        head, attrs = SOC_ENTRIES[entry]
        assert address(head) == spec.base and "Timers.STM32_Timer" in head
        assert [int(n) for a in attrs for n in re.findall(r"^->\s*nvic@(\d+)$", a)] == \
            [spec.irqs["irq"]], entry


def test_semihosting_uart_is_the_one_the_backend_connects():
    from hwut.backends.renode import SEMIHOSTING_UART
    head, _ = SOC_ENTRIES[SEMIHOSTING_UART.rsplit(".", 1)[1]]
    assert head == "UART.SemihostingUart @ cpu" and SEMIHOSTING_UART == "sysbus.cpu.semihosting"


def test_exti_lines_reach_the_irqs_of_our_model():
    _, attrs = SOC_ENTRIES["exti"]
    ours = set(next(p for p in STM32F303RE.peripherals if p.name == "EXTI").irqs["irqs"])
    wired = {int(n) for a in attrs for n in re.findall(r"nvic@\[?([\d, -]+)", a)
             for n in re.split(r"[ ,]+", n.strip()) if n and "-" not in n}
    wired |= {n for a in attrs for lo, hi in re.findall(r"nvic@\[(\d+)-(\d+)\]", a)
              for n in range(int(lo), int(hi) + 1)}
    wired |= {23, 40} if {"nvicInput23", "nvicInput40"} <= SOC_ENTRIES.keys() else set()
    assert wired <= ours
    assert {6, 7, 8, 9, 10, 23, 40} <= wired


def test_board_wiring_matches_the_board_spec():
    spec = BOARDS["nucleo-f303re"]
    board = entries(BOARD)
    assert console_of(BOARD) == f"sysbus.{spec.console.lower()}"
    for led in spec.leds:
        head, _ = board[led.name]
        port = f"gpioPort{led.port[-1]}"
        assert head == f"Miscellaneous.LED @ {port} {led.pin}"
        assert f"{led.pin} -> {led.name}@0" in board[port][1]
    for button in spec.buttons:
        head, attrs = board[button.name]
        port = f"gpioPort{button.port[-1]}"
        assert head == f"Miscellaneous.Button @ {port} {button.pin}"
        assert f"-> {port}@{button.pin}" in attrs
        assert ("invert: true" in attrs) == (button.idle_level == 1)


def _repl_memories() -> dict[str, tuple[tuple[int, ...], int]]:
    """Memory entries of the SoC file: name -> (addresses, size)."""
    text = SOC.read_text()
    found = {}
    for name in ("flash", "sram", "ccmram", "systemMemory"):
        head, attrs = SOC_ENTRIES[name]
        block = re.search(rf"^{name}: Memory\.\w+ @ (\{{[^}}]*\}}|sysbus \w+)", text, re.MULTILINE)
        assert block, name
        addresses = tuple(int(a, 16) for a in re.findall(r"sysbus (0x[0-9A-Fa-f]+)",
                                                        block.group(1)))
        size = int(next(a for a in attrs if a.startswith("size:")).split(":")[1], 16)
        found[name] = (addresses, size)
    return found


def test_what_the_service_checks_images_against_is_what_renode_maps():
    """The renode backend's BoardInfo (from the sim's specs) is the platform file's map:
    an image accepted at submit loads in Renode."""
    info = RenodeBackend.board_info("nucleo-f303re")
    assert info is not None and info.microcontroller.name == STM32F303RE.name
    repl = _repl_memories()
    mapped = sorted((a, size) for name in ("flash", "sram", "ccmram")
                    for a in repl[name][0] for size in [repl[name][1]])
    assert list(info.memory.regions) == mapped
    assert info.memory.bin_base == repl["flash"][0][0]
    assert set(info.memory.ram) == {(repl[n][0][0], repl[n][1]) for n in ("sram", "ccmram")}


def test_system_memory_words_match_our_model():
    """Unique ID, flash size in KiB (0x1FFFF7CC) and option bytes: the words the platform
    file writes are the bytes of our SoC spec."""
    system = STM32F303RE.memory("system")
    (base,), size = _repl_memories()["systemMemory"]
    assert (base, size) == (system.base, system.size)
    ours = bytearray([system.fill]) * system.size
    for offset, data in system.content:
        ours[offset:offset + len(data)] = data
    _, attrs = SOC_ENTRIES["systemMemory"]
    writes = [(int(o, 16), int(v, 16)) for a in attrs
              for o, v in re.findall(r"WriteDoubleWord (0x[0-9A-Fa-f]+) (0x[0-9A-Fa-f]+)", a)]
    assert {o for o, _ in writes} >= {o & ~3 for o, _ in system.content}
    for offset, value in writes:
        assert struct.unpack_from("<I", ours, offset)[0] == value, hex(offset)
    flash_kib = struct.unpack_from("<H", ours, FLASH_SIZE_REGISTER - system.base)[0]
    assert flash_kib * 1024 == STM32F303RE.memory("flash").size


def test_renode_feeds_what_the_sim_feeds():
    """Console input and presses are fed in Renode too: its BoardInfo says so, and it
    knows only the boards it has a platform file for."""
    info = RenodeBackend.board_info("nucleo-f303re")
    assert info is not None and (info.console_input, info.presses) == (True, True)
    assert info.buttons == ("B1",) and info.console == "USART2"
    assert RenodeBackend.board_info("stm32f3discovery") is None


# -- the files are generated from the data ------------------------------------------------

def test_the_platform_files_are_what_the_generator_makes():
    """The committed .repl files are build outputs: regenerating them changes no byte."""
    from hwut.backends.renode_platform import generate
    files = generate(platform_dir(), PLATFORMS)
    assert {p.name for p in files} == {SOC.name, BOARD.name}
    for path, text in files.items():
        assert path.read_text() == text, (
            f"{path.name} differs from what sim/soc, sim/boards and its template give: "
            "run python -m hwut.backends.renode_platform")


def test_the_generator_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    """``--check`` changes nothing and exits 1 when a file differs (what CI would run)."""
    from hwut.backends import renode, renode_platform
    for path in platform_dir().iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(renode, "platform_dir", lambda: tmp_path)
    assert renode_platform.main(["--check"]) == 0
    stale = tmp_path / SOC.name
    stale.write_text(stale.read_text().replace("0x20000000", "0x20000004", 1))
    assert renode_platform.main(["--check"]) == 1
    assert "differs" in capsys.readouterr().out and "0x20000004" in stale.read_text()
    assert renode_platform.main([]) == 0 and stale.read_bytes() == SOC.read_bytes()


def test_another_part_gets_its_own_map(tmp_path):
    """Derived, not copied: the F303VC (STM32F3DISCOVERY) gets its memory sizes, its
    six GPIO ports and its IDCODE from its SoC description, through the same template."""
    from hwut.backends.renode_platform import SOC_TEMPLATE, soc_platform
    from hwut.sim.soc.stm32f303 import STM32F303VC
    path = tmp_path / "stm32f303vc.repl"
    path.write_text(soc_platform(STM32F303VC, (platform_dir() / SOC_TEMPLATE).read_text()))
    found = entries(path)
    for m in ("sram", "ccmram"):
        head, attrs = found[m]
        assert address(head) == STM32F303VC.memory(m).base
        assert f"size: 0x{STM32F303VC.memory(m).size:X}" in attrs
    assert f"size: 0x{STM32F303VC.memory('flash').size:X}" in found["flash"][1]
    assert sorted(n for n in found if n.startswith("gpioPort")) == [
        f"gpioPort{c}" for c in "ABCDEF"]
    idcode = next(p for p in STM32F303VC.peripherals if p.name == "DBGMCU").args["idcode"]
    assert f"WriteDoubleWord 0x0 0x{idcode:08X}" in found["dbgmcu"][1]
