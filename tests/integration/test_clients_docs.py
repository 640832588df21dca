"""docs/clients.md's local trial works as written (HTTP 8080, curl, ddclient).

The doc's user entry, curl line and ddclient trial.conf are taken from the
doc and run against a server like the default config's (plain HTTP), moved to
free ports; the ddclient cache behaves as the doc says on a repeated run.
"""

from __future__ import annotations

import base64
import re
import shlex
import urllib.request
from pathlib import Path

from conftest import ServerFactory
from harness import dig, example_zone_text, require_tool, run

from ddns_server.passwords import hash_password

DOC = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
ZONE = "dyn.example.test"
PASSWORD = "trial-password-1"


def section() -> str:
    text = DOC.read_text()
    return text[text.index("### Try it locally first") : text.index("### Try it with curl")]


def blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, re.S)


def test_local_trial_as_documented(server_factory: ServerFactory, tmp_path: Path) -> None:
    doc = section()
    assert "127.0.0.1:8080" in doc and "8443" not in doc
    default = (DOC.parents[1] / "conf" / "ddns.yaml").read_text()
    assert 'http: ["127.0.0.1:8080"]' in default  # the doc's premise
    server = server_factory(
        {ZONE: example_zone_text()},
        {
            "users": [
                {
                    "name": "alice",
                    "password_hash": hash_password(PASSWORD),
                    "hosts": [f"home.{ZONE}"],
                }
            ]
        },
    )
    port = server.http_port
    code = blocks(doc)
    curl_line = next(line for b in code for line in b.splitlines() if line.startswith("curl "))
    url = shlex.split(curl_line)[-1].replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    request = urllib.request.Request(url)
    auth = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {auth}")
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.read().decode().strip() == "good 192.0.2.55"
    assert dig(server, f"home.{ZONE}.", "A").rdata() == ["192.0.2.55"]

    ddclient = require_tool("ddclient")
    conf_text = next(b for b in code if "protocol=dyndns2" in b)
    conf = tmp_path / "trial.conf"
    conf.write_text(
        conf_text.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace("PASSWORD", PASSWORD)
    )
    command_line = next(
        line for b in code for line in b.splitlines() if line.startswith("ddclient ")
    )
    assert any("chmod 600 trial.conf" in b for b in code)
    conf.chmod(0o600)
    cache = tmp_path / "ddclient-trial.cache"
    argv = [
        ddclient if word == "ddclient" else str(cache) if word.endswith(".cache") else word
        for word in shlex.split(command_line)
    ]
    first = run(argv, cwd=tmp_path, timeout=60)
    assert dig(server, f"home.{ZONE}.", "A").rdata() == ["192.0.2.56"], first.stdout + first.stderr
    versions = server.cli("journal", "log", ZONE, "--json").stdout
    again = run(argv, cwd=tmp_path, timeout=60)
    assert "skipped" in (again.stdout + again.stderr).lower(), again.stdout + again.stderr
    assert server.cli("journal", "log", ZONE, "--json").stdout == versions  # nothing sent
    cache.unlink()  # as the doc says: a fresh trial
    third = run(argv, cwd=tmp_path, timeout=60)
    assert "good" in (third.stdout + third.stderr) or "nochg" in (third.stdout + third.stderr)
