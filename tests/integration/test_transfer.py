"""AXFR and IXFR out of the running server, driven by the real `dig`.

Access by network and by TSIG key (`allow_transfer`), refusals (checked with
dnspython for the exact rcode, and that nothing changed), IXFR from the
journal after `zone import` made new versions, and SIGHUP taking new ACLs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.zone
import pytest
from conftest import ServerFactory
from harness import (
    EXAMPLE_ZONE_NAME,
    DigResult,
    ServerProcess,
    TsigKey,
    dig,
    example_zone_text,
    require_tool,
    wait_for,
)

ZONE = EXAMPLE_ZONE_NAME
XFR_KEY = TsigKey.generate("xfr-key")
OTHER_KEY = TsigKey.generate("other-key", "hmac-sha512")

Row = tuple[str, int, str, str]  # (owner lower-case, ttl, type, rdata canonical text)


def rows(records: Iterable[tuple[str, int, str, str, str]]) -> list[Row]:
    """dig's records with the rdata text normalised by dnspython."""
    out = []
    for name, ttl, _rdclass, rdtype, rdata in records:
        rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata)
        out.append((name.lower(), ttl, rdtype, rd.to_text()))
    return out


def exported_rows(server: ServerProcess) -> set[Row]:
    """The zone as `ddns-server zone export` prints it."""
    proc = server.cli("zone", "export", ZONE)
    assert proc.returncode == 0, proc.stderr
    zone = dns.zone.from_text(proc.stdout, ZONE, relativize=False)
    out = set()
    for name, rdataset in zone.iterate_rdatasets():
        for rd in rdataset:
            out.add(
                (
                    name.to_text().lower(),
                    rdataset.ttl,
                    dns.rdatatype.to_text(rdataset.rdtype),
                    rd.to_text(),
                )
            )
    return out


def axfr_rows(result: DigResult) -> list[Row]:
    assert result.xfr is not None and not result.transfer_failed, result.raw
    got = rows(result.answer)
    assert got[0][2] == "SOA" and got[-1][2] == "SOA" and got[0] == got[-1]
    return got


def transfer_rcode(
    server: ServerProcess,
    rdtype: str = "AXFR",
    *,
    source: str = "127.0.0.1",
    key: TsigKey | None = None,
    name: str = ZONE,
) -> tuple[int, dns.message.Message]:
    """The rcode of a refused/failed transfer, read with dnspython (dig hides it)."""
    query = dns.message.make_query(name, rdtype)
    if key is not None:
        query.use_tsig(key.keyring(), keyname=key.name)
    response = dns.query.tcp(query, "127.0.0.1", port=server.dns_port, source=source, timeout=5)
    return response.rcode(), response


def write_zone(path: Path, serial: int, extra: str) -> Path:
    text = example_zone_text().replace("2026112501  ; serial", f"{serial}  ; serial")
    path.write_text(text + extra)
    return path


@pytest.fixture
def keyed_server(server_factory: ServerFactory) -> ServerProcess:
    """Transfers allowed from 127.0.0.2 only, or with xfr-key from anywhere."""
    require_tool("dig")
    return server_factory(
        {ZONE: example_zone_text()},
        {"keys": [XFR_KEY.config(), OTHER_KEY.config()]},
        zone_extra={ZONE: {"allow_transfer": ["127.0.0.2/32", "key:xfr-key"]}},
    )


def test_axfr_allowed_by_network(example_server: ServerProcess) -> None:
    result = dig(example_server, "AXFR", ZONE)
    got = axfr_rows(result)
    assert set(got) == exported_rows(example_server)
    assert len(got) == len(set(got)) + 1  # every record once, the SOA twice
    assert result.protocol == "TCP"


def test_axfr_refused_for_other_addresses(keyed_server: ServerProcess) -> None:
    serial = keyed_server.soa_serial()
    before = exported_rows(keyed_server)
    result = dig(keyed_server, "AXFR", ZONE)
    assert result.transfer_failed and not result.answer
    rcode, _ = transfer_rcode(keyed_server)
    assert rcode == dns.rcode.REFUSED
    rcode, _ = transfer_rcode(keyed_server, "IXFR")
    assert rcode == dns.rcode.REFUSED
    # From the admitted address the same transfer works.
    assert set(axfr_rows(dig(keyed_server, "-b", "127.0.0.2", "AXFR", ZONE))) == before
    assert keyed_server.soa_serial() == serial
    assert exported_rows(keyed_server) == before


def test_axfr_allowed_by_tsig_key(keyed_server: ServerProcess, tmp_path: Path) -> None:
    keyfile = XFR_KEY.write(tmp_path / "xfr.key")
    for args in (("-k", str(keyfile)), ("-y", XFR_KEY.dig_arg())):
        result = dig(keyed_server, *args, "AXFR", ZONE)
        assert set(axfr_rows(result)) == exported_rows(keyed_server)
        # dig verified the signature; a TSIG record ends the transfer.
        assert result.tsig and result.tsig[-1][0].rstrip(".") == "xfr-key"
        assert "NOERROR" in result.tsig[-1][4]


