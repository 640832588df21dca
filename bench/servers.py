"""The servers under test: one class per implementation, all driven the same way.

Each server gets its own folder with copies of the zone files, its config, its
journal and its log, listens on 127.0.0.1 only (UDP and TCP on one high port),
and runs in the foreground pinned to one CPU with `taskset`. `start()` spawns,
`wait_ready()` polls a SOA query on the large zone and returns the seconds since
the spawn, `rss_kib()` reads /proc, `stop()` sends SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import yaml

from zones import Inputs, ZoneFile

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent

# Every process started here, so that one call can stop them all (also on Ctrl-C).
_live: set[Server] = set()
_ports_given: set[int] = set()


class ServerError(Exception):
    """A server did not start, did not answer, or died."""


def free_port() -> int:
    """A random high port free for both UDP and TCP on 127.0.0.1, never handed out twice."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 61000)
        if port in _ports_given:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((HOST, port))
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                t.bind((HOST, port))
        except OSError:
            continue
        _ports_given.add(port)
        return port
    raise ServerError("no free port found on 127.0.0.1")


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the harness dies without cleaning up."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def stop_all() -> None:
    for server in list(_live):
        server.stop()


def ddns_server_command() -> Path:
    """The console script of the venv that runs this harness (fallback: the repo's .venv)."""
    beside = Path(sys.executable).parent / "ddns-server"
    return beside if beside.exists() else REPO / ".venv" / "bin" / "ddns-server"


def soa_serial(port: int, zone: str, timeout: float = 0.2) -> int | None:
    """The SOA serial the server on `port` answers authoritatively, or None."""
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    try:
        response = dns.query.udp(query, HOST, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return None
    if response.rcode() != dns.rcode.NOERROR or not response.flags & dns.flags.AA:
        return None
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)  # type: ignore[attr-defined]
    return None


class Server:
    """One server process in its own folder. Subclasses write the config."""

    kind = "server"
    label = "server"

    def __init__(self, folder: Path, inputs: Inputs, port: int, cpu: int) -> None:
        self.folder = folder
        self.inputs = inputs
        self.port = port
        self.cpu = cpu
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0
        self.starts = 0
        folder.mkdir(parents=True, exist_ok=True)

    # -- to override ------------------------------------------------------
    def write_config(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready_zone(self) -> str:
        """The zone whose SOA answer means the server is ready (all zones loaded)."""
        return self.inputs.large.origin

    # -- common -----------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def copy_zone(self, zone: ZoneFile) -> Path:
        target = self.folder / zone.path.name
        shutil.copyfile(zone.path, target)
        return target

    def start(self) -> None:
        if self.proc is not None:
            raise ServerError(f"{self.label} already running")
        if self.starts == 0:
            self.write_config()
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n==== start {self.starts}: {' '.join(self.command())}\n".encode())
        log.flush()
        self.spawned_at = time.monotonic()
        # taskset execs the server, so the PID is the server's own. A new session
        # keeps the terminal's Ctrl-C away from it: we stop it ourselves.
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(self.cpu), *self.command()],
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        _live.add(self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float) -> float:
        """Seconds from the spawn until the ready zone's SOA answers (polled every ~5 ms)."""
        deadline = self.spawned_at + timeout
        zone = self.ready_zone()
        while True:
            if not self.alive():
                raise ServerError(f"{self.label} exited during start-up:\n{self.log_tail()}")
            if soa_serial(self.port, zone, timeout=0.05) is not None:
                return time.monotonic() - self.spawned_at
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.label} did not answer SOA {zone} within {timeout:.0f} s:\n"
                    + self.log_tail()
                )
            time.sleep(0.005)

    def _status_kib(self, field: str) -> int:
        if self.proc is None:
            raise ServerError(f"{self.label} is not running")
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError as e:
            raise ServerError(f"{self.label}: cannot read /proc: {e}") from e
        for line in text.splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise ServerError(f"{self.label}: no {field} in /proc/{self.proc.pid}/status")

    def rss_kib(self) -> int:
        return self._status_kib("VmRSS")

    def peak_rss_kib(self) -> int:
        return self._status_kib("VmHWM")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        proc, self.proc = self.proc, None
        _live.discard(self)
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
            except ProcessLookupError:
                pass
        return proc.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])


class DdnsServer(Server):
    """ddns-server per docs INTERFACE.md: YAML config, SQLite journal in data_dir.

    The first start seeds the zones from their files; later starts of the same
    instance load from the journal in data_dir (the restart figure).
    """

    kind = "ddns"
    label = "ddns-server"

    def __init__(
        self, folder: Path, inputs: Inputs, port: int, cpu: int, notify: list[int]
    ) -> None:
        super().__init__(folder, inputs, port, cpu)
        self.notify = notify
        self.config_path = folder / "ddns.yaml"

    def write_config(self) -> None:
        key = self.inputs.key
        zones = []
        for zone in (self.inputs.small, self.inputs.large):
            self.copy_zone(zone)
            entry: dict[str, object] = {
                "name": zone.name,
                "file": zone.path.name,
                "update_policy": [{"grant": key.name, "match": "zonesub"}],
                "allow_transfer": ["127.0.0.0/8"],
            }
            if self.notify:
                entry["notify"] = [f"{HOST}:{p}" for p in self.notify]
            zones.append(entry)
        config = {
            "data_dir": "data",
            "listen": {"dns": [f"{HOST}:{self.port}"], "http": [], "https": []},
            "keys": [{"name": key.name, "algorithm": key.algorithm, "secret": key.secret}],
            "zones": zones,
        }
        (self.folder / "data").mkdir(exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self) -> list[str]:
        return [str(ddns_server_command()), "serve", "-c", str(self.config_path)]


