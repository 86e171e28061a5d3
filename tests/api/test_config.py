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
