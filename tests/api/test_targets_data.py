"""Board and microcontroller facts have one source: the backend's BoardInfo, derived from the
sim's SoC and board specs. The targets API shows them; a config may only repeat them."""
from __future__ import annotations

from pathlib import Path

import pytest
from hwut_testenv import FAST_HASHER, make_config

from hwut.backends.registry import load_backends
from hwut.config import DEFAULT_CONFIG_PATH, BoardConfig, ConfigError, load_config
from hwut.service import build_service

BOTH = (BoardConfig("nucleo-f303re", "sim", 1, {}),
        BoardConfig("stm32f3discovery", "sim", 0, {}))


def records(tmp_path: Path, boards: tuple[BoardConfig, ...],
            mcus: tuple[dict, ...] = ()) -> tuple[list[dict], list[dict]]:
    config = make_config(tmp_path / "data", boards=boards)
    config = type(config)(config.values, config.boards, mcus, "test.toml")
    service = build_service(config, load_backends(), password_hasher=FAST_HASHER)
    try:
        targets = service.store.targets
        return targets.list("microcontrollers"), targets.list("boards")
    finally:
        service.stop()


def test_the_shipped_config_writes_no_chip_facts_by_hand():
    config = load_config(DEFAULT_CONFIG_PATH, environ={})
    assert config.microcontrollers == ()
    assert all(b.microcontroller is None for b in config.boards)


def test_microcontrollers_come_from_the_soc_specs(tmp_path):
    mcus, boards = records(tmp_path, BOTH)
    assert mcus == [
        {"name": "stm32f303re", "manufacturer": "STMicroelectronics", "core": "Cortex-M4F",
         "flash_bytes": 524288, "ram_bytes": 65536, "max_clock_hz": 72_000_000,
         "memory": [{"name": "flash", "base": 0x0800_0000, "size": 524288},
                    {"name": "sram", "base": 0x2000_0000, "size": 65536},
                    {"name": "ccmram", "base": 0x1000_0000, "size": 16384}],
         "description": "STM32F303RE: Cortex-M4F, 512 KiB flash, 64 KiB SRAM + 16 KiB CCM SRAM"},
        {"name": "stm32f303vc", "manufacturer": "STMicroelectronics", "core": "Cortex-M4F",
         "flash_bytes": 262144, "ram_bytes": 40960, "max_clock_hz": 72_000_000,
         "memory": [{"name": "flash", "base": 0x0800_0000, "size": 262144},
                    {"name": "sram", "base": 0x2000_0000, "size": 40960},
                    {"name": "ccmram", "base": 0x1000_0000, "size": 8192}],
         "description": "STM32F303VC: Cortex-M4F, 256 KiB flash, 40 KiB SRAM + 8 KiB CCM SRAM"},
    ]
    assert boards == [
        {"name": "nucleo-f303re", "microcontroller": "stm32f303re", "console": "USART2",
         "buttons": ["B1"], "leds": ["LD2"]},
        {"name": "stm32f3discovery", "microcontroller": "stm32f303vc", "console": "USART1",
         "buttons": ["B1"], "leds": [f"LD{n}" for n in range(3, 11)]},
    ]


def test_a_config_may_repeat_the_facts_and_add_prose(tmp_path):
    mcus, _ = records(tmp_path, BOTH, ({"name": "stm32f303re", "flash_bytes": 524288,
                                        "description": "our lab's part"},))
    assert mcus[0]["flash_bytes"] == 524288 and mcus[0]["description"] == "our lab's part"


def test_a_config_contradicting_the_board_data_is_refused(tmp_path):
    with pytest.raises(ConfigError) as err:
        records(tmp_path, BOTH, ({"name": "stm32f303vc", "flash_bytes": 524288,
                                  "ram_bytes": 40960},))
    assert str(err.value) == (
        "test.toml: [[microcontrollers]] stm32f303vc: flash_bytes = 524288 contradicts the "
        "board data (flash_bytes = 262144); remove the entry, the backend supplies it")
    # the data dir was released: the next attempt may open it
    assert records(tmp_path, BOTH)[0]


def test_a_board_claiming_another_chip_is_refused(tmp_path):
    boards = (BoardConfig("stm32f3discovery", "sim", 1, {}, "stm32f303re"),)
    with pytest.raises(ConfigError, match="board stm32f3discovery: microcontroller = "
                                          "'stm32f303re', but it carries 'stm32f303vc'"):
        records(tmp_path, boards)


def test_chips_no_backend_knows_come_from_the_config(tmp_path):
    lab = {"name": "stm32l476rg", "manufacturer": "STMicroelectronics", "flash_bytes": 1 << 20}
    boards = (BoardConfig("nucleo-l476rg", "not-installed", 1, {}, "stm32l476rg"),)
    mcus, records_ = records(tmp_path, boards, (lab,))
    assert mcus == [lab]
    assert records_ == [{"name": "nucleo-l476rg", "microcontroller": "stm32l476rg"}]


def test_a_sim_board_may_go_by_its_own_name(tmp_path):
    """Option ``model``: the board's facts are its model's."""
    boards = (BoardConfig("bench-7", "sim", 1, {"model": "stm32f3discovery"}),)
    mcus, records_ = records(tmp_path, boards)
    assert [m["name"] for m in mcus] == ["stm32f303vc"]
    assert records_[0]["microcontroller"] == "stm32f303vc" and records_[0]["name"] == "bench-7"
