"""The engine end to end with the other providers: ddns-server serving
dyn.example.test and mirroring it into example.test at the Cloudflare double,
the DNSPod double, a real PowerDNS (octodns-powerdns) and moto's Route 53.

The providers alone are tested in test_provider_*.py; their peers are started
by those modules' helpers, and the server, its keys, zone and the update
helpers are the rfc2136 tests' (test_mirror_rfc2136.py), so every provider
gets the same changes. Proof: the provider equals our zone on the managed
names, and its record outside them is untouched. Faults: the peer stopped
(pdns_server ended; moto paused by SIGSTOP, as it keeps its zones in memory)
while 200 updates are journaled here; Cloudflare's 429 with Retry-After and a
bad token, with the double's calls counted and timed.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerFactory
from harness import ServerProcess, holds_for, http_get, wait_for
from named_primary import UPSTREAM, Rows
from test_mirror_rfc2136 import (
    NAMES,
    OUR_ZONE,
    PASSWORD,
    UPDATE_KEY,
    ZONE,
    managed,
    nsupdate,
    our_rows,
    status,
    update,
)

from ddns_server.mirrors import registry
from ddns_server.mirrors.base import Provider, RRset
from ddns_server.mirrors.spec import MirrorSpec
from ddns_server.passwords import hash_password

pytest.importorskip("cloudflare")
pytest.importorskip("tencentcloud.dnspod")
pytest.importorskip("octodns_powerdns")
pytest.importorskip("boto3")
pytest.importorskip("moto")

import test_provider_cloudflare as cf  # noqa: E402
import test_provider_dnspod as dp  # noqa: E402
import test_provider_octodns as od  # noqa: E402
import test_provider_route53 as r53  # noqa: E402
from test_provider_route53 import moto  # noqa: E402, F401  (module-scoped peer)


@dataclass
class Upstream:
    """One provider's peer, as a mirror entry sees it."""

    provider: str
    options: dict[str, Any]
    outside: RRset  # a record at the provider that no mirror manages
    stop: Callable[[], None] | None = None  # the peer goes away (for a while)
    resume: Callable[[], None] | None = None

    def reader(self) -> Provider:
        spec = MirrorSpec("r", self.provider, f"{ZONE}.", f"{UPSTREAM}.", options=self.options)
        return registry.create(spec)


def cf_options(c: Any) -> dict[str, Any]:
    return {"api_token": c.token, "zone_id": c.zone_id, "base_url": c.base_url, "timeout": 2}


@pytest.fixture
def upstream(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Upstream]:
    """The peer named by the test's parameter, with its records outside the mirror."""
    name = request.param
    if name == "cloudflare":
        c = cf.start_double()
        yield Upstream(name, cf_options(c), cf.OUTSIDE)
        c.stop()
    elif name == "dnspod":
        d = dp.start_double()
        options = {"secret_id": "AKIDtest", "secret_key": "k" * 32, "endpoint": d.endpoint}
        yield Upstream(name, {**options, "timeout": 2}, dp.OUTSIDE)
        d.stop()
    elif name == "octodns":
        # its own pdns_server, so stopping it leaves the module's peer alone
        peer = od.start_pdns(tmp_path)
        peer.fresh_zone()
        try:
            yield Upstream(
                name,
                peer.options(timeout=2),
                od.OUTSIDE,
                peer.proc.stop,
                lambda: od.start_pdns(tmp_path, peer) and None,
            )
        finally:
            peer.proc.stop()
    else:  # route53: moto keeps its zones in memory, so it is paused (SIGSTOP), not ended
        m: r53.Moto = request.getfixturevalue("moto")
        pid = m.proc.proc.pid
        try:
            yield Upstream(
                name,
                m.options(m.new_zone(), timeout=2),
                r53.OUTSIDE,
                lambda: os.kill(pid, signal.SIGSTOP),
                lambda: os.kill(pid, signal.SIGCONT),
            )
        finally:
            os.kill(pid, signal.SIGCONT)


