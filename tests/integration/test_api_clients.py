"""Real, unmodified clients of /client/v4 and /api/v1 on loopback.

Cloudflare's official Python SDK (`cloudflare`, base_url), octoDNS with
octodns-cloudflare (its `api_url`) run as `octodns-sync`, and ddclient's
`protocol=cloudflare` over HTTPS (`server=127.0.0.1:PORT/client/v4`). Each
run is checked in the served zone with dig and in `journal log` (channel
api, who = the token's name). Tokens are created with the CLI while the
server runs: it picks them up at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import ServerProcess, example_zone_text, require_tool, run, wait_for

ZONE = "dyn.example.test"
OCTO = "octo.example.test"
OCTO_ZONE = f"""$ORIGIN {OCTO}.
$TTL 3600
@ IN SOA ns1 hostmaster (2026010101 3600 600 604800 300)
  IN NS ns1
ns1 IN A 192.0.2.53
"""


def dig(server: ServerProcess, name: str, rdtype: str = "A") -> list[str]:
    proc = run(
        [require_tool("dig"), "+short", "@127.0.0.1", "-p", str(server.dns_port), name, rdtype]
    )
    assert proc.returncode == 0, proc.stderr
    return sorted(line for line in proc.stdout.splitlines() if line)


def token(server: ServerProcess, name: str, zone: str = ZONE, *extra: str) -> str:
    proc = server.cli("token", "create", name, "--zone", zone, *extra)
    assert proc.returncode == 0, proc.stderr
    secret = proc.stdout.strip()
    assert len(secret) == 40 and "\n" not in secret
    return secret


def api_versions(server: ServerProcess, zone: str = ZONE) -> list[dict[str, object]]:
    proc = server.cli("journal", "log", zone, "--json")
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


@pytest.fixture
def served(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    require_tool("dig")
    return server_factory(
        {ZONE: example_zone_text(), OCTO: OCTO_ZONE},
        {"trusted_proxies": []},
        https=True,
    )


def test_cloudflare_sdk_creates_changes_and_deletes(served: ServerProcess) -> None:
    cloudflare = pytest.importorskip("cloudflare")
    server = served
    secret = token(server, "sdk", ZONE, "--names", "*.sdk,sdk", "--types", "A,TXT,MX")
    cf = cloudflare.Cloudflare(
        api_token=secret, base_url=f"{server.http_url}/client/v4", max_retries=0
    )
    assert cf.user.tokens.verify().status == "active"
    zones = list(cf.zones.list(name=ZONE))
    assert [z.name for z in zones] == [ZONE]
    zone_id = zones[0].id
    assert cf.zones.get(zone_id=zone_id).name == ZONE
    serial = server.soa_serial()

    created = cf.dns.records.create(
        zone_id=zone_id, name=f"a.sdk.{ZONE}", type="A", content="192.0.2.10", ttl=120
    )
    assert created is not None and created.content == "192.0.2.10" and len(created.id) == 32
    assert dig(server, f"a.sdk.{ZONE}") == ["192.0.2.10"]
    txt = cf.dns.records.create(
        zone_id=zone_id, name=f"sdk.{ZONE}", type="TXT", content="hello world", ttl=1
    )
    assert txt is not None
    assert dig(server, f"sdk.{ZONE}", "TXT") == ['"hello world"']
    mx = cf.dns.records.create(
        zone_id=zone_id, name=f"sdk.{ZONE}", type="MX", content=f"mail.{ZONE}", priority=5, ttl=300
    )
    assert mx is not None and mx.priority == 5
    assert dig(server, f"sdk.{ZONE}", "MX") == [f"5 mail.{ZONE}."]

    listed = list(cf.dns.records.list(zone_id=zone_id, name={"exact": f"a.sdk.{ZONE}"}, type="A"))
    assert [r.id for r in listed] == [created.id]
    got = cf.dns.records.get(dns_record_id=created.id, zone_id=zone_id)
    assert got is not None and got.name == f"a.sdk.{ZONE}"

    updated = cf.dns.records.update(
        dns_record_id=created.id,
        zone_id=zone_id,
        name=f"a.sdk.{ZONE}",
        type="A",
        content="192.0.2.11",
        ttl=120,
    )
    assert updated is not None and updated.content == "192.0.2.11"
    assert dig(server, f"a.sdk.{ZONE}") == ["192.0.2.11"]
    patched = cf.dns.records.edit(
        dns_record_id=updated.id, zone_id=zone_id, content="192.0.2.12", type="A",
        name=f"a.sdk.{ZONE}",
    )  # fmt: skip
    assert patched is not None and patched.content == "192.0.2.12" and patched.ttl == 120
    assert dig(server, f"a.sdk.{ZONE}") == ["192.0.2.12"]

    for record in (patched, txt, mx):
        deleted = cf.dns.records.delete(dns_record_id=record.id, zone_id=zone_id)
        assert deleted is not None and deleted.id == record.id
    assert dig(server, f"a.sdk.{ZONE}") == []
    assert dig(server, f"sdk.{ZONE}", "TXT") == []

    # Outside the token's names: a Cloudflare-style 403, nothing changed.
    before = server.soa_serial()
    with pytest.raises(cloudflare.PermissionDeniedError) as refused:
        cf.dns.records.create(zone_id=zone_id, name=f"www.{ZONE}", type="A", content="192.0.2.9")
    assert "www.dyn.example.test" in str(refused.value)
    assert server.soa_serial() == before

    versions = [v for v in api_versions(server) if v["serial"] > serial]
    assert len(versions) == 8  # 3 creates, update, patch, 3 deletes: one version each
    assert {(v["channel"], v["who"]) for v in versions} == {("api", "sdk")}


def test_octodns_syncs_a_zone(served: ServerProcess, tmp_path: Path) -> None:
    pytest.importorskip("octodns_cloudflare")
    server = served
    secret = token(server, "octo", OCTO)
    records = tmp_path / "records"
    records.mkdir()

    def sync(content: str) -> str:
        (records / f"{OCTO}.yaml").write_text(content)
        config = tmp_path / "octodns.yaml"
        config.write_text(
            "providers:\n"
            "  yaml:\n"
            "    class: octodns.provider.yaml.YamlProvider\n"
            f"    directory: {records}\n"
            "  ours:\n"
            "    class: octodns_cloudflare.CloudflareProvider\n"
            "    token: env/OCTO_TOKEN\n"
            f"    api_url: {server.http_url}/client/v4\n"
            "    pagerules: false\n"
            "    retry_count: 0\n"
            "    min_ttl: 60\n"
            "zones:\n"
            f"  {OCTO}.:\n"
            "    sources: [yaml]\n"
            "    targets: [ours]\n"
        )
        proc = run(
            [sys.executable, "-m", "octodns.cmds.sync", "--config-file", str(config), "--doit"],
            timeout=120,
            env={**__import__("os").environ, "OCTO_TOKEN": secret},
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    sync(
        "alias:\n  type: CNAME\n  value: www.octo.example.test.\n"
        "txt:\n  type: TXT\n  value: v=spf1 -all\n"
        "www:\n  ttl: 300\n  type: A\n  values: [192.0.2.1, 192.0.2.2]\n"
    )
    assert dig(server, f"www.{OCTO}") == ["192.0.2.1", "192.0.2.2"]
    assert dig(server, f"txt.{OCTO}", "TXT") == ['"v=spf1 -all"']
    assert dig(server, f"alias.{OCTO}", "CNAME") == [f"www.{OCTO}."]
    sync(
        "alias:\n  type: CNAME\n  value: txt.octo.example.test.\n"
        "www:\n  ttl: 300\n  type: A\n  values: [192.0.2.1, 192.0.2.3]\n"
    )
    assert dig(server, f"www.{OCTO}") == ["192.0.2.1", "192.0.2.3"]
    assert dig(server, f"txt.{OCTO}", "TXT") == []
    assert dig(server, f"alias.{OCTO}", "CNAME") == [f"txt.{OCTO}."]
    assert dig(server, OCTO, "NS") == [f"ns1.{OCTO}."]  # the apex NS stayed
    changed = [v for v in api_versions(server, OCTO) if v["channel"] != "seed"]
    assert changed and {(v["channel"], v["who"]) for v in changed} == {("api", "octo")}


def test_ddclient_cloudflare_protocol_updates_a_record(
    served: ServerProcess, tmp_path: Path
) -> None:
    require_tool("ddclient")
    import urllib.request

    server = served
    secret = token(server, "router", ZONE, "--names", "gw", "--types", "A")
    # ddclient only changes existing records: create it first through /api/v1.
    body = json.dumps({"ttl": 60, "values": ["192.0.2.40"]}).encode()
    request = urllib.request.Request(
        f"{server.http_url}/api/v1/zones/{ZONE}/records/gw/A",
        data=body,
        method="PUT",
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - loopback
        assert reply.status == 200
    assert dig(server, f"gw.{ZONE}") == ["192.0.2.40"]
    conf = tmp_path / "ddclient.conf"
    conf.write_text(
        "daemon=0\nsyslog=no\nssl=yes\n"
        f"ssl_ca_file={server.data_dir / 'tls' / 'cert.pem'}\n"
        "protocol=cloudflare\n"
        f"server=127.0.0.1:{server.https_port}/client/v4\n"
        f"zone={ZONE}\n"
        "login=token\n"
        f"password={secret}\n"
        "use=ip, ip=198.51.100.77\n"
        f"gw.{ZONE}\n"
    )
    conf.chmod(0o600)
    proc = run(
        [require_tool("ddclient"), "-daemon=0", "-foreground", "-file", str(conf),
         "-cache", str(tmp_path / "cache"), "-verbose", "-noquiet"],
        timeout=60,
        cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert "SUCCESS" in out, out
    wait_for(lambda: dig(server, f"gw.{ZONE}") == ["198.51.100.77"], message="ddclient's address")
    newest = api_versions(server)[0]
    assert (newest["channel"], newest["who"]) == ("api", "router")
