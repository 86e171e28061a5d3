"""Options priority: command line > environment > config file > default."""
from __future__ import annotations

import pytest

from hwut.config import DEFAULT_CONFIG_PATH, OPTIONS, ConfigError, load_config


def test_shipped_default(tmp_path):
    config = load_config(environ={})
    board = config.board("nucleo-f303re")
    assert board.backend == "sim" and board.instances == 2
    assert config["limits.max_executable_bytes"] == 5 * 1024 * 1024
    assert config["limits.max_duration_seconds"] == 300
    assert config["limits.default_duration_seconds"] == 60
    assert DEFAULT_CONFIG_PATH.exists()


def test_priority(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[options]\n"server.port" = 1111\n"server.threads" = 3\n'
                    '"server.host" = "0.0.0.0"\n')
    config = load_config(path, environ={"HWUT_SERVER_PORT": "2222", "HWUT_SERVER_HOST": "::1"},
                         cli={"server.port": 3333})
    assert config["server.port"] == 3333
    assert config["server.host"] == "::1"
    assert config["server.threads"] == 3
    assert config["limits.max_duration_seconds"] == OPTIONS["limits.max_duration_seconds"].default


@pytest.mark.parametrize("text", ['[options]\n"nope" = 1\n', '[options]\n"server.port" = "x"\n',
                                  "[[boards]]\nname = 'x'\n", "not toml ==",
                                  '[options]\n"limits.default_duration_seconds" = 500\n'])
def test_bad_config(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path, environ={})


def test_bad_environment():
    with pytest.raises(ConfigError, match="HWUT_SERVER_PORT"):
        load_config(environ={"HWUT_SERVER_PORT": "eighty"})


@pytest.mark.parametrize("options,message", [
    ('{ timng = "block" }', "board bench (backend sim): unknown options of backend sim: timng; "
                            "it takes model, timing, precharge, trace_bus"),
    ('{ timing = "fast" }', "board bench (backend sim): option timing must be one of exact, "
                            "block, not 'fast'"),
    ('{ model = "nucleo-f999" }', "board bench (backend sim): option model must be one of "
                                  "nucleo-f303re, stm32f3discovery, not 'nucleo-f999'"),
    ('{ precharge = "sometimes" }', "option precharge must be true or false, not 'sometimes'"),
])
def test_board_options_are_checked_when_the_server_starts(tmp_path, options, message):
    """A typo or a bad value in a board's options stops ``hwut serve`` with the board, the
    option and what it allows, instead of failing (or silently ignoring) every job."""
    from click.testing import CliRunner

    from hwut.cli import main
    from hwut.service import build_service

    path = tmp_path / "c.toml"
    path.write_text(f'[[boards]]\nname = "bench"\nbackend = "sim"\noptions = {options}\n')
    config = load_config(path, environ={}, cli={"data_dir": str(tmp_path / "data")})
    with pytest.raises(ConfigError) as err:
        build_service(config)
    assert message in str(err.value)
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--data-dir",
                                       str(tmp_path / "data2")])
    assert result.exit_code == 64 and message in result.output  # 64: the config is wrong


def test_hwut_options_lists_each_backends_board_options():
    from click.testing import CliRunner

    from hwut.cli import main

    result = CliRunner().invoke(main, ["options"])
    assert result.exit_code == 0
    assert "backend sim ([boards.options]" in result.output
    assert "  timing (one of exact, block; default 'exact'): " in result.output
    assert "  renode_path (a string; not set): " in result.output