def serve(server_factory: ServerFactory, up: Upstream, **mirror: Any) -> ServerProcess:
    """Our server with one mirror "public" of NAMES to the upstream."""
    entry = {
        "name": "public",
        "provider": up.provider,
        "zone": ZONE,
        "upstream_zone": UPSTREAM,
        "names": NAMES,
        "resync_interval": 0,
        "calls_per_second": 50,
        "options": up.options,
        **mirror,
    }
    return server_factory(
        {ZONE: OUR_ZONE},
        {
            "keys": [UPDATE_KEY.config()],
            "users": [
                {
                    "name": "alice",
                    "password_hash": hash_password(PASSWORD),
                    "hosts": [f"home.{ZONE}"],
                }
            ],
            "mirrors": [entry],
        },
        zone_extra={
            ZONE: {
                "update_policy": [{"grant": UPDATE_KEY.name, "match": "zonesub"}],
                "allow_transfer": ["127.0.0.0/8"],
            }
        },
    )


def rows(rrsets: list[RRset]) -> Rows:
    return {(r.name, r.rdtype, r.ttl, v) for r in rrsets for v in r.values}


def wait_equal(server: ServerProcess, reader: Provider, timeout: float = 20) -> Rows:
    """Wait until the provider equals our zone on the managed names; its rows."""
    last: dict[str, Rows] = {}

    def equal() -> bool:
        last["ours"], last["theirs"] = managed(our_rows(server)), managed(rows(reader.read()))
        return last["ours"] == last["theirs"]

    try:
        wait_for(equal, timeout=timeout, interval=0.2, message="the provider to equal our zone")
    except AssertionError:
        missing = sorted(last["ours"] - last["theirs"])[:10]
        extra = sorted(last["theirs"] - last["ours"])[:10]
        raise AssertionError(
            f"provider differs: missing {missing}, extra {extra}\nstatus: {status(server)}"
        ) from None
    return last["theirs"]


@pytest.mark.parametrize("upstream", ["cloudflare", "dnspod", "octodns", "route53"], indirect=True)
def test_changes_of_every_type_reach_the_provider(
    upstream: Upstream, server_factory: ServerFactory
) -> None:
    server = serve(server_factory, upstream)
    reader = upstream.reader()
    wait_equal(server, reader)
    nsupdate(
        server,
        f"""
update add home.{ZONE} 300 AAAA 2001:db8::10
update add www.{ZONE} 300 TXT "hello world"
update add www.{ZONE} 300 MX 10 mx.example.net.
update add a.lab.{ZONE} 300 CNAME www.{ZONE}
update add b.c.lab.{ZONE} 300 A 192.0.2.40
update add b.c.lab.{ZONE} 300 A 192.0.2.41
update add other.{ZONE} 300 TXT "not managed"
""",
    )
    assert (f"b.c.lab.{ZONE}.", "A", 300, "192.0.2.41") in wait_equal(server, reader)
    nsupdate(
        server,
        f"""
update delete www.{ZONE} TXT
update add www.{ZONE} 600 TXT "replaced"
update delete a.lab.{ZONE} CNAME
update delete b.c.lab.{ZONE} A 192.0.2.40
""",
    )
    code, body = http_get(
        f"{server.http_url}/nic/update?hostname=home.{ZONE}&myip=198.51.100.5",
        auth=("alice", PASSWORD),
    )
    assert code == 200 and body.startswith("good"), body
    theirs = wait_equal(server, reader)
    assert (f"home.{ZONE}.", "A", 60, "198.51.100.5") in theirs
    assert (f"www.{ZONE}.", "TXT", 600, '"replaced"') in theirs
    assert not any(r[0] == f"a.lab.{ZONE}." for r in theirs)
    assert reader.read([upstream.outside.key]) == [upstream.outside]
    assert not reader.read([(f"other.{ZONE}.", "TXT")])
    st = status(server)
    assert st["delivered_serial"] == st["current_serial"] == server.soa_serial()
    assert st["pending"] == 0 and st["last_error"] is None
    reader.close()


