"""What response rate limiting costs when nobody is over the limit (issue 14 item 17).

    .venv/bin/python bench/rrl.py [--rounds 3] [--duration 8]

Starts ddns-server on the bench's small zone (pinned to CPU 0), alternately
without `rate_limit:` and with one whose rates nobody reaches (so every
answer goes through the limiter's check and is sent), and measures UDP query
throughput with dnsperf (pinned to CPU 1), `--rounds` times each (which goes
first alternates by round), a fresh server per run. Prints the median
queries per second of both and their ratio; the target is RRL on within 5% of off.

Throughput on a shared machine swings by tens of percent from run to run;
the server's CPU time per answered query (from /proc) is steadier, and is
printed too. It also times RRL in-process (answer only vs answer + RRL as the read loop
does it, the same query mix), which is steadier than a loopback run on a busy machine.
Needs dnsperf and taskset (see bench/README.md). About a minute with the
defaults. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import yaml

import measure
import servers
import zones

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ddns_server.model import RateLimit  # noqa: E402
from ddns_server.query import QueryEngine  # noqa: E402
from ddns_server.rrl import UNLIMITED, RateLimiter  # noqa: E402
from ddns_server.store import records_from_file  # noqa: E402
from ddns_server.zonedata import ZoneData, name_to_wire  # noqa: E402

# Rates no client of the bench reaches: every answer is checked, none limited.
UNREACHED = {
    "responses_per_second": 1_000_000,
    "nxdomains_per_second": 1_000_000,
    "errors_per_second": 1_000_000,
}


class RrlServer(servers.DdnsServer):
    """The bench's ddns-server, optionally with a `rate_limit:` section."""

    def __init__(self, folder: Path, inputs: zones.Inputs, port: int, cpu: int, rrl: bool) -> None:
        super().__init__(folder, inputs, port, cpu, [])
        self.rrl = rrl

    def write_config(self) -> None:
        super().write_config()
        config = yaml.safe_load(self.config_path.read_text())
        config["zones"] = [z for z in config["zones"] if z["name"] == self.inputs.small.name]
        if self.rrl:
            config["rate_limit"] = dict(UNREACHED)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def ready_zone(self) -> str:
        return self.inputs.small.name


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live(
    inputs: zones.Inputs, work: Path, rounds: int, duration: float
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Queries per second, and the server's CPU microseconds per answered query."""
    results: dict[str, list[float]] = {"off": [], "on": []}
    cpu_us: dict[str, list[float]] = {"off": [], "on": []}
    for n in range(rounds):
        # alternate which goes first, so a drift of the machine's load favours neither
        for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
            folder = work / f"r{n}-{mode}"
            folder.mkdir(parents=True)
            server = RrlServer(folder, inputs, servers.free_port(), 0, mode == "on")
            server.start()
            try:
                server.wait_ready(60)
                assert server.proc is not None
                before = cpu_seconds(server.proc.pid)
                result = measure.run_dnsperf(server.port, inputs.small_queries, duration, 1)
                used = cpu_seconds(server.proc.pid) - before
            finally:
                server.stop()
            results[mode].append(result.per_second)
            cpu_us[mode].append(used / result.completed * 1e6)
            print(
                f"round {n + 1} rrl {mode:3}: {result.per_second:9.0f} queries/s, "
                f"server CPU {cpu_us[mode][-1]:.2f} us/query",
                flush=True,
            )
    return results, cpu_us


def in_process(inputs: zones.Inputs, count: int = 20_000, repeats: int = 30) -> tuple[float, float]:
    """Microseconds per query: the fast path's answer, and answer + RRL as the
    UDP read loop does it (edge/dns.py: one instant per pass of 64, the
    prefix's bucket refilled once per instant and each answer taken from it,
    check() when that is empty).

    Off and on alternate in short runs and the fastest of each counts: on a
    shared machine that is the figure least disturbed by other processes.
    """
    origin = dns.name.from_text(inputs.small.name)
    zone = ZoneData.from_records(origin, records_from_file(inputs.small.path, origin))
    engine = QueryEngine({name_to_wire(origin).lower(): zone})
    rng = random.Random(2136)
    names = [line.split()[0] for line in inputs.small_queries.read_text().splitlines()[:1000]]
    wires = [
        dns.message.make_query(name, rng.choice([dns.rdatatype.A, dns.rdatatype.AAAA])).to_wire()
        for name in names
    ]
    clients = ["198.51.100.7", "198.51.100.8", "203.0.113.9", "192.0.2.44"]
    limiter = RateLimiter(RateLimit(**UNREACHED))  # type: ignore[arg-type]
    answer = engine.answer
    check = limiter.check
    aggregate = limiter.aggregate
    now = time.monotonic()
    best_off = best_on = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(count):
            answer(wires[i % 1000], True)
        best_off = min(best_off, (time.perf_counter() - start) / count)
        start = time.perf_counter()
        aggs = limiter.hosts
        agg_rate = limiter.agg_rate
        for i in range(count):
            if not i & 63:
                now = time.monotonic()  # a pass of 64
            wire = wires[i % 1000]
            response = answer(wire, True)
            if response is not None:
                host = clients[i & 3]
                agg = aggs.get(host)
                if agg is None:
                    agg = aggregate(host, now)
                elif agg.last != now and agg is not UNLIMITED:
                    balance = agg.balance + agg_rate * (now - agg.last)
                    agg.balance = balance if balance < agg_rate else agg_rate
                    agg.last = now
                if agg.balance >= 1.0:
                    agg.balance -= 1.0
                else:
                    check(host, wire, response, now)
        best_on = min(best_on, (time.perf_counter() - start) / count)
    return best_off * 1e6, best_on * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ddns-rrl-bench-") as tmp:
        work = Path(tmp)
        inputs = zones.generate(work / "inputs", large_hosts=100)
        off_us, on_us = in_process(inputs)
        print(
            f"in-process: answer {off_us:.2f} us/query, answer + RRL {on_us:.2f} us/query "
            f"(+{(on_us / off_us - 1) * 100:.1f}%)",
            flush=True,
        )
        try:
            results, cpu_us = live(inputs, work, args.rounds, args.duration)
        finally:
            servers.stop_all()
    off = statistics.median(results["off"])
    on = statistics.median(results["on"])
    ratios = [b / a for a, b in zip(results["off"], results["on"], strict=True)]
    per_round = ", ".join(f"{r:.3f}" for r in ratios)
    print(
        f"median: rrl off {off:.0f} q/s, rrl on {on:.0f} q/s: on/off = {on / off:.3f} "
        f"(per round: {per_round}; median {statistics.median(ratios):.3f})"
    )
    cpu_off = statistics.median(cpu_us["off"])
    cpu_on = statistics.median(cpu_us["on"])
    print(
        f"median server CPU per query: off {cpu_off:.2f} us, on {cpu_on:.2f} us "
        f"(+{(cpu_on / cpu_off - 1) * 100:.1f}%; throughput at equal CPU: "
        f"on/off = {cpu_off / cpu_on:.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
