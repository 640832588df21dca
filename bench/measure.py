"""Measurements against a running server: dnsperf, AXFR with dig, propagation.

Every external command runs pinned to the client CPU with a bounded duration;
every result is checked (response codes, record counts) so that a broken
configuration shows up as an error, not as a fast number.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update

from servers import HOST, soa_serial
from zones import TsigKey, ZoneFile, host_label


class MeasureError(Exception):
    """A measurement failed or its result cannot be trusted."""


# Response codes that mean the server refused the work or broke: a run with
# more than a trace of them measures an error path, not the server.
BAD_RCODES = ("SERVFAIL", "REFUSED", "NOTAUTH", "NOTIMP", "FORMERR", "NOTZONE", "BADSIG", "BADKEY")


@dataclass
class DnsperfResult:
    per_second: float
    avg_latency_s: float
    min_latency_s: float
    max_latency_s: float
    sent: int
    completed: int
    lost: int
    run_time_s: float
    request_bytes: float  # average packet sizes: answers of equal work have equal size
    response_bytes: float
    rcodes: dict[str, int] = field(default_factory=dict)

    @property
    def turnaround_per_second(self) -> float:
        """1 / mean latency: the rate with one in flight if the client never paused.

        With one update in flight the time is either an update in flight (its
        latency) or dnsperf between a reply and the next send; dnsperf 2.10's
        sender sometimes misses the receive thread's wake-up and sleeps until its
        100 ms poll timeout, at random, against any server. Its own rate counts
        those pauses; this one counts only the round trips.
        """
        return 1.0 / self.avg_latency_s if self.avg_latency_s > 0 else 0.0

    @property
    def idle_share(self) -> float:
        """Share of the run with nothing in flight (meaningful with one in flight):
        run time minus completed x mean latency, over the run time."""
        if self.run_time_s <= 0:
            return 0.0
        busy = self.completed * self.avg_latency_s
        return max(0.0, self.run_time_s - busy) / self.run_time_s

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["turnaround_per_second"] = self.turnaround_per_second
        data["idle_share"] = self.idle_share
        return data


_NUM = r"([0-9]+(?:\.[0-9]+)?)"


def parse_dnsperf(text: str) -> DnsperfResult:
    """Parse the "Statistics:" summary of dnsperf (queries or, with -u, updates)."""

    def find(pattern: str) -> re.Match[str]:
        m = re.search(pattern, text)
        if m is None:
            raise MeasureError(f"dnsperf output lacks {pattern!r}:\n{text[-1500:]}")
        return m

    per_second = float(find(rf"(?:Queries|Updates) per second:\s+{_NUM}").group(1))
    lat = find(rf"Average Latency \(s\):\s+{_NUM} \(min {_NUM}, max {_NUM}\)")
    sizes = find(rf"Average packet size:\s+request {_NUM}, response {_NUM}")
    rcodes: dict[str, int] = {}
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        for code, count in re.findall(r"([A-Z0-9]+) ([0-9]+) \(", m.group(1)):
            rcodes[code] = int(count)
    return DnsperfResult(
        per_second=per_second,
        avg_latency_s=float(lat.group(1)),
        min_latency_s=float(lat.group(2)),
        max_latency_s=float(lat.group(3)),
        sent=int(find(r"(?:Queries|Updates) sent:\s+([0-9]+)").group(1)),
        completed=int(find(r"(?:Queries|Updates) completed:\s+([0-9]+)").group(1)),
        lost=int(find(r"(?:Queries|Updates) lost:\s+([0-9]+)").group(1)),
        run_time_s=float(find(rf"Run time \(s\):\s+{_NUM}").group(1)),
        request_bytes=float(sizes.group(1)),
        response_bytes=float(sizes.group(2)),
        rcodes=rcodes,
    )


def run_dnsperf(
    port: int,
    datafile: Path,
    duration: float,
    cpu: int,
    *,
    edns: bool = False,
    key: TsigKey | None = None,
    updates: bool = False,
    outstanding: int = 100,
) -> DnsperfResult:
    """One dnsperf run of `duration` seconds; raises MeasureError on a bad result."""
    cmd = ["taskset", "-c", str(cpu), "dnsperf", "-s", HOST, "-p", str(port)]
    cmd += ["-d", str(datafile), "-l", f"{duration:g}", "-q", str(outstanding), "-t", "2"]
    cmd += ["-c", "1", "-T", "1"]
    if edns:
        cmd.append("-e")
    if updates:
        cmd.append("-u")
    if key is not None:
        cmd += ["-y", key.dnsperf_arg()]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration + 30, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise MeasureError(f"dnsperf did not finish within {duration + 30:g} s") from e
    if proc.returncode != 0:
        raise MeasureError(f"dnsperf exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    result = parse_dnsperf(proc.stdout)
    check_dnsperf(result, updates)
    return result


def check_dnsperf(result: DnsperfResult, updates: bool) -> None:
    what = "updates" if updates else "queries"
    if result.completed == 0:
        raise MeasureError(f"no {what} answered ({result.sent} sent)")
    if result.lost > result.sent * 0.01:
        raise MeasureError(f"{result.lost} of {result.sent} {what} lost")
    bad = {code: n for code, n in result.rcodes.items() if code in BAD_RCODES}
    if sum(bad.values()) > result.completed * 0.01:
        raise MeasureError(f"{what} answered with errors: {result.rcodes}")
    if updates and result.rcodes.get("NOERROR", 0) < result.completed * 0.99:
        raise MeasureError(f"updates not all NOERROR: {result.rcodes}")


def spot_check(port: int, small: ZoneFile, large: ZoneFile) -> None:
    """A few answers checked by content, so that a fast but wrong server shows up."""

    def ask(qname: str, rdtype: str) -> dns.message.Message:
        query = dns.message.make_query(qname, rdtype, use_edns=0)
        try:
            return dns.query.udp(query, HOST, port=port, timeout=2.0)
        except dns.exception.DNSException as e:
            raise MeasureError(f"spot check {qname} {rdtype}: {e}") from e

    def texts(section: list[dns.rrset.RRset], rdtype: str) -> set[str]:
        wanted = dns.rdatatype.from_text(rdtype)
        return {rd.to_text() for rrset in section if rrset.rdtype == wanted for rd in rrset}

    problems = []
    r = ask(f"{host_label(1)}.{large.origin}", "A")
    if texts(r.answer, "A") != {"10.0.0.1"} or not r.flags & dns.flags.AA:
        problems.append(f"{host_label(1)} A: {r.answer}")
    r = ask(f"nx-spot-check.{large.origin}", "A")
    if r.rcode() != dns.rcode.NXDOMAIN or not texts(r.authority, "SOA"):
        problems.append(f"NXDOMAIN: {dns.rcode.to_text(r.rcode())} {r.authority}")
    r = ask(f"{host_label(1)}.{large.origin}", "AAAA")
    if r.rcode() != dns.rcode.NOERROR or r.answer or not texts(r.authority, "SOA"):
        problems.append(f"NODATA: {dns.rcode.to_text(r.rcode())} {r.answer} {r.authority}")
    r = ask(f"ftp.{small.origin}", "A")
    if not texts(r.answer, "CNAME") or texts(r.answer, "A") != {"192.0.2.1"}:
        problems.append(f"CNAME chain: {r.answer}")
    r = ask(f"anything.wild.{small.origin}", "A")
    if texts(r.answer, "A") != {"192.0.2.6"}:
        problems.append(f"wildcard: {r.answer}")
    r = ask(f"host.sub.{small.origin}", "A")
    if r.flags & dns.flags.AA or not texts(r.authority, "NS") or not texts(r.additional, "A"):
        problems.append(f"referral: AA={bool(r.flags & dns.flags.AA)} {r.authority} {r.additional}")
    if problems:
        raise MeasureError("wrong answers: " + "; ".join(problems))


@dataclass
class AxfrResult:
    seconds: float  # dig printing every record to /dev/null
    quiet_seconds: float  # dig +noall +stats: the transfer and parsing only
    records: int
    messages: int


def axfr(port: int, zone: ZoneFile, cpu: int, timeout: float = 120.0) -> AxfrResult:
    """Wall time of `dig AXFR` (output to /dev/null), checked by a second quiet run."""
    base = ["taskset", "-c", str(cpu), "dig", f"@{HOST}", "-p", str(port), zone.origin, "AXFR"]
    base += ["+time=10", "+tries=1"]
    t0 = time.monotonic()
    try:
        subprocess.run(base, stdout=subprocess.DEVNULL, timeout=timeout, check=True)
        seconds = time.monotonic() - t0
        t0 = time.monotonic()
        proc = subprocess.run(
            [*base, "+noall", "+stats"], capture_output=True, text=True, timeout=timeout
        )
        quiet = time.monotonic() - t0
    except subprocess.TimeoutExpired as e:
        raise MeasureError(f"AXFR did not finish within {timeout:g} s") from e
    except subprocess.CalledProcessError as e:
        raise MeasureError(f"dig AXFR exited {e.returncode}") from e
    m = re.search(r"XFR size: ([0-9]+) records \(messages ([0-9]+)", proc.stdout)
    if m is None:
        raise MeasureError(f"AXFR failed: {proc.stdout.strip()[-300:]}")
    records = int(m.group(1))
    if records < zone.names:
        raise MeasureError(f"AXFR returned {records} records, the zone has {zone.names}+")
    return AxfrResult(seconds, quiet, records, int(m.group(2)))


def wait_synced(primary_port: int, secondary_port: int, zone: str, timeout: float) -> float:
    """Wait until the secondary serves the primary's serial; returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        want = soa_serial(primary_port, zone)
        have = soa_serial(secondary_port, zone)
        if want is not None and have is not None and have == want:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise MeasureError(f"secondary did not get {zone} from the primary within {timeout:g} s")


