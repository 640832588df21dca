"""Helpers for the integration tests: the real server as a subprocess on loopback.

Nothing here imports ddns_server: the server is driven only through its
user-facing contract (config file, command line, DNS and HTTP on sockets), the
way users and their tools see it.

The main pieces:

- ``ServerProcess``: writes a config and zone files into a folder, runs
  ``python -m ddns_server serve -c CONFIG`` and waits until it answers.
- ``dig()`` / ``parse_dig()`` / ``DigResult``: run the real ``dig`` and read its
  output (BIND 9.18 format).
- ``require_tool()``, ``free_port()``, ``run()``, ``wait_for()``, ``TsigKey``,
  ``BackgroundProcess``, ``http_get()``.

The fixtures built on these (``server_factory``, ``spawn``) are in conftest.py.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import copy
import errno
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import pytest
import yaml
from waiting import holds_for, wait_for  # noqa: F401 - re-exported for the tests

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ZONE_NAME = "dyn.example.test"
EXAMPLE_ZONE_FILE = REPO_ROOT / "zones" / "dyn.example.test.zone"

# Debian installs daemons (named, inadyn) in sbin, which is not on every PATH.
EXTRA_TOOL_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")

POLL_INTERVAL = 0.05  # seconds between readiness checks
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


# ---------------------------------------------------------------------------
# tools and processes


def tool_path(name: str) -> str | None:
    """Where command ``name`` is, looking in PATH and the sbin folders."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *EXTRA_TOOL_DIRS])
    return shutil.which(name, path=search)


