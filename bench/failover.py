"""Failover health checks at scale: probes per second, and what they cost the queries.

    .venv/bin/python bench/failover.py               # 10,000 TCP checks every 10 s (~2 min)
    .venv/bin/python bench/failover.py --targets 2000 --duration 5

Not a test: it prints figures. It starts, on loopback only:
- a listener process accepting (and closing) TCP connections on 100
  addresses 127.77.0.1-100 x 10 ports (1,000 listening sockets);
- ddns-server pinned to CPU 0 with `--targets` checks (failover RRsets of 10
  targets each, interval 10 s, timeout 2 s), or with none;
- dnsperf pinned to CPU 1, asking A/AAAA/MX/TXT/NXDOMAIN questions of the
  example zone for `--duration` seconds.
Rounds alternate none / checks (`--rounds` of each) so drift on a shared
machine hits both alike. Reported: probes per second and the server's CPU
while probing (from /metrics and /proc), and queries per second with and
without the checks (the target: within 10%), also per second of the server's
CPU (robust on a shared machine: what one dedicated core would answer).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
ZONE = "dyn.example.test"
ADDRESSES = [f"127.77.0.{i}" for i in range(1, 101)]
PER_SET = 10
INTERVAL = 10.0
CPU_SERVER, CPU_CLIENT = "0", "1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 for TCP (and for UDP too with SOCK_DGRAM)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if kind == socket.SOCK_DGRAM:
            try:
                with socket.socket() as t:
                    t.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise SystemExit("no free port")


def listen(ports: list[int], ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    """Accept and close connections on every address x port, until killed
    (on the client's CPU: the server's CPU is what is measured)."""
    os.sched_setaffinity(0, {int(CPU_CLIENT)})
    sel = selectors.DefaultSelector()
    for address in ADDRESSES:
        for port in ports:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((address, port))
            s.listen(1024)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
    ready.set()
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            while True:
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                conn.close()


def write_config(folder: Path, targets: int, ports: list[int], dns: int, http: int) -> Path:
    failover = []
    for i in range(targets // PER_SET):
        first = (i * PER_SET) % len(ADDRESSES)
        failover.append(
            {
                "name": f"h{i}",
                "targets": ADDRESSES[first : first + PER_SET],
                "policy": "all",
                "check": {"protocol": "tcp", "port": ports[i % len(ports)]},
                "interval": INTERVAL,
                "timeout": 2,
            }
        )
    zone_file = folder / "zone"
    shutil.copy(REPO / "zones" / f"{ZONE}.zone", zone_file)
    config = {
        "data_dir": str(folder / "data"),
        "listen": {"dns": [f"127.0.0.1:{dns}"], "http": [f"127.0.0.1:{http}"]},
        "zones": [{"name": ZONE, "file": str(zone_file), "failover": failover}],
    }
    path = folder / "ddns.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def probes_done(http: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=10).read().decode()
    pattern = r"^ddns_failover_probe_latency_seconds_count\{[^}]*\} ([0-9.e+]+)$"
    return sum(float(m) for m in re.findall(pattern, text, re.M))


def failed_probes(http: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=10).read().decode()
    pattern = r'^ddns_failover_probe_latency_seconds_count\{[^}]*result="fail"[^}]*\} ([0-9.e+]+)$'
    return sum(float(m) for m in re.findall(pattern, text, re.M))


class Server:
    def __init__(self, folder: Path, targets: int, ports: list[int]) -> None:
        folder.mkdir(parents=True)
        for _attempt in range(3):  # a port taken meanwhile (a shared machine): new ports
            if self._start(folder, targets, ports):
                return
        raise SystemExit(f"server did not start: {(folder / 'server.log').read_text()[-2000:]}")

    def _start(self, folder: Path, targets: int, ports: list[int]) -> bool:
        self.dns = free_port(socket.SOCK_DGRAM)
        self.http = free_port()
        self.config = write_config(folder, targets, ports, self.dns, self.http)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.log = open(folder / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["taskset", "-c", CPU_SERVER, sys.executable, "-m", "ddns_server", "serve",
             "-c", str(self.config)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                self.log.close()
                return False
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=1)
                return True
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("server not ready after 60 s") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def dnsperf(port: int, queries: Path, duration: float) -> tuple[float, int]:
    """(queries per second, queries completed)."""
    cmd = ["taskset", "-c", CPU_CLIENT, "dnsperf", "-s", "127.0.0.1", "-p", str(port)]
    cmd += ["-d", str(queries), "-l", f"{duration:g}", "-q", "100", "-c", "1", "-T", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=False)
    match = re.search(r"Queries per second:\s+([0-9.]+)", out.stdout)
    done = re.search(r"Queries completed:\s+([0-9]+)", out.stdout)
    if not match or not done:
        raise SystemExit(f"dnsperf: {out.stdout[-500:]} {out.stderr[-500:]}")
    return float(match.group(1)), int(done.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per dnsperf run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("dnsperf") or not shutil.which("taskset"):
        print("needs dnsperf and taskset (Debian: dnsperf, util-linux)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    ports = [free_port() for _ in range(10)]
    ready = multiprocessing.Event()
    listener = multiprocessing.Process(target=listen, args=(ports, ready), daemon=True)
    listener.start()
    if not ready.wait(30):
        print("listeners did not start", file=sys.stderr)
        return 1
    queries = work / "queries"
    rng = random.Random(10)
    names = [("www", "A"), ("www", "AAAA"), ("mail", "A"), ("@", "MX"), ("@", "TXT"),
             ("home", "A"), ("nx", "A"), ("alias", "CNAME")]  # fmt: skip
    queries.write_text(
        "".join(
            f"{ZONE if n == '@' else n + '.' + ZONE} {t}\n"
            for n, t in (rng.choice(names) for _ in range(10_000))
        )
    )
    qps: dict[str, list[float]] = {"none": [], "checks": []}
    per_cpu: dict[str, list[float]] = {"none": [], "checks": []}  # queries per CPU-second
    probe_rates: list[float] = []
    try:
        for r in range(args.rounds):
            for kind in ("none", "checks"):
                targets = args.targets if kind == "checks" else 0
                server = Server(work / f"r{r}-{kind}", targets, ports)
                try:
                    if targets:
                        # the first probes are spread over the interval: wait one out
                        time.sleep(11)
                    p0 = probes_done(server.http)
                    c0, t0 = cpu_seconds(server.proc.pid), time.time()
                    rate_q, completed = dnsperf(server.dns, queries, args.duration)
                    c1, t1 = cpu_seconds(server.proc.pid), time.time()
                    qps[kind].append(rate_q)
                    per_cpu[kind].append(completed / (c1 - c0) if c1 > c0 else 0.0)
                    if targets:
                        probe_rates.append((probes_done(server.http) - p0) / (t1 - t0))
                        failed = failed_probes(server.http)
                        if failed:
                            print(f"  note: {failed:g} probes failed (a loaded machine?)")
                    print(
                        f"round {r + 1} {kind:<6}: {rate_q:9.0f} queries/s,"
                        f" {per_cpu[kind][-1]:9.0f} per server CPU-second"
                        f" (CPU {(c1 - c0) / (t1 - t0) * 100:3.0f}%)",
                        flush=True,
                    )
                finally:
                    server.stop()
        idle_cpu = []
        # probes alone: CPU over `duration` with no queries
        server = Server(work / "probes-only", args.targets, ports)
        try:
            time.sleep(11)
            p0, c0, t0 = probes_done(server.http), cpu_seconds(server.proc.pid), time.time()
            time.sleep(args.duration)
            c1, t1 = cpu_seconds(server.proc.pid), time.time()  # before the scrape's own CPU
            p1 = probes_done(server.http)
            idle_cpu.append(((p1 - p0) / (t1 - t0), (c1 - c0) / (t1 - t0)))
        finally:
            server.stop()
    finally:
        listener.kill()
    rate, cpu = idle_cpu[0]
    print()
    print(
        f"targets: {args.targets} TCP checks, interval 10 s, on {len(ADDRESSES)} loopback addresses"
    )
    print(f"probes per second (no queries):      {rate:8.0f}  server CPU {cpu * 100:5.1f}%"
          f"  ({cpu / rate * 1e6 if rate else 0:.0f} us per probe)")  # fmt: skip
    for rate_q in probe_rates:
        print(f"probes per second (under dnsperf):   {rate_q:8.0f}")
    if not args.rounds:
        return 0
    none, checks = statistics.median(qps["none"]), statistics.median(qps["checks"])
    print(f"queries per second, no checks:       {none:8.0f}  (median of {args.rounds})")
    print(f"queries per second, with checks:     {checks:8.0f}  ({(checks - none) / none:+.1%})")
    # The server's own CPU is shared with other work on a busy machine; queries
    # per CPU-second is what one dedicated core would answer.
    none, checks = statistics.median(per_cpu["none"]), statistics.median(per_cpu["checks"])
    print(f"queries per CPU-second, no checks:   {none:8.0f}  (median of {args.rounds})")
    print(f"queries per CPU-second, with checks: {checks:8.0f}  ({(checks - none) / none:+.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