def send_update(
    port: int, zone: ZoneFile, key: TsigKey, label: str, address: str, timeout: float = 2.0
) -> None:
    """A TSIG-signed UPDATE replacing `label`'s A record; returns once acknowledged.

    Sent over UDP like nsupdate does; a lost datagram is retried (the update is
    idempotent), three tries in all.
    """
    tsig = dns.tsig.Key(key.name, key.secret, key.algorithm)
    error: Exception | None = None
    for _ in range(3):
        update = dns.update.UpdateMessage(zone.origin, keyring=tsig)
        update.replace(label, 300, "A", address)
        try:
            response = dns.query.udp(update, HOST, port=port, timeout=timeout)
        except dns.exception.Timeout as e:
            error = e
            continue
        except dns.exception.DNSException as e:
            raise MeasureError(f"update of {label}: {e}") from e
        if response.rcode() != dns.rcode.NOERROR:
            raise MeasureError(f"update of {label}: {dns.rcode.to_text(response.rcode())}")
        return
    raise MeasureError(f"update of {label}: no answer in 3 tries ({error})")


def answers_address(port: int, qname: str, address: str) -> bool:
    query = dns.message.make_query(qname, dns.rdatatype.A)
    try:
        response = dns.query.udp(query, HOST, port=port, timeout=0.05)
    except (dns.exception.DNSException, OSError):
        return False
    return any(rdata.to_text() == address for rrset in response.answer for rdata in rrset)


def propagation(
    primary_port: int,
    secondary_port: int,
    zone: ZoneFile,
    key: TsigKey,
    samples: int,
    deadline: float = 10.0,
    gap: float = 1.0,
) -> list[float | None]:
    """Seconds from an acknowledged update on the primary to the secondary answering it.

    The secondary is polled with a query about every millisecond; None marks a
    sample that did not arrive within `deadline`. Samples are `gap` seconds
    apart: a BIND secondary defers a NOTIFY that arrives within a few hundred
    milliseconds of its previous transfer, which would measure the secondary.
    """
    results: list[float | None] = []
    for i in range(samples):
        label = host_label(i * 7919 % zone.names)
        address = f"198.18.{(i >> 8) & 255}.{i & 255}"
        qname = f"{label}.{zone.origin}"
        send_update(primary_port, zone, key, label, address)
        t0 = time.monotonic()
        seen: float | None = None
        while time.monotonic() - t0 < deadline:
            if answers_address(secondary_port, qname, address):
                seen = time.monotonic() - t0
                break
            time.sleep(0.001)
        results.append(seen)
        time.sleep(gap)
    return results