def require_tool(name: str) -> str:
    """Return the path of command ``name``, or skip the test (fail it in CI).

    Locally a missing tool skips with a reason that ``pytest -ra`` shows; in CI
    (CI=true) the tools are meant to be installed, so a missing one fails the
    test instead of letting the suite pass with nothing tested.
    """
    path = tool_path(name)
    if path is None:
        reason = f"{name} not installed (run `make tools` or scripts/ensure-tools.sh)"
        if in_ci():
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def run(
    cmd: Sequence[str | os.PathLike[str]],
    input: str | None = None,
    timeout: float = 30,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to completion and capture stdout/stderr as text.

    Never raises for a non-zero exit status (check ``returncode``); on timeout
    the process is killed and ``subprocess.TimeoutExpired`` propagates.
    Extra keyword arguments (``env``, ``cwd``) go to ``subprocess.run``.
    """
    kwargs.setdefault("stdin", None if input is not None else subprocess.DEVNULL)
    return subprocess.run(
        [os.fspath(c) for c in cmd],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


# Every process started here, so that an interpreter exit that skips fixture
# teardown (a crash, a second Ctrl-C) still leaves nothing running.
_live: list[subprocess.Popen[bytes]] = []


@atexit.register
def _kill_leftovers() -> None:
    for proc in _live:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
                proc.wait(5)


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


class BackgroundProcess:
    """A long-running helper process (a BIND secondary, a ddclient daemon...).

    Output goes to ``log_path``. Use the ``spawn`` fixture, which stops every
    process at teardown, rather than this class directly.
    """

    def __init__(
        self,
        cmd: Sequence[str | os.PathLike[str]],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.cmd = [os.fspath(c) for c in cmd]
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # closed in stop()
        self._log.write(f"$ {shlex.join(self.cmd)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=True,  # a signal to the group reaches its children too
        )
        _live.append(self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, signum: int) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL the process group."""
        if self.running():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_group()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.running():
            self.signal(signal.SIGKILL)
        self.proc.wait()
        self._kill_group()

    def _kill_group(self) -> None:
        # Daemons may fork; anything left in the session dies with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


# ---------------------------------------------------------------------------
# ports


_handed_out: set[int] = set()


def free_port(kind: str = "both", host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing is bound to right now.

    ``kind``: "both" (free for UDP *and* TCP, as a DNS listener needs), "tcp"
    or "udp". The check binds the sockets and closes them, so another process
    can still take the port before the server does; ports already handed out
    by this process are never handed out again, which rules out the common
    race between two servers of the same test.
    """
    if kind not in ("both", "tcp", "udp"):
        raise ValueError(f"kind must be 'both', 'tcp' or 'udp', not {kind!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    first = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    for _ in range(200):
        with socket.socket(family, first) as s1:
            s1.bind((host, 0))
            port = s1.getsockname()[1]
            if port in _handed_out:
                continue
            if kind == "both":
                try:
                    with socket.socket(family, socket.SOCK_DGRAM) as s2:
                        s2.bind((host, port))
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        continue
                    raise
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free {kind} port found on {host}")


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# TSIG keys


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key in every form the tests need (config, dig, nsupdate, dnspython)."""

    name: str
    secret: str  # base64
    algorithm: str = "hmac-sha256"

    @classmethod
    def generate(cls, name: str, algorithm: str = "hmac-sha256") -> TsigKey:
        size = {"hmac-sha512": 64, "hmac-sha384": 48}.get(algorithm, 32)
        return cls(name, base64.b64encode(secrets.token_bytes(size)).decode(), algorithm)

    def config(self) -> dict[str, str]:
        """The entry for the config's ``keys:`` list (inline secret)."""
        return {"name": self.name, "algorithm": self.algorithm, "secret": self.secret}

    def dig_arg(self) -> str:
        """``-y`` value for dig/nsupdate: ``ALG:NAME:SECRET``."""
        return f"{self.algorithm}:{self.name}:{self.secret}"

    def bind_clause(self) -> str:
        """A BIND ``key`` clause, as in named.conf and ``nsupdate -k FILE``."""
        return (
            f'key "{self.name}" {{\n\talgorithm {self.algorithm};\n\tsecret "{self.secret}";\n}};\n'
        )

    def write(self, path: Path) -> Path:
        """Write the BIND clause to ``path`` (mode 0600) and return the path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.bind_clause())
        path.chmod(0o600)
        return path

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        return dns.tsigkeyring.from_text({self.name: (self.algorithm, self.secret)})

    def dnspython_key(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.name, self.secret, self.algorithm)


# ---------------------------------------------------------------------------
# the server


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``extra``; nested dicts merge, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def example_zone_text() -> str:
    """The repository's sample zone (zones/dyn.example.test.zone)."""
    return EXAMPLE_ZONE_FILE.read_text()


class ServerError(RuntimeError):
    """The server did not start, or stopped when it should not have."""


class ServerProcess:
    """``python -m ddns_server serve`` on loopback ports, with its own folder.

    ``zones`` maps a zone name to its master-file text (or None for a zone
    with no ``file:``); each is written to ``DIR/zones/NAME.zone``. ``extra``
    is merged into the generated config (nested dicts merge, lists replace),
    e.g. ``{"keys": [key.config()], "users": [...]}``; ``zone_extra`` maps a
    zone name to keys merged into that zone's entry, e.g.
    ``{"dyn.example.test": {"allow_transfer": ["127.0.0.0/8"]}}``.
    With ``https=True`` an https listener on its own port is added.

    The constructor only writes files; ``start()`` runs the server and waits
    until it answers. Use the ``server_factory`` fixture in tests: it starts
    the server and stops it at teardown. As a context manager, the server is
    started on entry and stopped on exit.
    """

    def __init__(
        self,
        directory: Path,
        zones: Mapping[str, str | None],
        extra: Mapping[str, Any] | None = None,
        *,
        zone_extra: Mapping[str, Mapping[str, Any]] | None = None,
        https: bool = False,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        if not zones:
            raise ValueError("ServerProcess needs at least one zone")
        unknown = set(zone_extra or {}) - set(zones)
        if unknown:
            raise ValueError(f"zone_extra names zones not in zones: {sorted(unknown)}")
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.zones = dict(zones)
        self.zone_names = list(zones)
        self.ready_timeout = ready_timeout
        self.extra_env = dict(env or {})
        self._dns_port = free_port("both")
        self._http_port = free_port("tcp")
        self._https_port = free_port("tcp") if https else None
        self.log_path = self.directory / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.starts = 0

        zone_dir = self.directory / "zones"
        zone_dir.mkdir(exist_ok=True)
        zone_entries = []
        for name, text in self.zones.items():
            entry: dict[str, Any] = {"name": name}
            if text is not None:
                path = zone_dir / f"{name.rstrip('.') or 'root'}.zone"
                path.write_text(text)
                entry["file"] = str(path)
            entry = deep_merge(entry, (zone_extra or {}).get(name, {}))
            zone_entries.append(entry)
        listen: dict[str, list[str]] = {
            "dns": [f"127.0.0.1:{self._dns_port}"],
            "http": [f"127.0.0.1:{self._http_port}"],
            "https": [f"127.0.0.1:{self._https_port}"] if https else [],
        }
        self.config: dict[str, Any] = deep_merge(
            {"data_dir": str(self.directory / "data"), "listen": listen, "zones": zone_entries},
            extra or {},
        )
        self.write_config()

    # -- files

    @property
    def config_path(self) -> Path:
        return self.directory / "config.yaml"

    @property
    def data_dir(self) -> Path:
        return Path(self.config["data_dir"])

    def zone_file(self, zone: str) -> Path:
        return self.directory / "zones" / f"{zone.rstrip('.') or 'root'}.zone"

    def write_config(self) -> Path:
        """(Re)write config.yaml from ``self.config``; follow with ``reload()``."""
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self.config_path

    # -- addresses

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def dns_port(self) -> int:
        return self._dns_port

    @property
    def http_port(self) -> int:
        return self._http_port

    @property
    def https_port(self) -> int:
        if self._https_port is None:
            raise AttributeError("this server was created without https=True")
        return self._https_port

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self._http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    # -- life cycle

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait: bool = True) -> ServerProcess:
        """Start the server and wait until it answers (unless not `wait`); returns self."""
        if self.running():
            raise ServerError("server already running")
        self.starts += 1
        cmd = [sys.executable, "-m", "ddns_server", "serve", "-c", str(self.config_path)]
        env = dict(os.environ)
        env.pop("DDNS_CONFIG", None)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env.update(self.extra_env)
        self._log = open(self.log_path, "ab")  # closed in stop()
        self._log.write(f"----- start #{self.starts}: {shlex.join(cmd)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env=env,
        )
        _live.append(self.proc)
        if not wait:
            return self
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll until a UDP SOA query for the first zone gets any response and
        the HTTP listener (if configured) accepts connections."""
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        query = dns.message.make_query(self.zone_names[0], "SOA")
        dns_ok = False
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise ServerError(
                    f"server exited with status {code} before answering; "
                    f"log tail:\n{tail(self.log_text())}"
                )
            if not dns_ok:
                try:
                    dns.query.udp(query, "127.0.0.1", port=self._dns_port, timeout=0.25)
                    dns_ok = True
                except (dns.exception.DNSException, OSError):
                    pass
            if dns_ok and self._http_listeners_up():
                return
            if time.monotonic() >= deadline:
                raise ServerError(
                    f"server not answering on 127.0.0.1:{self._dns_port} after "
                    f"{self.ready_timeout} s; log tail:\n{tail(self.log_text())}"
                )
            time.sleep(POLL_INTERVAL)  # polling inside the deadline above

    def _http_listeners_up(self) -> bool:
        listen = self.config.get("listen") or {}
        for key in ("http", "https"):
            for address in listen.get(key) or []:
                host, _, port = str(address).rpartition(":")
                host = host.strip("[]")
                if host in ("0.0.0.0", ""):
                    host = "127.0.0.1"
                elif host == "::":
                    host = "::1"
                if not port_is_open(host, int(port)):
                    return False
        return True

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns the exit status."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()
        return None if self.proc is None else self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL at once (a crash, as far as the server can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()
        return None if self.proc is None else self.proc.returncode

    def restart(self) -> ServerProcess:
        """Stop (cleanly) and start again on the same ports with the same data."""
        self.stop()
        return self.start()

    def reload(self) -> None:
        """Send SIGHUP (config reload)."""
        if not self.running():
            raise ServerError("server not running")
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"<ServerProcess {self.directory} dns={self._dns_port} {state}>"

    # -- clients

    def query(
        self,
        qname: str,
        rdtype: str = "A",
        *,
        tcp: bool = False,
        timeout: float = 2.0,
        **make_query_kwargs: Any,
    ) -> dns.message.Message:
        """One query with dnspython (UDP unless ``tcp``); raises on timeout."""
        q = dns.message.make_query(qname, rdtype, **make_query_kwargs)
        send = dns.query.tcp if tcp else dns.query.udp
        return send(q, "127.0.0.1", port=self._dns_port, timeout=timeout)

    def soa_serial(self, zone: str | None = None) -> int:
        """The serial the server answers for ``zone`` (default: the first)."""
        zone = zone or self.zone_names[0]
        response = self.query(zone, "SOA")
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(rrset[0].serial)
        raise AssertionError(f"no SOA in the answer for {zone}:\n{response}")

    def cli(
        self, *args: str, input: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m ddns_server ARGS`` with ``-c`` this server's config.

        ``-c CONFIG`` goes right after the (sub)command words, e.g.
        ``cli("journal", "log", "dyn.example.test", "--json")``.
        """
        if args and args[0] in ("keygen", "passwd"):  # these take no config
            argv = list(args)
        else:
            words = 2 if args and args[0] in ("zone", "journal", "token", "mirror") else 1
            argv = [*args[:words], "-c", str(self.config_path), *args[words:]]
        env = dict(os.environ)
        env.pop("DDNS_CONFIG", None)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        return run(
            [sys.executable, "-m", "ddns_server", *argv],
            input=input,
            timeout=timeout,
            env=env,
            cwd=self.directory,
        )


def http_get(
    url: str,
    *,
    auth: tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, str]:
    """GET ``url`` (optionally with HTTP Basic auth); returns (status, body text).

    HTTP error statuses are returned, not raised. No certificate checks (the
    test server's https certificate is self-signed).
    """
    request = urllib.request.Request(url, headers=dict(headers or {}))
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


# ---------------------------------------------------------------------------
# dig


Record = tuple[str, int, str, str, str]  # (name, ttl, class, type, rdata text)

_CLASSES = {"IN", "CH", "CS", "HS", "NONE", "ANY"}
_SECTIONS = {
    "QUESTION": "question",
    "ANSWER": "answer",
    "AUTHORITY": "authority",
    "ADDITIONAL": "additional",
    # UPDATE messages, as dig shows them
    "ZONE": "question",
    "PREREQUISITE": "answer",
    "UPDATE": "authority",
    "TSIG PSEUDO": "tsig",
    "SIG0 PSEUDO": "tsig",
    "OPT PSEUDO": "opt",
}
_HEADER_RE = re.compile(r"->>HEADER<<-\s*opcode:\s*(\w+),\s*status:\s*(\w+),\s*id:\s*(\d+)")
_FLAGS_RE = re.compile(r"^;;\s*flags:([^;]*);(.*)$")
_COUNT_RE = re.compile(r"(QUERY|ZONE|ANSWER|PREREQ|AUTHORITY|UPDATE|ADDITIONAL):\s*(\d+)")
_SECTION_RE = re.compile(r"^;;\s*([A-Z0-9 ]+?)\s*SECTION:\s*$")
_SERVER_RE = re.compile(r"^;;\s*SERVER:\s*(\S+?)#(\d+)\((.*?)\)\s*(?:\((\w+)\))?")
_MSG_SIZE_RE = re.compile(r"^;;\s*MSG SIZE\s+rcvd:\s*(\d+)")
_XFR_RE = re.compile(r"^;;\s*XFR size:\s*(\d+) records \(messages (\d+), bytes (\d+)\)")


@dataclass
class Edns:
    """The OPT pseudo-section of a response, as dig prints it."""

    present: bool = False
    version: int | None = None
    udp: int | None = None
    flags: set[str] = field(default_factory=set)
    options: dict[str, str] = field(default_factory=dict)  # "COOKIE" -> "abcd... (good)"


@dataclass
class DigResult:
    """One response as dig printed it (or what dig said instead of one).

    ``status`` is None when there was no response header: a timeout, a refused
    connection, or a zone transfer (AXFR/IXFR output has records but no
    header; its records are in ``answer``). Records are tuples
    ``(name, ttl, class, type, rdata)`` with names as dig prints them (absolute,
    trailing dot) and the rdata's whitespace collapsed outside quoted strings.
    TSIG/SIG(0) records are in ``tsig``, never in the other sections.
    """

    raw: str = ""
    returncode: int | None = None
    stderr: str = ""
    opcode: str | None = None
    status: str | None = None
    id: int | None = None
    flags: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    question: list[tuple[str, str, str]] = field(default_factory=list)
    answer: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    tsig: list[Record] = field(default_factory=list)
    edns: Edns = field(default_factory=Edns)
    server: str | None = None
    port: int | None = None
    protocol: str | None = None  # "UDP" or "TCP" (dig 9.18 prints it)
    msg_size: int | None = None
    xfr: dict[str, int] | None = None  # {"records", "messages", "bytes"} for AXFR/IXFR
    truncated_retry: bool = False  # ";; Truncated, retrying in TCP mode."
    transfer_failed: bool = False  # "; Transfer failed."
    timed_out: bool = False
    connection_refused: bool = False
    notes: list[str] = field(default_factory=list)  # other ";;" lines: warnings, errors
    more: list[DigResult] = field(default_factory=list)  # further responses, in order

    @property
    def responded(self) -> bool:
        """True when a response header or transfer records were printed."""
        return self.status is not None or bool(self.answer) or self.xfr is not None

    @property
    def rcode(self) -> str | None:
        return self.status

    def records(
        self, section: str = "answer", rdtype: str | None = None, name: str | None = None
    ) -> list[Record]:
        """The records of ``section`` filtered by type and owner (case-insensitive,
        trailing dot optional)."""
        rows: list[Record] = getattr(self, section)
        if rdtype is not None:
            rows = [r for r in rows if r[3].upper() == rdtype.upper()]
        if name is not None:
            want = name.rstrip(".").lower()
            rows = [r for r in rows if r[0].rstrip(".").lower() == want]
        return rows

    def rdata(self, rdtype: str | None = None, name: str | None = None) -> list[str]:
        """The answer section's rdata texts, optionally filtered."""
        return [r[4] for r in self.records("answer", rdtype, name)]

    def __str__(self) -> str:
        return self.raw


def _tokens(text: str) -> list[str]:
    """Split on whitespace, keeping quoted strings (with escapes) whole."""
    out: list[str] = []
    current = ""
    in_quote = False
    escaped = False
    for ch in text:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            current += ch
            escaped = True
        elif ch == '"':
            current += ch
            in_quote = not in_quote
        elif ch.isspace() and not in_quote:
            if current:
                out.append(current)
                current = ""
        else:
            current += ch
    if current:
        out.append(current)
    return out


def _strip_comment(line: str) -> tuple[str, int]:
    """Remove a ``;`` comment outside quotes; return (text, paren depth change)."""
    depth = 0
    in_quote = False
    escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_quote = not in_quote
        elif not in_quote:
            if ch == ";":
                return line[:i], depth
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
    return line, depth


def _parse_record(text: str) -> Record | None:
    tokens = _tokens(text.replace("(", " ").replace(")", " "))
    if len(tokens) < 4 or not tokens[1].isdigit():
        return None
    rdclass = tokens[2].upper()
    if rdclass not in _CLASSES and not re.fullmatch(r"CLASS\d+", rdclass):
        return None
    return (tokens[0], int(tokens[1]), rdclass, tokens[3].upper(), " ".join(tokens[4:]))


def _parse_one(lines: list[str]) -> DigResult:
    result = DigResult(raw="\n".join(lines))
    section: str | None = None
    pending = ""  # a multi-line record (dig +multiline) being joined
    depth = 0
    for line in lines:
        if pending:
            text, change = _strip_comment(line)
            pending += " " + text
            depth += change
            if depth <= 0:
                _add_record(result, section, pending)
                pending, depth = "", 0
            continue
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(";"):
            section = _parse_comment_line(result, stripped, section)
            continue
        text, depth = _strip_comment(line)
        if depth > 0:
            pending = text
            continue
        depth = 0
        _add_record(result, section, text)
    if pending:
        _add_record(result, section, pending)
    return result


def _add_record(result: DigResult, section: str | None, text: str) -> None:
    record = _parse_record(text)
    if record is None:
        result.notes.append(text.strip())
        return
    if record[3] in ("TSIG", "SIG") and record[1] == 0 and record[2] == "ANY":
        result.tsig.append(record)
    elif section in ("answer", "authority", "additional", "tsig"):
        getattr(result, section).append(record)
    else:
        # zone transfers print records without a section header
        result.answer.append(record)


def _parse_comment_line(result: DigResult, line: str, section: str | None) -> str | None:
    """Read one line starting with ';'; returns the section in effect after it."""
    header = _HEADER_RE.search(line)
    if header:
        result.opcode, result.status, result.id = header[1], header[2], int(header[3])
        return None
    flags = _FLAGS_RE.match(line)
    if flags:
        result.flags = set(flags[1].split())
        result.counts = {k: int(v) for k, v in _COUNT_RE.findall(flags[2])}
        return None
    sect = _SECTION_RE.match(line)
    if sect:
        return _SECTIONS.get(sect[1].strip(), sect[1].strip().lower())
    if section == "opt" and not line.startswith(";;"):
        _parse_opt_line(result.edns, line)
        return section
    if section == "question" and not line.startswith(";;"):
        tokens = line.lstrip(";").split()
        if len(tokens) >= 3:
            result.question.append((tokens[0], tokens[-2].upper(), tokens[-1].upper()))
        elif len(tokens) == 2:
            result.question.append((tokens[0], "IN", tokens[1].upper()))
        return section
    server = _SERVER_RE.match(line)
    if server:
        result.server, result.port = server[1], int(server[2])
        result.protocol = server[4]
        return None
    size = _MSG_SIZE_RE.match(line)
    if size:
        result.msg_size = int(size[1])
        return None
    xfr = _XFR_RE.match(line)
    if xfr:
        result.xfr = {"records": int(xfr[1]), "messages": int(xfr[2]), "bytes": int(xfr[3])}
        return None
    lowered = line.lower()
    if "truncated, retrying in tcp mode" in lowered:
        result.truncated_retry = True
    elif "transfer failed" in lowered:
        result.transfer_failed = True
    elif "timed out" in lowered:
        result.timed_out = True
    elif "connection refused" in lowered:
        result.connection_refused = True
    if line.startswith(";; ") and not _is_boilerplate(line):
        result.notes.append(line[3:].strip())
    elif line.startswith("; ") and ("transfer failed" in lowered):
        result.notes.append(line[2:].strip())
    return section


_BOILERPLATE = ("Got answer:", "global options:", "Query time:", "WHEN:")


def _is_boilerplate(line: str) -> bool:
    return line[3:].strip().startswith(_BOILERPLATE)


def _parse_opt_line(edns: Edns, line: str) -> None:
    body = line.lstrip(";").strip()
    if body.startswith("EDNS:"):
        edns.present = True
        version = re.search(r"version:\s*(\d+)", body)
        flags = re.search(r"flags:([^;]*);", body)
        udp = re.search(r"udp:\s*(\d+)", body)
        edns.version = int(version[1]) if version else None
        edns.flags = set(flags[1].split()) if flags else set()
        edns.udp = int(udp[1]) if udp else None
    elif ":" in body:
        name, _, value = body.partition(":")
        edns.options[name.strip().upper()] = value.strip()


def parse_dig(text: str, returncode: int | None = None, stderr: str = "") -> DigResult:
    """Parse dig's output (BIND 9.18 format, default display options).

    Several responses (dig with several queries) come back as the first one
    with the others in ``.more``. Lines dig prints before the first header
    (errors, "Truncated, retrying in TCP mode.") belong to the first response.
    Not supported: +short, +nottlid, +noclass, +yaml.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _HEADER_RE.search(line)]
    chunks: list[list[str]] = []
    if len(starts) <= 1:
        chunks.append(lines)
    else:
        # each response starts at its ";; Got answer:" (or header) line
        cuts = []
        for n, i in enumerate(starts):
            j = i - 1 if i > 0 and "Got answer" in lines[i - 1] else i
            cuts.append(0 if n == 0 else j)
        cuts.append(len(lines))
        chunks = [lines[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    results = [_parse_one(chunk) for chunk in chunks]
    first = results[0]
    first.more = results[1:]
    first.raw = text
    for r in results:
        r.returncode = returncode
        r.stderr = stderr
    if stderr:
        low = stderr.lower()
        first.timed_out = first.timed_out or "timed out" in low
        first.connection_refused = first.connection_refused or "connection refused" in low
    return first


def dig_command(server: ServerProcess | int, *args: str) -> list[str]:
    port = server if isinstance(server, int) else server.dns_port
    return [require_tool("dig"), "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", *args]


def dig(server: ServerProcess | int, *args: str, timeout: float = 30) -> DigResult:
    """Run the real ``dig @127.0.0.1 -p PORT +time=2 +tries=1 ARGS`` and parse it.

    ``server`` is a ServerProcess or a port. dig's exit status is in
    ``returncode`` (9: no reply); it never raises for a DNS-level failure.
    """
    proc = run(dig_command(server, *args), timeout=timeout)
    return parse_dig(proc.stdout, proc.returncode, proc.stderr)
