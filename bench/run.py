"""Benchmark ddns-server against BIND and Knot on loopback (`make bench`).

    .venv/bin/python bench/run.py [--huge | --records N] [--duration S] [--rounds N]
                                  [--quick] [--servers ddns,bind,knot]

Each round starts every server in turn (ddns-server, BIND, Knot, then again),
fresh, in its own folder under bench/out/work/, pinned to one CPU; measures
start-up and memory, then runs the query, AXFR, update and propagation
measurements against that instance, then stops it. One server runs at a time.
Results go to stdout as a Markdown table and to bench/out/results-<date>.json.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import dns.version

import measure
import servers
import zones

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
SERVER_ORDER = ("ddns", "bind", "knot")
LABELS = {"ddns": "ddns-server", "bind": "BIND", "knot": "Knot"}

# What each server needs: (program, Debian package).
NEEDS: dict[str, list[tuple[str, str]]] = {
    "common": [
        ("dnsperf", "dnsperf"),
        ("dig", "bind9-dnsutils"),
        ("taskset", "util-linux"),
        ("/usr/sbin/named", "bind9"),  # also the secondary of the propagation test
    ],
    "bind": [],
    "knot": [("/usr/sbin/knotd", "knot"), ("/usr/sbin/knotc", "knot")],
    "ddns": [],
}


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str  # "/s", "ms", "s", "MiB", "%"
    better: str  # "higher" | "lower" | "client" (a property of dnsperf, not the server)


def _query_metrics() -> list[Metric]:
    out: list[Metric] = []
    for zone in ("small", "large"):
        for edns in ("", "_edns"):
            case = f"{zone} zone{', EDNS' if edns else ''}"
            out.append(Metric(f"qps_{zone}{edns}", f"queries/s, {case}", "/s", "higher"))
            out.append(Metric(f"lat_avg_{zone}{edns}", f"latency avg, {case}", "ms", "lower"))
            out.append(Metric(f"lat_max_{zone}{edns}", f"latency max, {case}", "ms", "lower"))
    return out


METRICS: list[Metric] = [
    *_query_metrics(),
    Metric("ups_q1", "TSIG updates/s, 1 in flight (dnsperf's rate)", "/s", "higher"),
    Metric("ups_q1_turn", "TSIG updates/s, 1 in flight, 1 / latency avg", "/s", "higher"),
    Metric("upd_lat_q1", "update latency avg, 1 in flight", "ms", "lower"),
    Metric("upd_idle_q1", "1 in flight: share of the run dnsperf sent nothing", "%", "client"),
    Metric("ups_q64", "TSIG updates/s, 64 in flight", "/s", "higher"),
    Metric("upd_lat_q64", "update latency avg, 64 in flight", "ms", "lower"),
    Metric("startup_s", "start-up to first answer, large zone (ddns: restart)", "s", "lower"),
    Metric("startup_first_s", "ddns-server first start (seeding from the file)", "s", "lower"),
    Metric("rss_mib", "RSS once answering (ddns: restart)", "MiB", "lower"),
    Metric("rss_first_mib", "ddns-server RSS after the first start", "MiB", "lower"),
    Metric("axfr_s", "AXFR of the large zone, dig to /dev/null", "s", "lower"),
    Metric("axfr_quiet_s", "AXFR of the large zone, dig +noall", "s", "lower"),
    Metric("propagation_ms", "update -> BIND secondary answers, median", "ms", "lower"),
    Metric("propagation_max_ms", "update -> BIND secondary answers, max", "ms", "lower"),
]


@dataclass
class Settings:
    servers: list[str]
    rounds: int
    duration: float
    large_hosts: int
    samples: int  # propagation samples per round
    server_cpu: int
    client_cpu: int
    outstanding: int
    start_timeout: float
    sync_timeout: float


@dataclass
class Results:
    # server kind -> metric key -> one value per round
    rounds: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    details: list[dict[str, object]] = field(default_factory=list)

    def add(self, kind: str, key: str, value: float) -> None:
        self.rounds.setdefault(kind, {}).setdefault(key, []).append(value)

    def error(self, kind: str, rnd: int, what: str, err: Exception) -> None:
        message = f"round {rnd + 1}, {what}: {err}"
        self.errors.setdefault(kind, []).append(message)
        print(f"  ! {LABELS[kind]} {message}", flush=True)

    def median(self, kind: str, key: str) -> float | None:
        values = self.rounds.get(kind, {}).get(key)
        return statistics.median(values) if values else None


class Session:
    """One fresh instance of one server in one round, and every measurement on it."""

    def __init__(
        self, kind: str, rnd: int, inputs: zones.Inputs, settings: Settings, results: Results
    ) -> None:
        self.kind = kind
        self.rnd = rnd
        self.inputs = inputs
        self.settings = settings
        self.results = results
        self.folder = OUT / "work" / f"r{rnd + 1}-{kind}"
        self.axfr_ok = False
        self.secondary_port = servers.free_port()
        cls = servers.SERVER_CLASSES[kind]
        self.server = cls(
            self.folder,
            inputs,
            servers.free_port(),
            settings.server_cpu,
            notify=[self.secondary_port],
        )

    def say(self, text: str) -> None:
        print(f"  {LABELS[self.kind]:<11} {text}", flush=True)

    def record(self, key: str, value: float) -> None:
        self.results.add(self.kind, key, value)

    def detail(self, what: str, data: object) -> None:
        self.results.details.append(
            {"round": self.rnd + 1, "server": self.kind, "measurement": what, "data": data}
        )

    @contextmanager
    def measuring(self, what: str) -> Iterator[None]:
        """Record a failed measurement as an error and go on with the next one."""
        if not self.server.alive():
            raise servers.ServerError(
                f"{self.server.label} is not running:\n{self.server.log_tail()}"
            )
        try:
            yield
        except (measure.MeasureError, servers.ServerError) as e:
            self.results.error(self.kind, self.rnd, what, e)

    def run(self) -> None:
        try:
            self.start_up()
        except servers.ServerError as e:
            self.results.error(self.kind, self.rnd, "start-up", e)
            self.server.stop()
            return
        try:
            with self.measuring("answers"):
                measure.spot_check(self.server.port, self.inputs.small, self.inputs.large)
            self.queries()
            self.axfr()
            self.updates()
            self.propagation()
        except servers.ServerError as e:
            self.results.error(self.kind, self.rnd, "server", e)
        finally:
            status = self.server.stop()
            if status not in (0, None, -signal.SIGTERM):
                problem = servers.ServerError(f"exited with status {status} (SIGTERM expected 0)")
                self.results.error(self.kind, self.rnd, "stop", problem)

    def start_up(self) -> None:
        s = self.settings
        self.server.start()
        seconds = self.server.wait_ready(s.start_timeout)
        rss = self.server.rss_kib() / 1024
        if self.kind == "ddns":
            # The first start seeds the journal from the zone files; the restart
            # loads from the journal, which is what a running installation does.
            self.record("startup_first_s", seconds)
            self.record("rss_first_mib", rss)
            self.say(f"first start {seconds:.3f} s, RSS {rss:.0f} MiB")
            self.server.stop()
            self.server.start()
            seconds = self.server.wait_ready(s.start_timeout)
            rss = self.server.rss_kib() / 1024
        self.record("startup_s", seconds)
        self.record("rss_mib", rss)
        self.detail("startup", {"seconds": seconds, "rss_mib": rss})
        self.say(f"start-up {seconds:.3f} s, RSS {rss:.0f} MiB")

    def queries(self) -> None:
        s = self.settings
        files = {"small": self.inputs.small_queries, "large": self.inputs.large_queries}
        for zone, datafile in files.items():
            for edns in (False, True):
                case = zone + ("_edns" if edns else "")
                with self.measuring(f"queries {case}"):
                    r = measure.run_dnsperf(
                        self.server.port,
                        datafile,
                        s.duration,
                        s.client_cpu,
                        edns=edns,
                        outstanding=s.outstanding,
                    )
                    self.record(f"qps_{case}", r.per_second)
                    self.record(f"lat_avg_{case}", r.avg_latency_s * 1000)
                    self.record(f"lat_max_{case}", r.max_latency_s * 1000)
                    self.detail(f"queries {case}", r.to_json())
                    self.say(
                        f"queries {case:<10} {r.per_second:>9,.0f}/s  avg "
                        f"{r.avg_latency_s * 1000:.3f} ms  max {r.max_latency_s * 1000:.1f} ms"
                    )

    def axfr(self) -> None:
        with self.measuring("axfr"):
            r = measure.axfr(self.server.port, self.inputs.large, self.settings.client_cpu)
            self.axfr_ok = True
            self.record("axfr_s", r.seconds)
            self.record("axfr_quiet_s", r.quiet_seconds)
            self.detail("axfr", r.__dict__)
            self.say(
                f"AXFR {r.records} records: {r.seconds:.3f} s (+noall {r.quiet_seconds:.3f} s)"
            )

    def updates(self) -> None:
        s = self.settings
        for q in (1, 64):
            with self.measuring(f"updates q{q}"):
                r = measure.run_dnsperf(
                    self.server.port,
                    self.inputs.large_updates[q],
                    s.duration,
                    s.client_cpu,
                    key=self.inputs.key,
                    updates=True,
                    outstanding=q,
                )
                self.record(f"ups_q{q}", r.per_second)
                self.record(f"upd_lat_q{q}", r.avg_latency_s * 1000)
                self.detail(f"updates q{q}", r.to_json())
                extra = ""
                if q == 1:
                    # dnsperf's rate at 1 in flight includes its own 100 ms stalls
                    # (see DnsperfResult.turnaround_per_second): both are kept.
                    self.record("ups_q1_turn", r.turnaround_per_second)
                    self.record("upd_idle_q1", r.idle_share * 100)
                    extra = (
                        f"  (1/latency {r.turnaround_per_second:,.0f}/s, "
                        f"dnsperf idle {r.idle_share:.0%})"
                    )
                self.say(
                    f"updates q{q:<2} {r.per_second:>9,.0f}/s  avg "
                    f"{r.avg_latency_s * 1000:.3f} ms  max {r.max_latency_s * 1000:.1f} ms{extra}"
                )

    def propagation(self) -> None:
        s = self.settings
        zone = self.inputs.large
        with self.measuring("propagation"):
            if not self.axfr_ok:
                # The secondary's first transfer is an AXFR: it would only time out.
                raise measure.MeasureError("skipped: the AXFR measurement failed")
            secondary = servers.BindSecondary(
                self.folder / "secondary",
                self.inputs,
                self.secondary_port,
                s.client_cpu,
                primary_port=self.server.port,
                zone=zone,
            )
            try:
                secondary.start()
                secondary.wait_ready(s.sync_timeout)
                measure.wait_synced(self.server.port, secondary.port, zone.origin, s.sync_timeout)
                # Let the secondary finish writing the transferred zone first: a
                # NOTIFY during that is deferred by seconds, measuring BIND.
                time.sleep(1.0)
                samples = measure.propagation(
                    self.server.port, secondary.port, zone, self.inputs.key, s.samples
                )
            except measure.MeasureError as e:
                for proc in (self.server, secondary):
                    if not proc.alive():
                        raise measure.MeasureError(
                            f"{e}; {proc.label} exited:\n{proc.log_tail()}"
                        ) from e
                raise
            finally:
                secondary.stop()
            arrived = [x * 1000 for x in samples if x is not None]
            self.detail("propagation", {"samples_s": samples})
            if not arrived:
                raise measure.MeasureError("no update reached the secondary within 10 s")
            self.record("propagation_ms", statistics.median(arrived))
            self.record("propagation_max_ms", max(arrived))
            lost = len(samples) - len(arrived)
            self.say(
                f"propagation median {statistics.median(arrived):.1f} ms, max "
                f"{max(arrived):.1f} ms ({len(arrived)} samples"
                + (f", {lost} timed out)" if lost else ")")
            )
            if lost:
                raise measure.MeasureError(f"{lost} of {len(samples)} updates not propagated")


# -- environment ------------------------------------------------------------


def missing_programs(kinds: list[str]) -> list[tuple[str, str]]:
    missing = []
    for program, package in NEEDS["common"] + [n for k in kinds for n in NEEDS[k]]:
        found = Path(program).exists() if program.startswith("/") else shutil.which(program)
        if not found:
            missing.append((program, package))
    if "ddns" in kinds and not servers.ddns_server_command().exists():
        missing.append((str(servers.ddns_server_command()), "this repo: pip install -e ."))
    return missing


def command_output(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    return (proc.stdout + proc.stderr).strip()


def versions() -> dict[str, str]:
    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    dnsperf = command_output(["dnsperf", "-h"])
    dnsperf_version = next(
        (line.split()[-1] for line in dnsperf.splitlines() if line.startswith("Version")), "?"
    )
    commit = command_output(["git", "-C", str(BENCH.parent), "rev-parse", "--short", "HEAD"])
    return {
        "ddns-server": dist("ddns-server")
        + (f" ({commit})" if commit and " " not in commit else " (no commit)"),
        "named": command_output(["/usr/sbin/named", "-v"]),
        "knotd": command_output(["/usr/sbin/knotd", "-V"]),
        "dnsperf": dnsperf_version,
        "dig": command_output(["dig", "-v"]),
        "python": platform.python_version(),
        "dnspython": dns.version.version,
        "twisted": dist("twisted"),
    }


def machine() -> dict[str, object]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory": mem,
        "kernel": platform.release(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# -- report -----------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "/s":
        return f"{value:,.0f}"
    if unit == "MiB":
        return f"{value:,.0f} MiB"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "ms":
        return f"{value:.3g} ms" if value < 1000 else f"{value:,.0f} ms"
    return f"{value:.3g} s"


def table(results: Results, kinds: list[str]) -> str:
    head = ["measurement", *(LABELS[k] for k in kinds), "ddns/BIND", "better"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in METRICS:
        values = {k: results.median(k, m.key) for k in kinds}
        if all(v is None for v in values.values()) and not m.key.startswith(
            ("qps", "ups", "startup_s")
        ):
            continue
        ddns, bind = values.get("ddns"), values.get("bind")
        ratio = f"{ddns / bind:.2f}" if ddns is not None and bind else "–"
        if m.better == "client":
            ratio = "–"  # a property of dnsperf's run, not a comparison of servers
        row = [m.label, *(fmt(values[k], m.unit) for k in kinds), ratio, m.better]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def report(
    results: Results,
    settings: Settings,
    meta: dict[str, object],
    interrupted: bool,
) -> str:
    mach = meta["machine"]
    vers = meta["versions"]
    assert isinstance(mach, dict) and isinstance(vers, dict)
    lines = [
        f"### Benchmark {meta['date']}" + (" (INTERRUPTED, partial)" if interrupted else ""),
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {mach['nproc']} CPUs, {mach['cpu_model']}, {mach['memory']} RAM, "
        f"Linux {mach['kernel']}, load average at start {mach['load_avg_at_start']}",
        "- versions: " + "; ".join(f"{k} {v.splitlines()[0]}" for k, v in vers.items()),
        f"- {settings.rounds} round(s); every server started fresh each round, one at a "
        f"time, pinned to CPU {settings.server_cpu}; dnsperf, dig and the BIND secondary "
        f"on CPU {settings.client_cpu}; {settings.duration:g} s per dnsperf run, "
        f"{settings.outstanding} queries in flight; large zone {settings.large_hosts:,} "
        f"A records; {settings.samples} propagation samples per round; medians over rounds",
        "",
        table(results, settings.servers),
    ]
    for kind, errors in results.errors.items():
        lines.append("")
        lines.append(f"Errors, {LABELS[kind]}:")
        lines += [f"- {e.splitlines()[0]}" for e in errors]
    return "\n".join(lines)


# -- main -------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py", description="Benchmark ddns-server against BIND and Knot."
    )
    p.add_argument("--huge", action="store_true", help="1,000,000-record large zone")
    p.add_argument(
        "--records", type=int, help="A records in the large zone (default 100,000; --huge 1M)"
    )
    p.add_argument("--duration", type=float, help="seconds per dnsperf run (default 10)")
    p.add_argument("--rounds", type=int, help="rounds (default 3, --quick 1)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 s per run, 1 round")
    p.add_argument(
        "--servers",
        default=",".join(SERVER_ORDER),
        help="comma-separated subset of ddns,bind,knot (default all)",
    )
    p.add_argument(
        "--samples",
        type=int,
        help="propagation samples per round (default 10; --quick 5)",
    )
    p.add_argument("--outstanding", type=int, default=100, help="dnsperf -q for queries")
    p.add_argument("--server-cpu", type=int, help="CPU for the servers (default first)")
    p.add_argument("--client-cpu", type=int, help="CPU for the clients (default second)")
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in SERVER_ORDER]
    if unknown or not kinds:
        p.error(f"--servers: unknown {', '.join(unknown) or '(empty)'}; use ddns,bind,knot")
    args.kinds = [k for k in SERVER_ORDER if k in kinds]
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.records is not None and not 1000 <= args.records <= 5_000_000:
        p.error("--records must be between 1000 and 5000000")
    if args.duration is not None and not 0.5 <= args.duration <= 120:
        p.error("--duration must be between 0.5 and 120 seconds")
    return args


def make_settings(args: argparse.Namespace) -> Settings:
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = args.server_cpu if args.server_cpu is not None else cpus[0]
    client_cpu = args.client_cpu if args.client_cpu is not None else cpus[min(1, len(cpus) - 1)]
    if server_cpu == client_cpu:
        print(
            f"warning: servers and clients share CPU {server_cpu}; numbers will be low",
            file=sys.stderr,
        )
    large_hosts = args.records or (1_000_000 if args.huge else 100_000)
    return Settings(
        servers=args.kinds,
        rounds=args.rounds or (1 if args.quick else 3),
        duration=args.duration or (1.0 if args.quick else 10.0),
        large_hosts=large_hosts,
        samples=args.samples or (5 if args.quick else 10),
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        outstanding=args.outstanding,
        start_timeout=120.0 + large_hosts / 2000,  # 170 s for 100,000; 620 s for 1M
        sync_timeout=60.0 + large_hosts / 2000,
    )


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_programs(args.kinds)
    if missing:
        print("bench: missing programs, nothing was run:", file=sys.stderr)
        for program, package in missing:
            print(f"  {program}  (package: {package})", file=sys.stderr)
        packages = sorted({p for _, p in missing if " " not in p})
        if packages:
            print(f"install them with: apt-get install {' '.join(packages)}", file=sys.stderr)
        return 1
    settings = make_settings(args)
    started = dt.datetime.now(dt.UTC)
    command = " ".join(
        shlex.quote(a) for a in [os.path.relpath(sys.executable, Path.cwd()), *sys.argv]
    )
    meta: dict[str, object] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "machine": machine(),
        "versions": versions(),
    }
    # ddns-server's modules as an installed server has them: pip writes a
    # wheel's bytecode when it installs it, while an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 compiles every module from source at every
    # start (60-70 ms of the 100k first start). Stale files are simply unused.
    compileall.compile_dir(servers.REPO / "ddns_server", quiet=1)
    # The harness polls and sends from the client CPU, never from the servers'.
    os.sched_setaffinity(0, {settings.client_cpu})
    signal.signal(signal.SIGTERM, on_sigterm)

    work = OUT / "work"
    shutil.rmtree(work, ignore_errors=True)
    print(f"generating zones ({settings.large_hosts:,} hosts) in {work}", flush=True)
    inputs = zones.generate(work / "inputs", settings.large_hosts)

    results = Results()
    interrupted = False
    t0 = time.monotonic()
    try:
        for rnd in range(settings.rounds):
            print(f"round {rnd + 1}/{settings.rounds}", flush=True)
            for kind in settings.servers:
                Session(kind, rnd, inputs, settings, results).run()
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping servers, reporting what was measured", file=sys.stderr)
    finally:
        servers.stop_all()
    meta["elapsed_s"] = round(time.monotonic() - t0, 1)

    text = report(results, settings, meta, interrupted)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    json_path = OUT / f"results-{stamp}.json"
    data = {
        **meta,
        "interrupted": interrupted,
        "settings": settings.__dict__,
        "metrics": {m.key: {"label": m.label, "unit": m.unit, "better": m.better} for m in METRICS},
        "medians": {
            k: {m.key: v for m in METRICS if (v := results.median(k, m.key)) is not None}
            for k in settings.servers
        },
        "rounds": results.rounds,
        "errors": results.errors,
        "details": results.details,
        "markdown": text,
    }
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print()
    print(text)
    print(f"\nresults: {json_path.relative_to(BENCH.parent)}; logs: {work}")
    if interrupted:
        return 130
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
