"""Failover status as people and other processes see it (`health status`, the API).

Pure: the status dict of each failover RRset (`rrset_status`), its ISO form
(`present`), the status file the server writes for `ddns-server health status`
in another process, and that command's text. The checker itself (states,
hysteresis, versions) is health.py.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dns.name
import dns.rdatatype

from ddns_server import model
from ddns_server.journal import Journal
from ddns_server.store import zone_key
from ddns_server.zonedata import name_to_wire

if TYPE_CHECKING:
    from ddns_server.health import FailoverSet

STATUS_FILE = "health-status.json"


def type_text(rdtype: int) -> str:
    return "A" if rdtype == dns.rdatatype.A else "AAAA"


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def address_text(rdata: bytes) -> str:
    """An A or AAAA record's address as text."""
    return str(ipaddress.ip_address(rdata))


def check_text(check: model.FailoverCheck) -> str:
    if check.protocol == "tcp":
        return f"tcp port {check.port}"
    text = f"{check.protocol} port {check.port} GET {check.path}"
    if check.host:
        text += f" Host {check.host}"
    if check.expect_status:
        text += " expect " + ",".join(str(s) for s in check.expect_status)
    return text


def present(row: dict[str, Any]) -> dict[str, Any]:
    """A raw status row (epoch seconds) with its times in ISO 8601 (UTC)."""
    targets = []
    for target in row.get("targets", []):
        target = dict(target)
        if isinstance(target.get("since"), (int, float)):
            target["since"] = _iso(target["since"])
        probe = target.get("last_probe")
        if isinstance(probe, dict) and isinstance(probe.get("time"), (int, float)):
            target["last_probe"] = dict(probe, time=_iso(probe["time"]))
        targets.append(target)
    return dict(row, targets=targets)


def rrset_status(
    origin: dns.name.Name,
    spec: model.Failover,
    served: list[str],
    rrset: FailoverSet | None,
) -> dict[str, Any]:
    """One failover RRset's status dict; `rrset` None when no checker runs."""
    targets: list[dict[str, Any]] = []
    if rrset is not None:
        for text, address in rrset.order:
            target = rrset.targets.get(address) if address is not None else None
            entry: dict[str, Any] = {"target": text, "address": address}
            if target is None:
                entry.update(state="no address", last_probe=None)
            else:
                entry.update(
                    state=target.state(),
                    since=target.since,
                    successes=target.successes,
                    failures=target.failures,
                    last_probe=None
                    if target.last_time is None
                    else {
                        "time": target.last_time,
                        "ok": target.last_ok,
                        "latency": target.last_latency,
                        "error": target.last_error or None,
                    },
                )
            targets.append(entry)
    else:
        for configured in spec.targets:
            text = (
                configured
                if isinstance(configured, str)
                else configured.relativize(origin).to_text()
            )
            targets.append(
                {"target": text, "address": None, "state": "unknown", "last_probe": None}
            )
    return {
        "zone": origin.to_text(omit_final_dot=True),
        "name": spec.name.to_text(omit_final_dot=True),
        "type": type_text(spec.rdtype),
        "policy": spec.policy,
        "on_all_down": spec.on_all_down,
        "check": check_text(spec.check),
        "interval": spec.interval,
        "timeout": spec.timeout,
        "rise": spec.rise,
        "fall": spec.fall,
        "ttl": spec.ttl,
        "targets": targets,
        "served": served,
        "all_down": rrset.all_down if rrset is not None else None,
        "switches": rrset.switches if rrset is not None else None,
        "checker_running": rrset is not None,
    }


# ---------------------------------------------------------------------------
# the status file: how `ddns-server health status` (another process) sees it


def write_status_file(path: Path, rrsets: list[dict[str, Any]], now: float) -> None:
    """Atomically replace the status file (temp file + rename)."""
    body = json.dumps({"pid": os.getpid(), "updated": now, "rrsets": rrsets}, separators=(",", ":"))
    fd, tmp = tempfile.mkstemp(prefix=".health-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# A status file older than this is a dead server's (the server writes it every few seconds).
STATUS_STALE = 60.0


def read_status_file(path: Path, now: float) -> dict[str, Any] | None:
    """The running server's status, or None when no server writes it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pid = int(data["pid"])
        updated = float(data["updated"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if now - updated > STATUS_STALE or not _alive(pid):
        return None
    return dict(data)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    except OSError:
        return False
    return True


def served_from_journal(config: model.Config) -> dict[tuple[str, int], list[str]]:
    """(owner text, rdtype) -> the addresses the journal holds, for every failover RRset."""
    out: dict[tuple[str, int], list[str]] = {}
    if not config.journal_path.exists():
        return out
    journal = Journal(config.journal_path)
    try:
        for zone in config.zones:
            if not zone.failover or not journal.has_zone(zone_key(zone.name)):
                continue
            wanted = {(name_to_wire(f.name).lower(), f.rdtype): f for f in zone.failover}
            for owner, rdtype, _ttl, rdata in journal.load(zone_key(zone.name)):
                spec = wanted.get((owner.lower(), rdtype))
                if spec is not None:
                    key = (spec.name.to_text(omit_final_dot=True), rdtype)
                    out.setdefault(key, []).append(address_text(rdata))
    finally:
        journal.close()
    return out


def health_status(
    config: model.Config, now: float | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The status rows of every configured failover RRset, and the running
    server's status file (None when no server runs: states unknown)."""
    running = read_status_file(config.data_dir / STATUS_FILE, time.time() if now is None else now)
    live = {
        (row.get("name"), row.get("type")): row
        for row in (running or {}).get("rrsets", [])
        if isinstance(row, dict)
    }
    served = served_from_journal(config)
    rows = []
    for zone in config.zones:
        for spec in zone.failover:
            name = spec.name.to_text(omit_final_dot=True)
            row = live.get((name, type_text(spec.rdtype)))
            row = present(row) if row is not None else rrset_status(zone.name, spec, [], None)
            row["served"] = served.get((name, spec.rdtype), [])
            rows.append(row)
    return rows, running


def status_text(rows: list[dict[str, Any]], running: dict[str, Any] | None) -> str:
    """`health status` as text: a block per RRset, a line per target."""
    lines = []
    if running is None:
        lines.append("no running server: target states are unknown (served: from the journal)")
    else:
        lines.append(
            f"server running (pid {running['pid']}), status as of {_iso(running['updated'])}"
        )
    if not rows:
        lines.append("no failover RRsets configured")
    for row in rows:
        lines.append("")
        lines.append(
            f"{row['name']} {row['type']}: policy {row['policy']},"
            f" on_all_down {row['on_all_down']},"
            f" {row['check']} every {row['interval']:g}s (timeout {row['timeout']:g}s,"
            f" rise {row['rise']}, fall {row['fall']})"
        )
        served = ", ".join(row["served"]) or "nothing"
        note = " (every target is down)" if row.get("all_down") else ""
        lines.append(f"  served: {served}{note}")
        lines.append(f"  {'TARGET':<20} {'ADDRESS':<40} {'STATE':<10} LAST PROBE")
        for target in row["targets"]:
            probe = target.get("last_probe")
            if probe is None:
                last = "-"
            else:
                result = "ok" if probe.get("ok") else f"failed: {probe.get('error') or '?'}"
                latency = probe.get("latency")
                ms = f" {latency * 1000:.1f} ms" if isinstance(latency, (int, float)) else ""
                last = f"{probe.get('time')} {result}{ms}"
            lines.append(
                f"  {target['target']:<20} {target.get('address') or '-':<40}"
                f" {target['state']:<10} {last}"
            )
    return "\n".join(lines) + "\n"
