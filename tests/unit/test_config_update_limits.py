"""`update_limits:` and `tsig_max_fudge:` (issue 14, items 9, 10 and 13)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ddns_server.config import load_config
from ddns_server.errors import ConfigError
from ddns_server.model import UpdateLimits


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "ddns.yaml"
    path.write_text(textwrap.dedent(text))
    return load_config(path, environ={})


def test_defaults_are_bind_9_20s(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.update_limits == UpdateLimits(100, 100, 4096, 32768)  # type: ignore[attr-defined]
    assert config.tsig_max_fudge == 300  # type: ignore[attr-defined]


def test_values_are_read(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        update_limits:
          max_records_per_type: 0
          max_types_per_name: 20
          max_rdata_size: 1000
          max_rrset_size: 60000
        tsig_max_fudge: 60
        """,
    )
    assert config.update_limits == UpdateLimits(0, 20, 1000, 60000)  # type: ignore[attr-defined]
    assert config.tsig_max_fudge == 60  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("update_limits:\n  max_records: 5\n", "update_limits.max_records: unknown key"),
        ("update_limits:\n  max_rrset_size: 70000\n", "70000 is out of range"),
        ("update_limits:\n  max_types_per_name: -1\n", "-1 is out of range"),
        ("tsig_max_fudge: 65536\n", "tsig_max_fudge: 65536 is out of range"),
        ("tsig_max_fudge: soon\n", "tsig_max_fudge: expected an integer"),
    ],
)
def test_bad_values_are_one_line_each(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert len(info.value.problems) == 1 and message in info.value.problems[0]
