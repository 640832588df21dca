"""Fixtures for the integration tests; the helpers themselves are in harness.py.

Test modules here import the helpers with `from harness import ...` (this file
puts its folder on sys.path, which works under every pytest import mode).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    EXAMPLE_ZONE_NAME,
    BackgroundProcess,
    ServerProcess,
    example_zone_text,
    tail,
)

ServerFactory = Callable[..., ServerProcess]
Spawn = Callable[..., BackgroundProcess]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers: ``server_factory(zones, extra=None, *, zone_extra=None,
    https=False, env=None, ready_timeout=20.0) -> ServerProcess`` (started and
    answering). Every server is stopped at teardown, even when the test failed;
    each one's log tail is printed then (pytest shows it for failed tests).
    """
    servers: list[ServerProcess] = []

    def make(
        zones: Mapping[str, str | None],
        extra: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ServerProcess:
        server = ServerProcess(tmp_path / f"server{len(servers)}", zones, extra, **kwargs)
        servers.append(server)  # before start(), so a failed start is cleaned up too
        return server.start()

    yield make

    for server in servers:
        server.stop()
    for server in servers:
        print(f"----- {server!r} log (tail) -----\n{tail(server.log_text())}")


@pytest.fixture
def example_server(server_factory: ServerFactory) -> ServerProcess:
    """A server for zones/dyn.example.test.zone, transfers allowed from loopback."""
    return server_factory(
        {EXAMPLE_ZONE_NAME: example_zone_text()},
        zone_extra={EXAMPLE_ZONE_NAME: {"allow_transfer": ["127.0.0.0/8"]}},
    )


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start helper processes: ``spawn(cmd, name=None, *, cwd=None, env=None)
    -> BackgroundProcess``, logging to ``tmp_path/NAME.log``. All are stopped
    (SIGTERM, then SIGKILL of their process group) at teardown.
    """
    procs: list[BackgroundProcess] = []

    def start(
        cmd: Sequence[str | os.PathLike[str]],
        name: str | None = None,
        **kwargs: Any,
    ) -> BackgroundProcess:
        label = name or f"{Path(os.fspath(cmd[0])).name}-{len(procs)}"
        proc = BackgroundProcess(cmd, tmp_path / f"{label}.log", **kwargs)
        procs.append(proc)
        return proc

    yield start

    for proc in reversed(procs):
        proc.stop()
    for proc in procs:
        print(f"----- {proc.log_path.name} (tail) -----\n{tail(proc.log_text())}")