class BindServer(Server):
    """BIND 9 `named -g -n 1` (one worker thread) as primary with update-policy."""

    kind = "bind"
    label = "BIND"

    def __init__(
        self, folder: Path, inputs: Inputs, port: int, cpu: int, notify: list[int]
    ) -> None:
        super().__init__(folder, inputs, port, cpu)
        self.notify = notify
        self.config_path = folder / "named.conf"

    def options(self) -> str:
        f = self.folder
        notify = "notify no;"
        if self.notify:
            targets = " ".join(f"{HOST} port {p};" for p in self.notify)
            # notify-delay 0: BIND otherwise holds back a NOTIFY that follows
            # another one within 5 s, which would measure the delay, not the server.
            notify = f"notify explicit; also-notify {{ {targets} }}; notify-delay 0;"
        return f"""options {{
    directory "{f}";
    pid-file "{f}/named.pid";
    session-keyfile "{f}/session.key";
    managed-keys-directory "{f}";
    listen-on port {self.port} {{ {HOST}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ any; }};
    allow-transfer {{ 127.0.0.0/8; }};
    {notify}
}};
controls {{ }};
"""

    def write_config(self) -> None:
        key = self.inputs.key
        parts = [
            self.options(),
            f'key "{key.name}" {{ algorithm {key.algorithm}; secret "{key.secret}"; }};\n',
        ]
        for zone in (self.inputs.small, self.inputs.large):
            path = self.copy_zone(zone)
            parts.append(
                f'zone "{zone.name}" {{ type primary; file "{path}"; journal "{path}.jnl";\n'
                f"    update-policy {{ grant {key.name} zonesub ANY; }}; }};\n"
            )
        self.config_path.write_text("".join(parts))

    def command(self) -> list[str]:
        # -g: foreground, log to stderr. As root without -u named keeps root,
        # which is what we want: the work folder belongs to the caller.
        return ["/usr/sbin/named", "-g", "-n", "1", "-c", str(self.config_path)]


class BindSecondary(BindServer):
    """A BIND secondary of one zone of a primary under test (for propagation)."""

    kind = "bind-secondary"
    label = "BIND secondary"

    def __init__(
        self, folder: Path, inputs: Inputs, port: int, cpu: int, primary_port: int, zone: ZoneFile
    ) -> None:
        super().__init__(folder, inputs, port, cpu, notify=[])
        self.primary_port = primary_port
        self.zone = zone

    def ready_zone(self) -> str:
        return self.zone.origin

    def write_config(self) -> None:
        path = self.folder / f"{self.zone.name}.secondary"
        self.config_path.write_text(
            self.options() + f'zone "{self.zone.name}" {{ type secondary; file "{path}";\n'
            f"    primaries {{ {HOST} port {self.primary_port}; }}; }};\n"
        )


class KnotServer(Server):
    """Knot DNS `knotd` with one UDP, one TCP and one background worker."""

    kind = "knot"
    label = "Knot"

    def __init__(
        self, folder: Path, inputs: Inputs, port: int, cpu: int, notify: list[int]
    ) -> None:
        super().__init__(folder, inputs, port, cpu)
        self.notify = notify
        self.config_path = folder / "knot.conf"

    def write_config(self) -> None:
        f = self.folder
        key = self.inputs.key
        user = "    user: root:root\n" if os.geteuid() == 0 else ""
        remotes = ""
        notify = ""
        if self.notify:
            remotes = "remote:\n" + "".join(
                f"  - id: secondary{i}\n    address: {HOST}@{p}\n"
                for i, p in enumerate(self.notify)
            )
            notify = "    notify: [{}]\n".format(
                ", ".join(f"secondary{i}" for i in range(len(self.notify)))
            )
        zones = ""
        for zone in (self.inputs.small, self.inputs.large):
            self.copy_zone(zone)
            zones += f"  - domain: {zone.name}\n"
        (f / "db").mkdir(exist_ok=True)
        self.config_path.write_text(
            f"""server:
    rundir: "{f}"
{user}    listen: {HOST}@{self.port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

control:
    listen: "{f}/knot.sock"

log:
  - target: stderr
    any: info

database:
    storage: "{f}/db"

key:
  - id: {key.name}
    algorithm: {key.algorithm}
    secret: {key.secret}

acl:
  - id: update
    key: {key.name}
    action: update
  - id: transfer
    address: 127.0.0.0/8
    action: transfer

{remotes}
template:
  - id: default
    storage: "{f}"
    file: "%s.zone"
    # Keep changes in the journal and never rewrite the zone file (like BIND's
    # journal); Knot's default rewrites the whole file after every update.
    zonefile-sync: -1
    journal-content: changes
    acl: [update, transfer]
{notify}
zone:
{zones}"""
        )

    def command(self) -> list[str]:
        return ["/usr/sbin/knotd", "-c", str(self.config_path)]


SERVER_CLASSES: dict[str, type[DdnsServer] | type[BindServer] | type[KnotServer]] = {
    "ddns": DdnsServer,
    "bind": BindServer,
    "knot": KnotServer,
}
