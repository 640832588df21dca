"""The harness's pure helpers: ports, dig output parsing, config generation.

Nothing here starts the server; the dig samples are captured dig 9.18 output.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import (
    ServerProcess,
    TsigKey,
    deep_merge,
    free_port,
    parse_dig,
    require_tool,
    run,
    wait_for,
)

SOA = """
; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @127.0.0.1 -p 15353 +time=2 +tries=1 dyn.example.test SOA
; (1 server found)
;; global options: +cmd
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 35107
;; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1
;; WARNING: recursion requested but not available

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
; COOKIE: 147146c1c6646580010000006b072cbbd48b144960adb253 (good)
;; QUESTION SECTION:
;dyn.example.test.\t\tIN\tSOA

;; ANSWER SECTION:
dyn.example.test.\t3600\tIN\tSOA\tns1.dyn.example.test. hostmaster.dyn.example.test. \
2026112501 3600 600 604800 300

;; Query time: 0 msec
;; SERVER: 127.0.0.1#15353(127.0.0.1) (UDP)
;; WHEN: Wed Nov 25 18:45:15 UTC 2026
;; MSG SIZE  rcvd: 124

"""

NXDOMAIN = """
; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @127.0.0.1 -p 15353 nope.dyn.example.test A
;; global options: +cmd
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 55825
;; flags: qr aa rd; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1
;; WARNING: recursion requested but not available

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags: do; udp: 1232
;; QUESTION SECTION:
;nope.dyn.example.test.\t\tIN\tA

;; AUTHORITY SECTION:
dyn.example.test.\t300\tIN\tSOA\tns1.dyn.example.test. hostmaster.dyn.example.test. \
2026112501 3600 600 604800 300

;; Query time: 0 msec
;; SERVER: 127.0.0.1#15353(127.0.0.1) (UDP)
;; MSG SIZE  rcvd: 129
"""

REFERRAL_NOEDNS = """
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 43717
;; flags: qr rd; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1
;; WARNING: recursion requested but not available

;; QUESTION SECTION:
;x.sub.dyn.example.test.\t\tIN\tA

;; AUTHORITY SECTION:
sub.dyn.example.test.\t3600\tIN\tNS\tns.sub.dyn.example.test.

;; ADDITIONAL SECTION:
ns.sub.dyn.example.test. 3600\tIN\tA\t192.0.2.53

;; Query time: 4 msec
;; SERVER: 127.0.0.1#15353(127.0.0.1) (UDP)
;; MSG SIZE  rcvd: 112
"""

MULTILINE_TCP = """
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 12972
;; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
;; QUESTION SECTION:
;dyn.example.test.\tIN SOA

;; ANSWER SECTION:
dyn.example.test.\t3600 IN\tSOA ns1.dyn.example.test. hostmaster.dyn.example.test. (
\t\t\t\t2026112501 ; serial
\t\t\t\t3600       ; refresh (1 hour)
\t\t\t\t600        ; retry (10 minutes)
\t\t\t\t604800     ; expire (1 week)
\t\t\t\t300        ; minimum (5 minutes)
\t\t\t\t)

;; Query time: 0 msec
;; SERVER: 127.0.0.1#15353(127.0.0.1) (TCP)
;; MSG SIZE  rcvd: 124
"""

TSIG_BADKEY = """;; Couldn't verify signature: tsig indicates error

; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @127.0.0.1 -p 15353 -y hmac-sha256:k2:c2Vj .
; (1 server found)
;; global options: +cmd
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOTAUTH, id: 65144
;; flags: qr rd; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 2
;; WARNING: recursion requested but not available

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
;; QUESTION SECTION:
;dyn.example.test.\t\tIN\tSOA

