"""Mirroring to a real BIND primary through the rfc2136 provider.

Our server serves dyn.example.test; a mirror pushes its managed names (home,
www, *.lab) into the upstream zone example.test on a `named` primary with an
update-policy for the mirror's key. Changes come from nsupdate and
/nic/update; the proof is the upstream's AXFR, equal to ours on the managed
names, with a record outside them untouched. Faults: the upstream stopped,
our server killed, a bad key, a conflict, a resync over the threshold, and
1,000 updates of one name.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import dns.update
import pytest
from conftest import ServerFactory, Spawn
from harness import (
    EXAMPLE_ZONE_NAME,
    ServerProcess,
    TsigKey,
    holds_for,
    http_get,
    require_tool,
    run,
    wait_for,
)
from named_primary import UPSTREAM, UPSTREAM_ZONE, NamedPrimary, Rows

from ddns_server.mirrors.spec import MirrorSpec

ZONE = EXAMPLE_ZONE_NAME
MIRROR_KEY = TsigKey.generate("mirror-key")
UPDATE_KEY = TsigKey.generate("update-key")
NAMES = ["home", "www", "*.lab"]
SPEC = MirrorSpec("public", "rfc2136", f"{ZONE}.", f"{UPSTREAM}.", names=tuple(NAMES))
PASSWORD = "s3cret-pass"

OUR_ZONE = f"""$ORIGIN {ZONE}.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 604800 300
@ NS ns1
ns1 A 192.0.2.1
home A 192.0.2.10
other A 192.0.2.30
"""


def managed(rows: Rows) -> Rows:
    return {r for r in rows if SPEC.manages(r[0], r[1])}


def our_rows(server: ServerProcess) -> Rows:
    out: Rows = set()
    for message in dns.query.xfr(
        "127.0.0.1", ZONE, port=server.dns_port, timeout=5, relativize=False
    ):
        for rrset in message.answer:
            for rd in rrset:
                out.add(
                    (
                        rrset.name.to_text().lower(),
                        dns.rdatatype.to_text(rrset.rdtype),
                        rrset.ttl,
                        rd.to_text(),
                    )
                )
    return out


def wait_equal(server: ServerProcess, upstream: NamedPrimary, timeout: float = 20) -> None:
    last: dict[str, Any] = {}

    def equal() -> bool:
        last["ours"], last["theirs"] = managed(our_rows(server)), managed(upstream.rows())
        return bool(last["ours"] == last["theirs"])

    try:
        wait_for(equal, timeout=timeout, interval=0.1, message="the upstream to equal our zone")
    except AssertionError:
        missing = sorted(last["ours"] - last["theirs"])[:10]
        extra = sorted(last["theirs"] - last["ours"])[:10]
        raise AssertionError(
            f"upstream differs: missing {missing}, extra {extra}\n"
            f"status: {status(server)}\n{server.log_text()[-3000:]}"
        ) from None


def update(server: ServerProcess, *ops: tuple[Any, ...], tcp: bool = False) -> None:
    message = dns.update.UpdateMessage(ZONE, keyring=UPDATE_KEY.keyring())
    for op, *args in ops:
        getattr(message, op)(*args)
    send = dns.query.tcp if tcp else dns.query.udp
    response = send(message, "127.0.0.1", port=server.dns_port, timeout=5)
    assert response.rcode() == 0, response


def status(server: ServerProcess) -> dict[str, Any]:
    proc = server.cli("mirror", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == ["public"]
    return dict(rows[0])


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    code, body = http_get(f"{server.http_url}/metrics")
    assert code == 200
    total = 0.0
    for line in body.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


Setup = Callable[..., tuple[ServerProcess, NamedPrimary]]


@pytest.fixture
def mirrored(server_factory: ServerFactory, spawn: Spawn, tmp_path: Path) -> Setup:
    """Start named (the upstream) and our server with a mirror to it."""
    require_tool("named")

    def make(
        upstream_text: str = UPSTREAM_ZONE,
        accepted_key: TsigKey | None = None,
        zone_text: str = OUR_ZONE,
        start: bool = True,
        **mirror: Any,
    ) -> tuple[ServerProcess, NamedPrimary]:
        upstream = NamedPrimary(
            spawn, tmp_path / "named", MIRROR_KEY, upstream_text, accepted_key
        ).start()
        from ddns_server.passwords import hash_password

        entry = {
            "name": "public",
            "provider": "rfc2136",
            "zone": ZONE,
            "upstream_zone": UPSTREAM,
            "names": NAMES,
            "resync_interval": 0,
            "calls_per_second": 20,
            "options": {
                "server": f"127.0.0.1:{upstream.port}",
                "key": MIRROR_KEY.name,
                "timeout": 1,
            },
            **mirror,
        }
        factory: Any = server_factory if start else partial(ServerProcess, tmp_path / "offline")
        server = factory(
            {ZONE: zone_text},
            {
                "keys": [UPDATE_KEY.config(), MIRROR_KEY.config()],
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
        return server, upstream

    return make


def nsupdate(server: ServerProcess, commands: str) -> None:
    script = f"server 127.0.0.1 {server.dns_port}\nzone {ZONE}\n{commands.strip()}\nsend\n"
    proc = run([require_tool("nsupdate"), "-y", UPDATE_KEY.dig_arg()], input=script)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_changes_of_every_type_reach_the_upstream(mirrored: Setup) -> None:
    server, upstream = mirrored()
    wait_equal(server, upstream)
    outside = {r for r in upstream.rows() if r[0] == f"outside.{UPSTREAM}."}
    nsupdate(
        server,
        f"""