@pytest.mark.parametrize("upstream", ["octodns", "route53"], indirect=True)
def test_provider_outage_loses_nothing(upstream: Upstream, server_factory: ServerFactory) -> None:
    """pdns_server stopped, moto paused, while 200 updates are journaled here."""
    server = serve(server_factory, upstream)
    reader = upstream.reader()
    wait_equal(server, reader)
    assert upstream.stop is not None and upstream.resume is not None
    upstream.stop()
    try:
        for i in range(200):
            update(server, ("replace", f"h{i % 50}.lab", 300, "A", f"10.0.{i // 50}.{i % 50}"))
        wait_for(
            lambda: (status(server)["last_error"] or {}).get("class") == "transient",
            timeout=20,
            message="a transient error in mirror status",
        )
        assert status(server)["pending"] == 50
    finally:
        upstream.resume()
    theirs = wait_equal(server, reader, timeout=60)
    assert {r for r in theirs if ".lab." in r[0]} == {
        (f"h{i}.lab.{ZONE}.", "A", 300, f"10.0.3.{i}") for i in range(50)
    }
    wait_for(lambda: status(server)["pending"] == 0, timeout=10, message="the cursor to move")
    assert reader.read([upstream.outside.key]) == [upstream.outside]
    reader.close()


def test_cloudflare_retry_after_is_honoured_by_the_engine(server_factory: ServerFactory) -> None:
    c = cf.start_double()
    try:
        server = serve(server_factory, Upstream("cloudflare", cf_options(c), cf.OUTSIDE))
        wait_for(lambda: status(server)["state"] == "in sync", timeout=20, message="in sync")
        c.fail_next(429, {"Retry-After": "3"})
        first = len(c.calls)
        update(server, ("replace", "home", 300, "A", "198.51.100.77"))
        wait_for(lambda: len(c.calls) > first, timeout=10, message="the rate-limited call")
        limited = c.call_times[first]
        wait_for(
            lambda: any(r["content"] == "198.51.100.77" for r in c.zone_records(c.zone_id)),
            timeout=20,
            message="the push after Retry-After",
        )
        # The one call answered 429, then nothing until Retry-After (3 s) elapsed.
        later = c.call_times[first + 1 :]
        assert later and min(later) - limited >= 3.0 - 0.05, (limited, later)
        assert re.search(
            r"mirror public: transient error \(attempt 1, retry in [3-9]\.\d s\)", server.log_text()
        )
        wait_for(lambda: status(server)["state"] == "in sync", timeout=10, message="in sync")
    finally:
        c.stop()


def test_cloudflare_bad_token_is_permanent_without_retry_storm(
    server_factory: ServerFactory,
) -> None:
    c = cf.start_double()
    try:
        options = {**cf_options(c), "api_token": "not-a-token"}
        server = serve(server_factory, Upstream("cloudflare", options, cf.OUTSIDE))
        wait_for(lambda: status(server)["state"] == "stopped", timeout=20, message="stopped")
        error = status(server)["last_error"]
        assert error["class"] == "permanent" and "401" in error["message"], error
        calls = len(c.calls)
        assert calls <= 2, c.calls
        (before,) = c.zone_records(c.zone_id)  # the outside record only
        for i in range(5):
            update(server, ("replace", "home", 300, "A", f"10.2.0.{i}"))
        # No call at all while stopped, over a few seconds and five new versions.
        holds_for(lambda: len(c.calls) == calls, 3, message=f"no call while stopped: {c.calls}")
        assert status(server)["pending_versions"] >= 5
        assert status(server)["state"] == "stopped"
        assert c.zone_records(c.zone_id) == [before]
    finally:
        c.stop()