;; TSIG PSEUDOSECTION:
k2.\t\t\t0\tANY\tTSIG\thmac-sha256. 1795632321 300 0 65144 BADKEY 0 \n
;; Query time: 0 msec
;; SERVER: 127.0.0.1#15353(127.0.0.1) (UDP)
;; MSG SIZE  rcvd: 116
;; WARNING -- Some TSIG could not be validated
"""

AXFR = """
; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @127.0.0.1 -p 15353 dyn.example.test AXFR
; (1 server found)
;; global options: +cmd
dyn.example.test.\t3600\tIN\tSOA\tns1.dyn.example.test. hostmaster.dyn.example.test. \
2026112501 3600 600 604800 300
dyn.example.test.\t3600\tIN\tNS\tns1.dyn.example.test.
dyn.example.test.\t3600\tIN\tTXT\t"v=spf1  mx -all"
*.wild.dyn.example.test. 3600\tIN\tA\t192.0.2.80
dyn.example.test.\t3600\tIN\tSOA\tns1.dyn.example.test. hostmaster.dyn.example.test. \
2026112501 3600 600 604800 300
;; Query time: 0 msec
;; SERVER: 127.0.0.1#15353(127.0.0.1) (TCP)
;; WHEN: Wed Nov 25 18:45:16 UTC 2026
;; XFR size: 5 records (messages 1, bytes 227)
"""

AXFR_FAILED = """
; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @127.0.0.1 -p 15353 dyn.example.test AXFR
; (1 server found)
;; global options: +cmd
; Transfer failed.
"""

TWO = """
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 44051
;; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1

;; QUESTION SECTION:
;www.dyn.example.test.\t\tIN\tA

;; ANSWER SECTION:
www.dyn.example.test.\t3600\tIN\tA\t192.0.2.10

;; SERVER: 127.0.0.1#15353(127.0.0.1) (UDP)
;; MSG SIZE  rcvd: 65

;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 19053
;; flags: qr aa rd; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 0

;; QUESTION SECTION:
;mail.dyn.example.test.\t\tIN\tAAAA

;; SERVER: 127.0.0.1#15353(127.0.0.1) (UDP)
;; MSG SIZE  rcvd: 106
"""

TRUNCATED_RETRY = """;; Truncated, retrying in TCP mode.

; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @127.0.0.1 -p 15353 +noedns big.dyn.example.test TXT
;; global options: +cmd
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 37582
;; flags: qr aa rd; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 0

;; QUESTION SECTION:
;big.dyn.example.test.\t\tIN\tTXT

;; ANSWER SECTION:
big.dyn.example.test.\t3600\tIN\tTXT\t"record number 11 ; padding" "two"
big.dyn.example.test.\t3600\tIN\tTXT\t"say \\"hi\\""

;; SERVER: 127.0.0.1#15353(127.0.0.1) (TCP)
;; MSG SIZE  rcvd: 1450
"""

TC_IGNORED = """
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 10680
;; flags: qr aa tc rd; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 0

;; QUESTION SECTION:
;big.dyn.example.test.\t\tIN\tTXT

;; SERVER: 127.0.0.1#15353(127.0.0.1) (UDP)
;; MSG SIZE  rcvd: 38
"""

BADVERS = """
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: BADVERS, id: 60207
;; flags: qr rd; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; MBZ: 0x0001, udp: 4096
; EDE: 20 (Not Authoritative)
;; QUESTION SECTION:
;dyn.example.test.\t\tIN\tSOA

