"""Mirror benchmark: lag to a real upstream, and the cost of a stuck mirror.

    .venv/bin/python bench/mirror_bench.py [--samples 100] [--duration 4] [--rounds 2]

1. Lag: ddns-server with an rfc2136 mirror to a BIND primary (named) on
   loopback. For each sample one signed UPDATE sets a new address; the lag
   is from our server's answer (the update journaled) to named answering
   the new address (polled every millisecond). Median and p99.
2. Throughput: queries per second (a pipelined UDP client, up to 64 in
   flight) and signed updates per second (one at a time) against ddns-server
   with no mirror, then with a mirror stuck in retries (its upstream accepts
   TCP connections and never answers, so every push times out).

Short runs on a shared machine: compare the two throughput figures of one
run, not runs with each other. Reuses the integration tests' harness.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.update  # noqa: E402
from harness import BackgroundProcess, ServerProcess, TsigKey, wait_for  # noqa: E402
from named_primary import UPSTREAM, NamedPrimary  # noqa: E402

ZONE = "dyn.example.test"
MIRROR_KEY = TsigKey.generate("mirror-key")
UPDATE_KEY = TsigKey.generate("update-key")
ZONE_TEXT = f"""$ORIGIN {ZONE}.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 604800 300
@ NS ns1
ns1 A 192.0.2.1
www A 192.0.2.80
"""


def server(folder: Path, mirror: dict[str, Any] | None) -> ServerProcess:
    extra: dict[str, Any] = {"keys": [UPDATE_KEY.config(), MIRROR_KEY.config()]}
    if mirror:
        extra["mirrors"] = [mirror]
    proc = ServerProcess(
        folder,
        {ZONE: ZONE_TEXT},
        extra,
        zone_extra={ZONE: {"update_policy": [{"grant": UPDATE_KEY.name, "match": "zonesub"}]}},
    )
    return proc.start()


def mirror_entry(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": "public",
        "provider": "rfc2136",
        "zone": ZONE,
        "upstream_zone": UPSTREAM,
        "names": ["*.lab", "www"],
        "resync_interval": 0,
        "calls_per_second": 0,
        "options": {"server": f"127.0.0.1:{port}", "key": MIRROR_KEY.name, "timeout": 2},
        **extra,
    }


def update(port: int, name: str, address: str) -> None:
    message = dns.update.UpdateMessage(ZONE, keyring=UPDATE_KEY.keyring())
    message.replace(name, 300, "A", address)
    response = dns.query.udp(message, "127.0.0.1", port=port, timeout=5)
    assert response.rcode() == 0, response


def upstream_has(port: int, name: str, address: str) -> bool:
    query = dns.message.make_query(f"{name}.{ZONE}", "A")
    try:
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except Exception:  # noqa: BLE001 - not yet
        return False
    return any(rd.to_text() == address for rrset in response.answer for rd in rrset)


def measure_lag(folder: Path, samples: int) -> dict[str, float]:
    spawned: list[BackgroundProcess] = []

    def spawn(cmd: Any, name: str | None = None, **kwargs: Any) -> BackgroundProcess:
        proc = BackgroundProcess(cmd, folder / f"{name}.log", **kwargs)
        spawned.append(proc)
        return proc

    upstream = NamedPrimary(spawn, folder / "named", MIRROR_KEY).start()  # type: ignore[arg-type]
    ours = server(folder / "ddns", mirror_entry(upstream.port))
    try:
        lags = []
        for i in range(samples):
            address = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
            update(ours.dns_port, "probe.lab", address)
            acked = time.perf_counter()
            wait_for(lambda a=address: upstream_has(upstream.port, "probe.lab", a), 10, 0.001)
            lags.append(time.perf_counter() - acked)
        lags.sort()
        return {
            "samples": samples,
            "median_ms": statistics.median(lags) * 1000,
            "p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000,
        }
    finally:
        ours.stop()
        for proc in spawned:
            proc.stop()


def query_rate(port: int, duration: float) -> float:
    """Answers per second with up to 64 queries in flight over UDP."""
    wire = dns.message.make_query(f"www.{ZONE}", "A").to_wire()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    in_flight = answered = 0
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        while in_flight < 64:
            sock.send(wire)
            in_flight += 1
        if selector.select(0.05):
            while True:
                try:
                    sock.recv(4096)
                except BlockingIOError:
                    break
                answered += 1
                in_flight -= 1
        else:
            in_flight = 0  # lost ones: start again
    sock.close()
    return answered / duration


def update_rate(port: int, duration: float) -> float:
    done = 0
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        update(port, f"u{done % 100}.lab", f"10.9.{done // 256 % 256}.{done % 256}")
        done += 1
    return done / duration


def measure_throughput(folder: Path, duration: float, rounds: int) -> dict[str, float]:
    """Alternating runs (none, stuck, none, stuck, ...); the best of each kind,
    so that another process's burst on a shared machine counts against neither."""
    runs: dict[str, list[float]] = {}
    reported = 0.0
    # An upstream that accepts connections and never answers: every push times out.
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(1024)
    stuck_port = black_hole.getsockname()[1]
    for round_ in range(rounds):
        for label, mirror in (
            ("none", None),
            ("stuck", mirror_entry(stuck_port, calls_per_second=5)),
        ):
            ours = server(folder / f"ddns-{label}-{round_}", mirror)
            try:
                runs.setdefault(f"queries_per_s_{label}", []).append(
                    query_rate(ours.dns_port, duration)
                )
                runs.setdefault(f"updates_per_s_{label}", []).append(
                    update_rate(ours.dns_port, duration)
                )
                if mirror:
                    status = ours.cli("mirror", "status", "--json").stdout
                    reported = max(reported, float('"transient"' in status))
            finally:
                ours.stop()
    black_hole.close()
    results = {key: max(values) for key, values in runs.items()}
    results["stuck_mirror_transient_error"] = reported
    for kind in ("queries", "updates"):
        none, stuck = results[f"{kind}_per_s_none"], results[f"{kind}_per_s_stuck"]
        results[f"{kind}_stuck_vs_none_pct"] = (stuck - none) / none * 100
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mirror-bench-") as tmp:
        folder = Path(tmp)
        lag = measure_lag(folder / "lag", args.samples)
        print(
            f"lag ack -> upstream (rfc2136 to named), {lag['samples']:.0f} samples:"
            f" median {lag['median_ms']:.1f} ms, p99 {lag['p99_ms']:.1f} ms"
        )
        tp = measure_throughput(folder / "tp", args.duration, args.rounds)
        for kind in ("queries", "updates"):
            print(
                f"{kind}/s: no mirror {tp[f'{kind}_per_s_none']:.0f},"
                f" mirror stuck in retries {tp[f'{kind}_per_s_stuck']:.0f}"
                f" ({tp[f'{kind}_stuck_vs_none_pct']:+.1f}%)"
            )
        print(
            f"stuck mirror reported a transient error: {bool(tp['stuck_mirror_transient_error'])}"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
