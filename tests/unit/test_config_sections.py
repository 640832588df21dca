"""The section registry of config/ and the shared Reader's helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ddns_server import config
from ddns_server.config import Section
from ddns_server.config.reader import Reader
from ddns_server.errors import ConfigError


def _reader(tmp_path: Path) -> Reader:
    return Reader(tmp_path / "ddns.yaml", {}, check_zone_files=False)


def test_a_registered_section_is_read_with_its_node_after_its_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    def read_extra(reader: Reader, node: yaml.Node | None) -> int | None:
        seen.append(sorted(reader.key_names))  # keys were read first (needs)
        return reader.integer(node, "extra", 1, 10) if node is not None else None

    extra = Section("extra", read_extra, needs=("keys",), fields=lambda value: {})
    monkeypatch.setattr(config, "SECTIONS", (extra, *config.SECTIONS))
    path = tmp_path / "ddns.yaml"
    path.write_text("extra: 11\nkeys:\n  - {name: k, secret: c2VjcmV0}\n")
    with pytest.raises(ConfigError) as e:
        config.load_config(path)
    assert e.value.problems == [f"{path}:1: extra: 11 is out of range (expected 1..10)"]
    assert [str(n) for n in seen[0]] == ["k."]
    path.write_text("bogus: 1\n")
    with pytest.raises(ConfigError) as e:
        config.load_config(path)
    keys = ", ".join(section.key for section in config.SECTIONS)
    assert e.value.problems[0].endswith(f"(expected one of {keys})")
    assert keys.startswith("extra, data_dir, listen, trusted_proxies, tls, dyndns, keys, users")


def test_null_reads_as_absent_unless_the_section_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    got: dict[str, Any] = {}

    def recorder(key: str) -> Section:
        def read(reader: Reader, node: yaml.Node | None) -> None:
            got[key] = None if node is None else node.tag

        return Section(key, read, keep_null=key == "kept", fields=lambda value: {})

    monkeypatch.setattr(
        config, "SECTIONS", (*config.SECTIONS, recorder("kept"), recorder("dropped"))
    )
    path = tmp_path / "ddns.yaml"
    path.write_text("kept:\ndropped:\n")
    config.load_config(path)
    assert got == {"kept": "tag:yaml.org,2002:null", "dropped": None}


@pytest.mark.parametrize(
    ("text", "value", "problem"),
    [
        ("1", 1.0, None),
        ("0.5", 0.5, None),
        ("2.5", None, "x: 2.5 is out of range (expected 0..2)"),
        (".nan", None, "x: .nan is out of range (expected 0..2)"),
        ("yes", None, "x: expected a number, got a boolean"),
    ],
)
def test_number(tmp_path: Path, text: str, value: float | None, problem: str | None) -> None:
    reader = _reader(tmp_path)
    assert reader.number(yaml.compose(text), "x", 0, 2) == value
    assert [m.split(": ", 1)[1] for _, m in reader.problems] == ([problem] if problem else [])


def test_boolean(tmp_path: Path) -> None:
    reader = _reader(tmp_path)
    assert reader.boolean(yaml.compose("true"), "x") is True
    assert reader.boolean(yaml.compose("false"), "x") is False
    assert reader.boolean(yaml.compose("'true'"), "x") is None
    assert [m.split(": ", 1)[1] for _, m in reader.problems] == [
        "x: expected a boolean, got a string"
    ]
