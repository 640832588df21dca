"""The fast master-file reader gives dnspython's records, or hands the file over.

Generated zone files cover every form the fast reader takes (and the orders,
duplicates and TTL rules of dnspython's zone); a second corpus holds files it
must hand to dnspython, whose answer (records or error) must then be the one
`records_from_file` gives.
"""

from __future__ import annotations

import random
from pathlib import Path

import dns.exception
import dns.name
import dns.zone
import pytest

from ddns_server.errors import ConfigError
from ddns_server.masterfile import read_records
from ddns_server.store import records_from_file
from ddns_server.zonedata import Record, name_to_wire
from ddns_server.zonefile import records_from_zone

ORIGIN = dns.name.from_text("example.test.")
APEX = name_to_wire(ORIGIN)


def reference(text: str) -> list[Record]:
    zone = dns.zone.from_text(text, ORIGIN, relativize=False, check_origin=True)
    return records_from_zone(zone)


def _ttl_text(rng: random.Random) -> str:
    return rng.choice(["300", "3600", "1h", "2H30m", "1w", "1d2h", "0", "86400", "90s", "10M"])


def _name_text(rng: random.Random, i: int) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return "@"
    if kind == 1:
        return f"Host{i}.example.test."
    if kind == 2:
        return f"a{i}.b.c"
    if kind == 3:
        return f"*.w{i % 3}"
    if kind == 4:
        return f"_sip._tcp.s{i % 4}"
    return f"h{i % 17}"


def _rdata_text(rng: random.Random, rtype: str, i: int) -> str:
    if rtype == "A":
        return f"{rng.randrange(256)}.{rng.randrange(256)}.0.{i % 256}"
    if rtype == "AAAA":
        return rng.choice(
            [f"2001:db8::{i:x}", f"2001:DB8:0:0:0:0:0:{i % 9}", "::1", "::ffff:1.2.3.4"]
        )
    if rtype in ("NS", "PTR"):
        return rng.choice(["ns1", "NS1", "ns.other.test.", f"n{i % 5}.example.test.", "@"])
    if rtype == "MX":
        return (
            f"{rng.choice([0, 10, 65535, 7])} {rng.choice(['mail', 'Mail', 'mx.other.test.', '@'])}"
        )
    if rtype == "SRV":
        target = rng.choice(["srv", "SRV", "t.other."])
        return f"{i % 3} {i % 5} {rng.choice([80, 443, 5060])} {target}"
    if rtype == "TXT":
        return rng.choice(
            [
                '"v=spf1 -all"',
                "plain",
                f'"a; b" "c ( d )" word{i}',
                '""',
                '( "split over" ; a comment\n   "two lines" )',
                '"' + "x" * 255 + '"',
                'a"b"',
            ]
        )
    if rtype == "CAA":
        return rng.choice(['0 issue "ca.example.net"', "128 iodef mailto:a@b.test", '0 "tag" ""'])
    raise AssertionError(rtype)


def generate(seed: int) -> str:
    """A valid zone file in the forms the fast reader takes."""
    rng = random.Random(seed)
    lines: list[str] = ["; generated", ""]
    has_ttl = rng.random() < 0.7
    if rng.random() < 0.5:
        lines.append("$ORIGIN example.test.")
    if has_ttl:
        lines.append(f"$TTL {_ttl_text(rng)} ; default")
    soa_ttl = "" if rng.random() < 0.4 else f"{_ttl_text(rng)} "
    klass = "" if rng.random() < 0.3 else "IN "
    if rng.random() < 0.5:
        lines.append(f"@ {soa_ttl}{klass}SOA ns1 hostmaster 2024010101 3600 600 1w 300")
    else:
        lines.append(
            f"example.test. {soa_ttl}{klass}SOA ns1.example.test. Hostmaster (\n"
            "        7   ; serial\n        1h 10m ; refresh, retry\n"
            "        2w\n        5m )"
        )
    lines.append("  NS ns1  ; owner omitted: the apex")
    lines.append("@ IN NS ns2.example.test.")
    types = ["A", "AAAA", "NS", "PTR", "MX", "SRV", "TXT", "CAA"]
    for i in range(rng.randrange(20, 80)):
        roll = rng.random()
        if roll < 0.05:
            lines.append(
                f"$ORIGIN {rng.choice(['sub', 'deep.sub', 'example.test.', 'x.example.test.'])}"
            )
            continue
        if roll < 0.08:
            lines.append(f"$TTL {_ttl_text(rng)}")
            continue
        if roll < 0.1:
            lines.append(rng.choice(["", "   ", "; a comment", "\t; indented comment"]))
            continue
        if roll < 0.13:
            lines.append(
                f"cn{i} {rng.choice(['', '60 ', 'IN '])}CNAME {rng.choice(['target', 'x.other.'])}"
            )
            continue
        rtype = rng.choice(types)
        after_cname = lines[-1].startswith("cn")
        owner = "" if rng.random() < 0.15 and not after_cname else _name_text(rng, i)
        ttl = _ttl_text(rng) if rng.random() < 0.5 else ""
        klass = rng.choice(["", "IN", "in"])
        fields = [ttl, klass] if rng.random() < 0.7 else [klass, ttl]
        head = " ".join(f for f in fields if f)
        rtype_text = rtype.lower() if rng.random() < 0.1 else rtype
        rdata = _rdata_text(rng, rtype, i)
        lead = "\t" if not owner else ""
        line = f"{lead}{owner} {head} {rtype_text} {rdata}".replace("  ", " ")
        if rng.random() < 0.2:
            line += " ; trailing comment"
        if rng.random() < 0.05:
            line = line.replace(f" {rtype_text} ", f" {rtype_text} ( ", 1) + "\n )"
        lines.append(line)
        if rng.random() < 0.1:
            lines.append(line)  # an exact duplicate
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(300))
def test_generated_files_read_as_dnspython_reads_them(seed: int) -> None:
    text = generate(seed)
    try:
        expected = reference(text)
    except dns.exception.DNSException:
        # a generated line the zone refuses (e.g. a relative $ORIGIN outside
        # the zone): the fast reader must hand it over
        assert read_records(text, APEX) is None
        return
    fast = read_records(text, APEX)
    assert fast is not None, text
    assert fast == expected, text


