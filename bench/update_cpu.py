"""CPU time per small signed UPDATE, in process (issue 11), wire reader on and off.

    .venv/bin/python bench/update_cpu.py [--updates 400] [--runs 5] [--records 0]
                                         [--batch 1] [--audit] [--profile] [--wire-only]

Builds a real Store (SQLite journal in a temporary folder) and sends typical
dynamic-DNS UPDATEs (a prerequisite, delete the name's A RRset, add one A,
TSIG HMAC-SHA256) through DnsHandler.handle as the UDP loop does. Prints the
process CPU time per UPDATE, median of the runs, for dnspython parsing the
sections (the path before wireupdate.py) and for the wire reader: CPU time,
because the machine this runs on is shared and wall-clock time is noisy. A
few seconds in all.

`--records N` adds N hosts with one A record each (bench/run.py's large zone
has 100,000) and the UPDATEs replace their A records, as `dnsperf -u` does
in bench/run.py. `--batch N` group-commits N UPDATEs per SQLite transaction
(Store.begin_batch/end_batch, as the UDP loop does around every pass);
1 is one commit each (1 in flight). `--audit` adds what the server adds
after each commit: the audit log line (logs.configure, to /dev/null).
`--wire-only` skips the dnspython runs.
`--profile` prints a cProfile of the wire reader's runs instead of the
timings.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dns.name
import dns.tsig
import dns.update
import dns.zone

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddns_server import logs, model  # noqa: E402
from ddns_server.dnsmsg import DnsHandler  # noqa: E402
from ddns_server.journal import Journal  # noqa: E402
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


def zone_text(records: int) -> str:
    hosts = "".join(f"h{i:07d} A 100.64.{i // 256 % 256}.{i % 256}\n" for i in range(records))
    return ZONE + hosts


_SEEDS: dict[int, list[tuple[bytes, int, int, bytes]]] = {}


def seed_records(records: int) -> list[tuple[bytes, int, int, bytes]]:
    """The zone's records, parsed once per process (a 100k zone takes seconds)."""
    if records not in _SEEDS:
        zone = dns.zone.from_text(zone_text(records), ORIGIN, relativize=False)
        _SEEDS[records] = list(records_from_zone(zone))
    return _SEEDS[records]


def messages(count: int, run: int, records: int) -> list[bytes]:
    out = []
    for i in range(count):
        msg = dns.update.UpdateMessage(ORIGIN)
        if records:
            # bench/zones.py's form: delete the host's A RRset, add one A
            name = f"h{(i * 7919 + run) % records:07d}"
        else:
            name = f"host{i % 50}"
            msg.present("ns1", "A")
        msg.delete(name, "A")
        msg.add(name, 60, "A", f"10.{run}.{i // 256 % 256}.{i % 256}")
        msg.use_tsig({KEY.name: KEY}, KEY.name)
        wire = msg.to_wire()
        assert wire is not None
        out.append(wire)
    return out


def run_once(
    count: int,
    run: int,
    wire_reader: bool,
    records: int,
    batch: int,
    audit: bool,
    profile: cProfile.Profile | None = None,
) -> float:
    """CPU seconds per UPDATE over `count` UPDATEs."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Journal(Path(tmp) / "journal.sqlite3"))
        store.open_zone(ORIGIN, seed_records(records))
        if audit:
            store.add_listener(logs.audit)
        zone_config = model.Zone(ORIGIN, None, (PolicyRule(KEY.name, "zonesub", None, None),))
        handler = DnsHandler(QueryEngine(store.zones), {KEY.name: KEY})
        handler.updates = UpdateProcessor(store, [zone_config])
        handler.wire_updates = wire_reader
        wires = messages(count, run, records)
        if profile is not None:
            profile.enable()
        start = time.process_time()
        for first in range(0, count, batch):
            store.begin_batch()  # as the UDP loop does, around every pass (even of one)
            responses = [
                handler.handle(wire, ("127.0.0.1", 5300), False)
                for wire in wires[first : first + batch]
            ]
            store.end_batch()
            for (response,) in responses:
                assert response[3] & 0x0F == 0, response.hex()
        spent = time.process_time() - start
        if profile is not None:
            profile.disable()
        store.journal.close()
        return spent / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--records", type=int, default=0, help="hosts in the zone (default 0)")
    parser.add_argument("--batch", type=int, default=1, help="UPDATEs per commit (default 1)")
    parser.add_argument("--audit", action="store_true", help="log the audit line (to /dev/null)")
    parser.add_argument("--profile", action="store_true", help="cProfile the wire reader's runs")
    parser.add_argument("--wire-only", action="store_true", help="only the wire reader's runs")
    args = parser.parse_args()
    if args.audit:
        logs.configure("text", "info", open(os.devnull, "w"))  # noqa: SIM115 - to the end
    if args.profile:
        profile = cProfile.Profile()
        for run in range(args.runs):
            run_once(args.updates, run, True, args.records, args.batch, args.audit, profile)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
        return 0
    results: dict[bool, list[float]] = {False: [], True: []}
    for run in range(args.runs):
        for wire_reader in (True,) if args.wire_only else (False, True):  # alternated
            results[wire_reader].append(
                run_once(args.updates, run, wire_reader, args.records, args.batch, args.audit)
            )
    for wire_reader, label in ((False, "dnspython sections"), (True, "wire reader")):
        if not results[wire_reader]:
            continue
        values = sorted(v * 1e6 for v in results[wire_reader])
        print(
            f"{label:20} median {statistics.median(values):7.1f} µs/update"
            f"  (runs: {', '.join(f'{v:.0f}' for v in values)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
