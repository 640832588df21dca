"""A real BIND `named` as the upstream primary a mirror pushes to (rfc2136 provider).

named runs in the foreground on a free loopback port with its own folder,
serving UPSTREAM as primary with an `update-policy` that lets the mirror's
key change any name of the zone (`zonesub`), and AXFR for that key only.
"""

from __future__ import annotations

import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.update
from conftest import Spawn
from harness import BackgroundProcess, TsigKey, free_port, require_tool, run, wait_for

UPSTREAM = "example.test"

UPSTREAM_ZONE = """$ORIGIN example.test.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 604800 300
@ NS ns1
ns1 A 127.0.0.1
outside A 203.0.113.7
"""

Rows = set[tuple[str, str, int, str]]


class NamedPrimary:
    def __init__(
        self,
        spawn: Spawn,
        directory: Path,
        key: TsigKey,
        zone_text: str = UPSTREAM_ZONE,
        accepted_key: TsigKey | None = None,
        port: int | None = None,
    ) -> None:
        """`accepted_key`: the key named knows (default `key`; another secret
        under the same name makes every signed request fail)."""
        self.spawn = spawn
        self.directory = directory
        self.key = key
        self.port = port or free_port("both")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{UPSTREAM}.db").write_text(zone_text)
        known = accepted_key or key
        self.conf = directory / "named.conf"
        self.conf.write_text(
            f"""
{known.bind_clause()}
options {{
    directory "{directory}";
    pid-file "{directory}/named.pid";
    session-keyfile "{directory}/session.key";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    minimal-responses yes;
}};
controls {{ }};
logging {{
    category default {{ default_stderr; }};
    category update {{ default_stderr; }};
    category update-security {{ default_stderr; }};
    category security {{ default_stderr; }};
}};
zone "{UPSTREAM}" {{
    type primary;
    file "{directory}/{UPSTREAM}.db";
    allow-transfer {{ key "{known.name}"; }};
    update-policy {{ grant "{known.name}" zonesub ANY; }};
}};
"""
        )
        check = run([require_tool("named-checkconf"), str(self.conf)])
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc: BackgroundProcess | None = None
        self.starts = 0

    def start(self) -> NamedPrimary:
        self.starts += 1
        self.proc = self.spawn(
            [require_tool("named"), "-g", "-c", str(self.conf), "-n", "1"],
            f"named-primary-{self.starts}",
            cwd=self.directory,
        )
        wait_for(self.answers, timeout=20, interval=0.05, message=f"named up:\n{self.log()}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def log(self) -> str:
        return self.proc.log_text()[-3000:] if self.proc else ""

    def answers(self) -> bool:
        try:
            response = dns.query.udp(
                dns.message.make_query(UPSTREAM, "SOA"), "127.0.0.1", port=self.port, timeout=0.3
            )
        except (dns.exception.Timeout, OSError):
            return False
        return bool(response.answer)

    def rows(self) -> Rows:
        """Every record of the upstream zone (AXFR signed with the key), SOA aside."""
        out: Rows = set()
        for message in dns.query.xfr(
            "127.0.0.1",
            UPSTREAM,
            port=self.port,
            keyring=self.key.keyring(),
            timeout=5,
            relativize=False,
        ):
            for rrset in message.answer:
                if rrset.rdtype == dns.rdatatype.SOA:
                    continue
                for rd in rrset:
                    out.add(
                        (
                            rrset.name.to_text().lower(),
                            dns.rdatatype.to_text(rrset.rdtype),
                            rrset.ttl,
                            rd.to_text(),
                        )
                    )
        return out

    def update(self, *lines: tuple[str, ...]) -> None:
        """Change the upstream directly (someone else's hand at the provider)."""
        update = dns.update.UpdateMessage(UPSTREAM, keyring=self.key.keyring())
        for op, *args in lines:
            getattr(update, op)(*args)
        response = dns.query.tcp(update, "127.0.0.1", port=self.port, timeout=5)
        assert response.rcode() == 0, response


def poll(condition: object, timeout: float, message: str) -> None:
    wait_for(condition, timeout=timeout, interval=0.05, message=message)  # type: ignore[arg-type]


__all__ = ["UPSTREAM", "UPSTREAM_ZONE", "NamedPrimary", "Rows", "poll", "time"]