update add home.{ZONE} 300 AAAA 2001:db8::10
update add www.{ZONE} 300 TXT "hello world"
update add www.{ZONE} 300 MX 10 mx.example.net.
update add a.lab.{ZONE} 300 CNAME www.{ZONE}
update add b.c.lab.{ZONE} 300 A 192.0.2.40
update add b.c.lab.{ZONE} 300 A 192.0.2.41
""",
    )
    wait_equal(server, upstream)
    assert (f"b.c.lab.{ZONE}.", "A", 300, "192.0.2.41") in upstream.rows()
    # replace, delete, and a DynDNS2 update
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
    wait_equal(server, upstream)
    theirs = upstream.rows()
    assert (f"home.{ZONE}.", "A", 60, "198.51.100.5") in theirs
    assert (f"www.{ZONE}.", "TXT", 600, '"replaced"') in theirs
    assert not any(r[0] == f"a.lab.{ZONE}." for r in theirs)
    # outside the managed names: untouched there, never pushed from here
    assert {r for r in theirs if r[0] == f"outside.{UPSTREAM}."} == outside
    assert not any(r[0] == f"other.{ZONE}." for r in theirs)
    # A name's A replaced by a CNAME in one version, and back: one push each,
    # which the upstream must take in the right order.
    nsupdate(
        server, f"update delete b.c.lab.{ZONE} A\nupdate add b.c.lab.{ZONE} 300 CNAME www.{ZONE}"
    )
    wait_equal(server, upstream)
    nsupdate(
        server, f"update delete b.c.lab.{ZONE} CNAME\nupdate add b.c.lab.{ZONE} 300 A 192.0.2.42"
    )
    wait_equal(server, upstream)
    assert (f"b.c.lab.{ZONE}.", "A", 300, "192.0.2.42") in upstream.rows()
    st = status(server)
    assert st["delivered_serial"] == st["current_serial"] == server.soa_serial()
    assert st["pending"] == 0 and st["last_error"] is None
    log = server.cli("journal", "log", ZONE, "--json")
    assert json.loads(log.stdout)[0]["mirrors"] == {"public": True}
    assert re.search(r"mirror public: pushed serial \d+ to rfc2136", server.log_text())


def test_upstream_outage_loses_nothing(mirrored: Setup) -> None:
    server, upstream = mirrored()
    wait_equal(server, upstream)
    upstream.stop()
    for i in range(200):
        update(server, ("replace", f"h{i % 50}.lab", 300, "A", f"10.0.{i // 50}.{i % 50}"))
    wait_for(
        lambda: (status(server)["last_error"] or {}).get("class") == "transient",
        timeout=10,
        message="a transient error in mirror status",
    )
    st = status(server)
    assert st["pending"] == 50 and st["next_retry"] is not None
    upstream.start()
    wait_equal(server, upstream, timeout=60)
    # the cursor moves right after the provider confirmed
    wait_for(lambda: status(server)["pending"] == 0, timeout=10, message="the cursor to move")


def test_kill9_mid_delivery_then_restart(mirrored: Setup) -> None:
    server, upstream = mirrored(calls_per_second=5)
    wait_equal(server, upstream)
    acked: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        i = 0
        while not stop.is_set() and i < 2000:
            try:
                update(
                    server, ("replace", f"k{i % 20}.lab", 300, "A", f"10.1.{i // 250}.{i % 250}")
                )
            except Exception:  # noqa: BLE001 - the server was killed
                return
            acked.append(i)
            i += 1

    thread = threading.Thread(target=stream)
    thread.start()
    wait_for(
        lambda: len(acked) > 100 and metric(server, "ddns_mirror_pushes_total") >= 2,
        timeout=60,
        message="updates acknowledged and pushes made before the kill",
    )
    server.kill()
    stop.set()
    thread.join(10)
    server.start()
    wait_equal(server, upstream, timeout=60)
    last = acked[-1]
    assert (
        f"k{last % 20}.lab.{ZONE}.",
        "A",
        300,
        f"10.1.{last // 250}.{last % 250}",
    ) in upstream.rows()


def test_bad_key_is_a_permanent_error_without_retry_storm(
    mirrored: Setup, spawn: Spawn, tmp_path: Path
) -> None:
    wrong = TsigKey(MIRROR_KEY.name, TsigKey.generate("x").secret)
    server, upstream = mirrored(accepted_key=wrong)
    wait_for(lambda: status(server)["state"] == "stopped", timeout=10, message="a stopped mirror")
    error = status(server)["last_error"]
    assert error["class"] == "permanent" and "BADSIG" in error["message"] + "BADKEY", error
    assert re.search(r"mirror public: stopped by a permanent error", server.log_text())
    for i in range(5):
        update(server, ("replace", "home", 300, "A", f"10.2.0.{i}"))
    errors = metric(server, "ddns_mirror_errors_total", **{"class": "permanent"})
    assert errors == 1
    # No retries while stopped: the count stays put over a few seconds.
    holds_for(
        lambda: metric(server, "ddns_mirror_errors_total", **{"class": "permanent"}) == errors,
        3,
        message="no retry while stopped",
    )
    # Fixed at the upstream, then SIGHUP: it delivers.
    upstream.stop()
    fixed = NamedPrimary(spawn, tmp_path / "named2", MIRROR_KEY, port=upstream.port).start()
    server.reload()
    wait_equal(server, fixed)
    wait_for(lambda: status(server)["state"] == "in sync", timeout=10, message="in sync")


def test_conflict_is_reported_and_left_alone(mirrored: Setup) -> None:
    theirs = UPSTREAM_ZONE + "home.dyn 300 A 198.51.100.1\n"
    server, upstream = mirrored(upstream_text=theirs)
    wait_for(lambda: status(server)["conflicts"] == [f"home.{ZONE}. A"], timeout=10)
    update(
        server, ("replace", "home", 300, "A", "192.0.2.99"), ("add", "www", 300, "A", "192.0.2.80")
    )
    wait_for(lambda: (f"www.{ZONE}.", "A", 300, "192.0.2.80") in upstream.rows(), timeout=10)
    assert (f"home.{ZONE}.", "A", 300, "198.51.100.1") in upstream.rows()
    assert (f"home.{ZONE}.", "A", 300, "192.0.2.99") not in upstream.rows()
    assert status(server)["conflicts"] == [f"home.{ZONE}. A"]
    assert "conflict at home" in server.log_text()


def test_resync_over_the_threshold_needs_force(mirrored: Setup) -> None:
    lab = "".join(f"n{i}.lab A 192.0.2.{100 + i}\n" for i in range(12))
    server, upstream = mirrored(zone_text=OUR_ZONE + lab)
    wait_equal(server, upstream)
    upstream.update(*[("replace", f"n{i}.lab.dyn", 300, "A", "203.0.113.66") for i in range(6)])
    before = upstream.rows()
    dry = server.cli("mirror", "resync", "public", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"replace n0.lab.{ZONE}. 300 A 192.0.2.100" in dry.stdout
    refused = server.cli("mirror", "resync", "public")
    assert refused.returncode == 1
    assert "--force" in refused.stderr and "max_change_share" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert upstream.rows() == before
    forced = server.cli("mirror", "resync", "public", "--force")
    assert forced.returncode == 0, forced.stderr
    wait_equal(server, upstream, timeout=5)


def test_a_thousand_updates_of_one_name_coalesce(mirrored: Setup) -> None:
    server, upstream = mirrored(calls_per_second=2)
    wait_equal(server, upstream)
    pushes = metric(server, "ddns_mirror_pushes_total")
    start = time.monotonic()
    for i in range(1000):
        update(server, ("replace", "home", 300, "A", f"10.3.{i // 250}.{i % 250}"))
    elapsed = time.monotonic() - start
    wait_for(lambda: (f"home.{ZONE}.", "A", 300, "10.3.3.249") in upstream.rows(), timeout=20)
    wait_equal(server, upstream)
    calls = metric(server, "ddns_mirror_pushes_total") - pushes
    # A handful: the rate limit (2 calls a second) spaces them while the
    # updates arrive, each push carrying the newest value.
    assert 1 <= calls <= max(8, 2 * elapsed + 4), (calls, elapsed)


def test_status_and_resync_without_a_running_server(mirrored: Setup) -> None:
    server, upstream = mirrored(start=False)
    st = status(server)
    assert st["state"] == "full compare due" and st["delivered_serial"] is None
    assert st["current_serial"] is None or st["current_serial"] == 1
    unknown = server.cli("mirror", "resync", "nosuch")
    assert unknown.returncode == 1 and "unknown mirror 'nosuch'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    dry = server.cli("mirror", "resync", "public", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"create home.{ZONE}. 300 A 192.0.2.10" in dry.stdout
    assert not any(r[0] == f"home.{ZONE}." for r in upstream.rows())
    done = server.cli("mirror", "resync", "public")
    assert done.returncode == 0, done.stderr
    assert (f"home.{ZONE}.", "A", 300, "192.0.2.10") in upstream.rows()
    st = status(server)
    assert st["state"] == "in sync" and st["delivered_serial"] == st["current_serial"]
    text = server.cli("mirror", "status")
    assert text.returncode == 0 and "public (rfc2136)" in text.stdout and "in sync" in text.stdout
    log = server.cli("journal", "log", ZONE)
    assert log.returncode == 0 and "MIRRORS" in log.stdout and " public" in log.stdout


def test_the_provider_contract_against_named(spawn: Spawn, tmp_path: Path) -> None:
    """The providers' shared contract (provider_contract.py), for rfc2136."""
    from provider_contract import check_a_becomes_cname, check_create_replace_delete

    from ddns_server.mirrors import registry

    require_tool("named")
    # BIND refuses MX targets inside its zone without an address (check-integrity).
    text = UPSTREAM_ZONE + "mail A 192.0.2.25\nbackup A 192.0.2.26\nmx A 192.0.2.27\n"
    upstream = NamedPrimary(spawn, tmp_path / "named", MIRROR_KEY, text).start()
    spec = MirrorSpec(
        "c",
        "rfc2136",
        f"{UPSTREAM}.",
        f"{UPSTREAM}.",
        options={"server": f"127.0.0.1:{upstream.port}", "key": MIRROR_KEY.dnspython_key()},
    )
    provider = registry.create(spec)
    check_create_replace_delete(provider, f"{UPSTREAM}.")
    check_a_becomes_cname(provider, f"{UPSTREAM}.")
    assert (f"outside.{UPSTREAM}.", "A", 300, "203.0.113.7") in upstream.rows()
    provider.close()


def test_a_mirror_added_by_sighup_delivers(mirrored: Setup) -> None:
    """A server started without mirrors has no supervisor (nor the providers'
    code loaded); the first mirror, added by SIGHUP, starts one."""
    server, upstream = mirrored(start=False)
    entry = server.config.pop("mirrors")
    server.write_config()
    with server:
        update(server, ("replace", "home", 300, "A", "192.0.2.77"))
        assert "mirror public" not in server.log_text()
        server.config["mirrors"] = entry
        server.write_config()
        server.reload()
        wait_equal(server, upstream)
        assert (f"home.{ZONE}.", "A", 300, "192.0.2.77") in upstream.rows()
        wait_for(lambda: status(server)["state"] == "in sync", timeout=10, message="in sync")
        assert metric(server, "ddns_mirror_lag_versions", mirror="public") == 0
