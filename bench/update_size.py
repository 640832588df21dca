"""How long one 64 KB UPDATE takes, end to end inside the server (issue 14, item 9).

    .venv/bin/python bench/update_size.py [--size 65000] [--runs 5]

Builds a real Store (SQLite journal in a temporary folder) with a small zone,
and sends TSIG-signed UPDATE messages of about `--size` octets through
DnsHandler.handle over "TCP" (no sockets: the handler is what a TCP frame
reaches). Cases:

* `one-name-mx-refused`: every record an MX at one name, as the attack in
  the issue (default caps: refused whole, max-records-per-type 100);
* `one-name-mx-caps-off`: the same message with the caps off (0), applied;
  this is the quadratic case before the fix (1,000 MX took 28.8 s);
* `many-names`: one A record each at as many names as fit, applied;
* `txt-records`: 64 KB of 200-octet TXT records at 100 names, applied.

The `cpu ms` and `cpu worst` columns are the process's CPU time for the same
call, median and worst (the figures to trust on a loaded machine). The
`parse ms` column is dnspython's from_wire (with TSIG) alone on the same
message, for reference: signed UPDATEs of the usual types no longer go
through it (wireupdate.py); `--no-wire-reader` measures the path before
that, where they did.

Prints the median and worst time per case; the target is well under 100 ms.
A few seconds in all.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.tsig
import dns.update
import dns.zone

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddns_server import model  # noqa: E402
from ddns_server.dnsmsg import DnsHandler  # noqa: E402
from ddns_server.journal import Journal  # noqa: E402
from ddns_server.limits import UpdateLimits  # noqa: E402
from ddns_server.model import PolicyRule  # noqa: E402
from ddns_server.query import QueryEngine  # noqa: E402
from ddns_server.store import Store  # noqa: E402
from ddns_server.update_handler import UpdateProcessor  # noqa: E402
from ddns_server.zonefile import records_from_zone  # noqa: E402

ORIGIN = dns.name.from_text("bench.test")
KEY = dns.tsig.Key("bench-key.", b"b" * 32, dns.tsig.HMAC_SHA256)
ZONE = """
$ORIGIN bench.test.
$TTL 300
@   SOA ns1 hostmaster 1 3600 600 86400 60
@   NS  ns1
ns1 A   192.0.2.1
"""


def message(kind: str, size: int, run: int) -> dns.update.UpdateMessage:
    msg = dns.update.UpdateMessage(ORIGIN)
    i = 0
    while True:
        if kind == "many-names":
            msg.add(f"r{run}-h{i}", 60, "A", f"10.{run % 256}.{i // 256 % 256}.{i % 256}")
        elif kind == "txt-records":
            msg.add(f"t{i % 100}", 60, "TXT", f'"{run}-{i}-{"x" * 190}"')
        else:
            msg.add("a", 60, "MX", f"10 mx{run}-{i}.example.net.")
        i += 1
        if i % (5 if kind == "txt-records" else 50) == 0:
            wire = msg.to_wire()
            assert wire is not None
            if len(wire) >= size:
                break
    msg.use_tsig({KEY.name: KEY}, KEY.name)
    return msg


def measure(
    kind: str, limits: UpdateLimits, size: int, runs: int, wire_reader: bool = True
) -> tuple[list[float], list[float], list[float], str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Journal(Path(tmp) / "journal.sqlite3"))
        store.open_zone(
            ORIGIN, records_from_zone(dns.zone.from_text(ZONE, ORIGIN, relativize=False))
        )
        zone_config = model.Zone(ORIGIN, None, (PolicyRule(KEY.name, "zonesub", None, None),))
        handler = DnsHandler(QueryEngine(store.zones), {KEY.name: KEY})
        handler.updates = UpdateProcessor(store, [zone_config], limits=limits)
        handler.wire_updates = wire_reader
        times: list[float] = []
        cpu: list[float] = []
        parse: list[float] = []
        rcode = ""
        octets = 0
        for run in range(runs):
            msg = message(kind, size, run)
            wire = msg.to_wire()
            assert wire is not None
            octets = len(wire)
            start = time.perf_counter()
            dns.message.from_wire(wire, keyring={KEY.name: KEY})
            parse.append(time.perf_counter() - start)
            start = time.perf_counter()
            start_cpu = time.process_time()
            (response,) = handler.handle(wire, ("127.0.0.1", 5300), True)
            cpu.append(time.process_time() - start_cpu)
            times.append(time.perf_counter() - start)
            parsed = dns.message.from_wire(response, keyring={KEY.name: KEY}, request_mac=msg.mac)
            rcode = dns.rcode.to_text(parsed.rcode())
        store.journal.close()
        return times, cpu, parse, rcode, octets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=65000, help="octets per UPDATE")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--no-wire-reader",
        action="store_true",
        help="sections parsed by dnspython (the path before wireupdate.py), for comparison",
    )
    args = parser.parse_args()
    off = UpdateLimits(0, 0, 0, 0)
    cases = [
        ("one-name-mx-refused", "one-name-mx", UpdateLimits()),
        ("one-name-mx-caps-off", "one-name-mx", off),
        ("many-names", "many-names", UpdateLimits()),
        ("txt-records", "txt-records", UpdateLimits()),
    ]
    print(
        f"{'case':24} {'octets':>7} {'rcode':>8} {'median ms':>10} {'worst ms':>9}"
        f" {'cpu ms':>7} {'cpu worst':>9} {'parse ms':>9}"
    )
    for label, kind, limits in cases:
        times, cpu, parse, rcode, octets = measure(
            kind, limits, args.size, args.runs, not args.no_wire_reader
        )
        median = statistics.median(times) * 1000
        worst = max(times) * 1000
        cpu_ms = statistics.median(cpu) * 1000
        cpu_worst = max(cpu) * 1000
        floor = statistics.median(parse) * 1000
        print(
            f"{label:24} {octets:>7} {rcode:>8} {median:>10.1f} {worst:>9.1f}"
            f" {cpu_ms:>7.1f} {cpu_worst:>9.1f} {floor:>9.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