def test_signed_transfer_with_other_keys_refused(keyed_server: ServerProcess) -> None:
    serial = keyed_server.soa_serial()
    before = exported_rows(keyed_server)
    # A configured key that allow_transfer does not name: REFUSED, signed.
    result = dig(keyed_server, "-y", OTHER_KEY.dig_arg(), "AXFR", ZONE)
    assert result.transfer_failed and not result.answer
    rcode, response = transfer_rcode(keyed_server, key=OTHER_KEY)
    assert rcode == dns.rcode.REFUSED and response.had_tsig
    # A key the server does not know: NOTAUTH with BADKEY (RFC 8945 §5.2.1).
    stranger = TsigKey.generate("stranger-key")
    result = dig(keyed_server, "-y", stranger.dig_arg(), "AXFR", ZONE)
    assert result.transfer_failed and not result.answer
    # The right name with a wrong secret: BADSIG.
    forged = TsigKey("xfr-key", TsigKey.generate("x").secret)
    result = dig(keyed_server, "-y", forged.dig_arg(), "AXFR", ZONE)
    assert result.transfer_failed and not result.answer
    assert any("BADSIG" in r[4] for r in result.tsig), result.raw
    with pytest.raises(dns.tsig.PeerBadKey):
        transfer_rcode(keyed_server, key=stranger)
    assert keyed_server.soa_serial() == serial
    assert exported_rows(keyed_server) == before


def test_unknown_zone_is_notauth(example_server: ServerProcess) -> None:
    for name in ("example.org", "www.dyn.example.test"):
        rcode, _ = transfer_rcode(example_server, name=name)
        assert rcode == dns.rcode.NOTAUTH, name


def test_ixfr_after_zone_import(example_server: ServerProcess, tmp_path: Path) -> None:
    first = example_server.soa_serial()
    zone_file = write_zone(tmp_path / "v2.zone", first + 1, "new1 60 IN A 192.0.2.201\n")
    proc = example_server.cli("zone", "import", ZONE, str(zone_file))
    assert proc.returncode == 0, proc.stderr
    second = int(proc.stdout.strip())
    zone_file = write_zone(tmp_path / "v3.zone", first + 2, "new2 60 IN A 192.0.2.202\n")
    zone_file.write_text(zone_file.read_text().replace("192.0.2.10\n", "192.0.2.110\n"))
    assert example_server.cli("zone", "import", ZONE, str(zone_file)).returncode == 0
    third = wait_for(
        lambda: example_server.soa_serial() if example_server.soa_serial() > second else 0,
        timeout=2,
        message="the running server to pick up the imports",
    )

    result = dig(example_server, f"IXFR={first}", ZONE)
    got = rows(result.answer)
    soas = [int(r[3].split()[2]) for r in got if r[2] == "SOA"]
    assert soas == [third, first, third, third]
    deletions = got[2 : got.index(got[0], 1)]
    additions = got[got.index(got[0], 1) + 1 : -1]
    assert {(r[0], r[3]) for r in deletions} == {("www.dyn.example.test.", "192.0.2.10")}
    assert {(r[0], r[3]) for r in additions} == {
        ("new2.dyn.example.test.", "192.0.2.202"),
        ("www.dyn.example.test.", "192.0.2.110"),
    }  # new1 came and went: condensed away

    # Up to date: one SOA. Over UDP: one SOA too (as BIND).
    result = dig(example_server, f"IXFR={third}", ZONE)
    assert [r[2] for r in rows(result.answer)] == ["SOA"]
    result = dig(example_server, "+notcp", f"IXFR={first}", ZONE)
    assert result.protocol == "UDP"
    assert [(r[2], int(r[3].split()[2])) for r in rows(result.answer)] == [("SOA", third)]

    # A serial the journal never held: the whole zone, AXFR-style.
    result = dig(example_server, f"IXFR={first - 100}", ZONE)
    got = rows(result.answer)
    assert got[1][2] != "SOA" and set(got) == exported_rows(example_server)


def test_reload_takes_new_allow_transfer(example_server: ServerProcess) -> None:
    assert axfr_rows(dig(example_server, "AXFR", ZONE))
    example_server.config["zones"][0]["allow_transfer"] = ["127.0.0.2/32"]
    example_server.write_config()
    example_server.reload()
    wait_for(
        lambda: transfer_rcode(example_server)[0] == dns.rcode.REFUSED,
        timeout=5,
        message="SIGHUP to close transfers from 127.0.0.1",
    )
    assert axfr_rows(dig(example_server, "-b", "127.0.0.2", "AXFR", ZONE))
