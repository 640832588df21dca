"""The `log:` section of the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddns_server.config import ConfigError, load_config
from ddns_server.model import Log


def load(tmp_path: Path, body: str) -> object:
    path = tmp_path / "ddns.yaml"
    path.write_text("data_dir: var\n" + body)
    return load_config(path)


def test_default_is_text_info(tmp_path: Path) -> None:
    assert load(tmp_path, "").log == Log("text", "info")  # type: ignore[attr-defined]


def test_json_and_level(tmp_path: Path) -> None:
    config = load(tmp_path, "log:\n  format: json\n  level: WARNING\n")
    assert config.log == Log("json", "warning")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("log:\n  format: xml\n", "ddns.yaml:3: log.format: 'xml' is not one of text, json"),
        ("log:\n  level: loud\n", "ddns.yaml:3: log.level: 'loud' is not one of debug, info"),
        ("log:\n  colour: red\n", "ddns.yaml:3: log.colour: unknown key"),
    ],
)
def test_bad_values_name_the_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, body)
    (problem,) = e.value.problems
    assert message in problem, problem