def test_generated_corpus_is_mostly_taken_by_the_fast_reader() -> None:
    taken = sum(read_records(generate(seed), APEX) is not None for seed in range(100))
    assert taken >= 80


BASE = "$TTL 300\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n"


@pytest.mark.parametrize(
    "text",
    [
        # the order dnspython keeps: owners first seen, RRsets last added; case of the first
        BASE + "a A 10.0.0.1\na TXT x\nA A 10.0.0.2\nb MX 1 a\na TXT y\n",
        # duplicates as dnspython compares them (names case-insensitively), TTL the smallest
        BASE + "m MX 1 Mail\nm 60 MX 1 mail\nm 600 MX 2 mail\nn NS A.b.\nn NS a.B.\n",
        # no $TTL: the last TTL given, else the SOA's minimum
        "@ 600 SOA ns1 h 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\nx 30 A 1.1.1.1\ny A 1.1.1.2\n",
        "@ SOA ns1 h 1 2 3 4 1h\n@ NS ns1\nns1 A 192.0.2.1\n",
        "$TTL 1h\n@ IN 60 SOA ns1 h 1 2 3 4 5\n@ NS ns1\n",
        # parentheses, comments, quoted delimiters
        BASE + 't TXT ( "a;b" ; c\n  "(d)" )\n',
        BASE
        + "$ORIGIN sub.example.test.\nx A 1.2.3.4\n@ NS ns1\n$ORIGIN example.test.\ny A 1.2.3.5\n",
        BASE + "p PTR .\n",
    ],
)
def test_forms_and_orders(text: str) -> None:
    fast = read_records(text, APEX)
    assert fast is not None
    assert fast == reference(text)


@pytest.mark.parametrize(
    "extra",
    [
        "$GENERATE 1-3 g$ A 10.0.0.$\n",
        "esc\\.aped A 10.0.0.1\n",
        't TXT "a\\"b"\n',
        "g TYPE65534 \\# 2 abcd\n",
        "h HINFO cpu os\n",
        "s SSHFP 1 1 0123456789abcdef0123456789abcdef01234567\n",
        "x CH A 10.0.0.1\n",
        "x CLASS1 A 10.0.0.1\n",
        "x TYPE1 10.0.0.1\n",
        "ünï A 10.0.0.1\n",
        't TXT "over\ntwo lines"\n',
        "other.test. A 10.0.0.9\n",
        "c CNAME a\nc A 10.0.0.1\n",
        "c CNAME a\nc CNAME b\n",
        "@ SOA ns2 h 9 2 3 4 5\n",
        "x A 01.2.3.4\n",
        "x A 1.2.3\n",
        "x A 256.1.1.1\n",
        "x A 1.2.3.4 5\n",
        "x AAAA 1.2.3.4\n",
        "x MX 65536 mail\n",
        "x " + "a" * 64 + " A 10.0.0.1\n",
        "x CAA 0 is-sue x\n",
        'x CAA 0 issue "' + "v" * 300 + '"\n',
        'x TXT "' + "t" * 256 + '"\n',
        "x DNAME y\n",
        "x 99999999999 A 10.0.0.1\n",
        "x IN\n",
        "\tx A 10.0.0.1\n$TTL\n",
    ],
)
def test_unusual_forms_go_to_dnspython(extra: str, tmp_path: Path) -> None:
    text = BASE + extra
    assert read_records(text, APEX) is None
    path = tmp_path / "z.zone"
    path.write_text(text, encoding="utf-8")
    try:
        expected: list[Record] | str = reference(text)
    except (dns.exception.DNSException, ValueError):
        expected = "error"
    try:
        got: list[Record] | str = records_from_file(path, ORIGIN)
    except ConfigError:
        got = "error"
    assert got == expected


def test_include_goes_to_dnspython(tmp_path: Path) -> None:
    (tmp_path / "inc.zone").write_text("inc A 10.0.0.7\n")
    text = BASE + f"$INCLUDE {tmp_path / 'inc.zone'}\n"
    assert read_records(text, APEX) is None


@pytest.mark.parametrize(
    "text",
    [
        "@ NS ns1\nns1 A 192.0.2.1\n",  # no SOA
        "$TTL 1\n@ SOA ns1 h 1 2 3 4 5\nns1 A 192.0.2.1\n",  # no NS
        "x A 10.0.0.1\n",  # no TTL at all
    ],
)
def test_zones_dnspython_refuses_are_handed_over(text: str) -> None:
    assert read_records(text, APEX) is None


def test_errors_keep_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.zone"
    path.write_text(BASE + "ok A 10.0.0.1\nbad A 10.0.0.300\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        records_from_file(path, ORIGIN)
    assert str(e.value.problems[0]).startswith(f"{path}:6:")


def test_large_file_is_read_fast_and_equal(tmp_path: Path) -> None:
    lines = [BASE] + [
        f"h{i:05d} 300 A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(5000)
    ]
    text = "\n".join(lines) + "\n"
    path = tmp_path / "big.zone"
    path.write_text(text, encoding="utf-8")
    assert read_records(text, APEX) == reference(text)
    assert records_from_file(path, ORIGIN) == reference(text)