;; SERVER: 127.0.0.1#15353(127.0.0.1) (UDP)
"""

TIMEOUT = """
; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @127.0.0.1 -p 15398 +time=1 +tries=1 dyn.example.test SOA
; (1 server found)
;; global options: +cmd
;; no servers could be reached
"""

NOTIMP_STATUS = """
;; Got answer:
;; ->>HEADER<<- opcode: STATUS, status: NOTIMP, id: 44816
;; flags: qr; QUERY: 0, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
;; Query time: 0 msec
;; SERVER: 127.0.0.1#15353(127.0.0.1) (UDP)
"""

SOA_RDATA = "ns1.dyn.example.test. hostmaster.dyn.example.test. 2026112501 3600 600 604800 300"


# -- ports


def test_free_port_is_free_for_udp_and_tcp() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", port))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", port))


@pytest.mark.parametrize("kind", ["tcp", "udp"])
def test_free_port_single_kind(kind: str) -> None:
    port = free_port(kind)
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, sock_type) as s:
        s.bind(("127.0.0.1", port))


def test_free_port_never_repeats() -> None:
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)


def test_free_port_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError):
        free_port("sctp")


# -- dig parsing


def test_parse_soa_answer() -> None:
    r = parse_dig(SOA, returncode=0)
    assert r.opcode == "QUERY"
    assert r.status == r.rcode == "NOERROR"
    assert r.id == 35107
    assert r.flags == {"qr", "aa", "rd"}
    assert r.counts == {"QUERY": 1, "ANSWER": 1, "AUTHORITY": 0, "ADDITIONAL": 1}
    assert r.question == [("dyn.example.test.", "IN", "SOA")]
    assert r.answer == [("dyn.example.test.", 3600, "IN", "SOA", SOA_RDATA)]
    assert r.authority == [] and r.additional == [] and r.tsig == []
    assert r.edns.present and r.edns.version == 0 and r.edns.udp == 1232
    assert r.edns.flags == set()
    assert r.edns.options["COOKIE"].endswith("(good)")
    assert (r.server, r.port, r.protocol, r.msg_size) == ("127.0.0.1", 15353, "UDP", 124)
    assert "WARNING: recursion requested but not available" in r.notes
    assert r.responded and not r.timed_out and not r.truncated_retry
    assert r.rdata("SOA") == [SOA_RDATA]
    assert r.records("answer", "soa", "DYN.example.test") == r.answer
    assert r.returncode == 0
    assert str(r) == SOA


def test_parse_nxdomain_with_do_flag() -> None:
    r = parse_dig(NXDOMAIN)
    assert r.status == "NXDOMAIN"
    assert r.answer == []
    assert r.authority == [("dyn.example.test.", 300, "IN", "SOA", SOA_RDATA)]
    assert r.edns.flags == {"do"}


def test_parse_referral_without_edns() -> None:
    r = parse_dig(REFERRAL_NOEDNS)
    assert "aa" not in r.flags
    assert r.authority == [("sub.dyn.example.test.", 3600, "IN", "NS", "ns.sub.dyn.example.test.")]
    assert r.additional == [("ns.sub.dyn.example.test.", 3600, "IN", "A", "192.0.2.53")]
    assert not r.edns.present and r.edns.udp is None


def test_parse_multiline_record() -> None:
    r = parse_dig(MULTILINE_TCP)
    assert r.answer == [("dyn.example.test.", 3600, "IN", "SOA", SOA_RDATA)]
    assert r.question == [("dyn.example.test.", "IN", "SOA")]
    assert r.protocol == "TCP"


def test_parse_tsig_error() -> None:
    r = parse_dig(TSIG_BADKEY)
    assert r.status == "NOTAUTH"
    assert r.additional == []
    assert len(r.tsig) == 1
    name, ttl, rdclass, rdtype, rdata = r.tsig[0]
    assert (name, ttl, rdclass, rdtype) == ("k2.", 0, "ANY", "TSIG")
    assert rdata.split()[-2] == "BADKEY"
    assert "Couldn't verify signature: tsig indicates error" in r.notes


def test_parse_axfr() -> None:
    r = parse_dig(AXFR)
    assert r.status is None and r.responded
    assert [rec[3] for rec in r.answer] == ["SOA", "NS", "TXT", "A", "SOA"]
    # whitespace inside quotes is kept
    assert r.rdata("TXT") == ['"v=spf1  mx -all"']
    assert r.records(name="*.wild.dyn.example.test.")[0][4] == "192.0.2.80"
    assert r.xfr == {"records": 5, "messages": 1, "bytes": 227}
    assert not r.transfer_failed


def test_parse_axfr_failed() -> None:
    r = parse_dig(AXFR_FAILED)
    assert r.transfer_failed and not r.responded


def test_parse_several_responses() -> None:
    r = parse_dig(TWO)
    assert r.status == "NOERROR" and r.rdata("A") == ["192.0.2.10"]
    assert len(r.more) == 1
    second = r.more[0]
    assert second.status == "NXDOMAIN" and second.id == 19053
    assert second.question == [("mail.dyn.example.test.", "IN", "AAAA")]
    assert second.answer == []


def test_parse_truncated_then_tcp() -> None:
    r = parse_dig(TRUNCATED_RETRY)
    assert r.truncated_retry and r.protocol == "TCP" and "tc" not in r.flags
    assert r.rdata("TXT") == ['"record number 11 ; padding" "two"', '"say \\"hi\\""']


def test_parse_tc_flag() -> None:
    r = parse_dig(TC_IGNORED)
    assert "tc" in r.flags and r.answer == []


def test_parse_badvers_and_unusual_opt_lines() -> None:
    r = parse_dig(BADVERS)
    assert r.status == "BADVERS"
    assert r.edns.version == 0 and r.edns.udp == 4096 and r.edns.flags == set()
    assert r.edns.options["EDE"] == "20 (Not Authoritative)"


def test_parse_opcode_status_without_question() -> None:
    r = parse_dig(NOTIMP_STATUS)
    assert (r.opcode, r.status, r.question) == ("STATUS", "NOTIMP", [])


def test_parse_timeout() -> None:
    r = parse_dig(
        TIMEOUT,
        returncode=9,
        stderr=";; communications error to 127.0.0.1#15398: timed out\n",
    )
    assert r.status is None and not r.responded
    assert r.timed_out and r.returncode == 9
    assert "no servers could be reached" in r.notes


def test_parse_connection_refused() -> None:
    r = parse_dig(";; communications error to 127.0.0.1#15399: connection refused\n" + TIMEOUT)
    assert r.connection_refused and not r.responded


# -- other helpers


def test_deep_merge() -> None:
    base: dict[str, Any] = {"listen": {"dns": ["a"], "http": ["b"]}, "zones": [1]}
    merged = deep_merge(base, {"listen": {"http": []}, "zones": [2], "keys": []})
    assert merged == {"listen": {"dns": ["a"], "http": []}, "zones": [2], "keys": []}
    assert base["listen"]["http"] == ["b"]


def test_tsig_key_forms(tmp_path: Path) -> None:
    key = TsigKey.generate("home-key")
    assert key.config() == {"name": "home-key", "algorithm": "hmac-sha256", "secret": key.secret}
    assert key.dig_arg() == f"hmac-sha256:home-key:{key.secret}"
    path = key.write(tmp_path / "home.key")
    assert f'secret "{key.secret}";' in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(key.keyring()) == 1
    assert str(key.dnspython_key().name) == "home-key."


def test_server_process_writes_config_without_starting(tmp_path: Path) -> None:
    key = TsigKey.generate("k")
    server = ServerProcess(
        tmp_path / "s",
        {"dyn.example.test": "$TTL 60\n", "empty.test": None},
        {"keys": [key.config()], "listen": {"https": []}},
        zone_extra={"dyn.example.test": {"allow_transfer": ["127.0.0.0/8"]}},
    )
    assert not server.running() and server.pid is None
    config = yaml.safe_load(server.config_path.read_text())
    assert config["data_dir"] == str(server.data_dir) == str(tmp_path.resolve() / "s" / "data")
    assert config["listen"]["dns"] == [f"127.0.0.1:{server.dns_port}"]
    assert config["listen"]["http"] == [f"127.0.0.1:{server.http_port}"]
    assert config["keys"] == [key.config()]
    first, second = config["zones"]
    assert first == {
        "name": "dyn.example.test",
        "file": str(server.zone_file("dyn.example.test")),
        "allow_transfer": ["127.0.0.0/8"],
    }
    assert server.zone_file("dyn.example.test").read_text() == "$TTL 60\n"
    assert second == {"name": "empty.test"}
    assert server.stop() is None  # stopping a server never started is harmless


def test_server_process_rejects_zone_extra_for_unknown_zone(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ServerProcess(tmp_path, {"a.test": None}, zone_extra={"b.test": {}})


def test_require_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require_tool("sh").endswith("/sh")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no-such-tool-xyz not installed"):
        require_tool("no-such-tool-xyz")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_tool("no-such-tool-xyz")


def test_run_and_wait_for() -> None:
    done = run(["sh", "-c", "cat; echo err >&2; exit 3"], input="hello\n")
    assert (done.returncode, done.stdout, done.stderr) == (3, "hello\n", "err\n")
    calls = iter([0, 0, 7])
    assert wait_for(lambda: next(calls), timeout=5, interval=0) == 7
    with pytest.raises(AssertionError, match="never"):
        wait_for(lambda: False, timeout=0.05, message="never")
