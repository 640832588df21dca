# ruff: noqa: E501  (the error tables read best one case per line)
"""/api/v1 and /client/v4 over real HTTP: RRsets, batches with if_serial,
versions and rollback, tokens created and revoked while serving, the
lockout of failed token attempts, and every documented error path (a JSON
error or Cloudflare's envelope, and the zone unchanged)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any

import pytest
from harness import ServerProcess, example_zone_text, require_tool, run

ZONE = "dyn.example.test"


def call(
    server: ServerProcess,
    method: str,
    path: str,
    secret: str | None = None,
    body: object = None,
    *,
    raw: bytes | None = None,
    ctype: str | None = "application/json",
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=20)
    headers = {}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None and ctype:
        headers["Content-Type"] = ctype
    conn.request(method, path, body=data, headers=headers)
    reply = conn.getresponse()
    text = reply.read()
    conn.close()
    assert reply.getheader("content-type") == "application/json", text
    return reply.status, json.loads(text)


def dig(server: ServerProcess, name: str, rdtype: str = "A") -> list[str]:
    proc = run(
        [require_tool("dig"), "+short", "@127.0.0.1", "-p", str(server.dns_port), name, rdtype]
    )
    return sorted(line for line in proc.stdout.splitlines() if line)


def token(server: ServerProcess, name: str, *extra: str) -> str:
    proc = server.cli("token", "create", name, "--zone", ZONE, *extra)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def versions(server: ServerProcess) -> list[dict[str, Any]]:
    proc = server.cli("journal", "log", ZONE, "--json")
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


@pytest.fixture
def served(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    require_tool("dig")
    return server_factory(
        {ZONE: example_zone_text()},
        {"dyndns": {"max_failed_logins": 50}},
    )


def test_rrsets_batches_versions_and_rollback(served: ServerProcess) -> None:
    server = served
    writer = token(server, "writer")
    admin = token(server, "admin", "--role", "admin")
    status, zones = call(server, "GET", "/api/v1/zones", writer)
    assert status == 200 and [z["name"] for z in zones["zones"]] == [f"{ZONE}."]
    status, zone = call(server, "GET", f"/api/v1/zones/{ZONE}", writer)
    start = zone["serial"]
    assert status == 200 and start == server.soa_serial()

    status, put = call(
        server, "PUT", f"/api/v1/zones/{ZONE}/records/api/A", writer,
        {"ttl": 120, "values": ["192.0.2.20", "192.0.2.21"]},
    )  # fmt: skip
    assert status == 200 and put["changed"] and put["serial"] == start + 1
    assert put["rrset"] == {
        "name": f"api.{ZONE}.", "type": "A", "ttl": 120, "values": ["192.0.2.20", "192.0.2.21"]
    }  # fmt: skip
    assert dig(server, f"api.{ZONE}") == ["192.0.2.20", "192.0.2.21"]
    status, same = call(
        server, "PUT", f"/api/v1/zones/{ZONE}/records/api/A", writer,
        {"ttl": 120, "values": ["192.0.2.21", "192.0.2.20"]},
    )  # fmt: skip
    assert status == 200 and not same["changed"] and same["serial"] == start + 1
    status, got = call(server, "GET", f"/api/v1/zones/{ZONE}/records/api.{ZONE}./A", writer)
    assert status == 200 and got["ttl"] == 120
    status, listed = call(server, "GET", f"/api/v1/zones/{ZONE}/records?name=api&type=A", writer)
    assert status == 200 and [r["name"] for r in listed["rrsets"]] == [f"api.{ZONE}."]

    batch = {
        "if_serial": start + 1,
        "changes": [
            {"op": "remove", "name": "api", "type": "A", "values": ["192.0.2.20"]},
            {"op": "replace", "name": "txt.api", "type": "TXT", "ttl": 60, "values": ['"a b"']},
            {"op": "add", "name": "@", "type": "MX", "values": ["20 mx2"]},
        ],
    }
    status, done = call(server, "POST", f"/api/v1/zones/{ZONE}/records", writer, batch)
    assert status == 200 and done["serial"] == start + 2
    assert dig(server, f"api.{ZONE}") == ["192.0.2.21"]
    assert dig(server, f"txt.api.{ZONE}", "TXT") == ['"a b"']
    assert f"20 mx2.{ZONE}." in dig(server, ZONE, "MX")
    # The same batch again: the zone moved on -> 412, nothing changed.
    status, stale = call(server, "POST", f"/api/v1/zones/{ZONE}/records", writer, batch)
    assert status == 412 and stale["error"]["code"] == "serial_mismatch"
    assert server.soa_serial() == start + 2
    status, deleted = call(server, "DELETE", f"/api/v1/zones/{ZONE}/records/txt.api/TXT", writer)
    assert status == 200 and deleted["serial"] == start + 3
    assert dig(server, f"txt.api.{ZONE}", "TXT") == []

    mine = [v for v in versions(server) if v["serial"] > start]
    assert [(v["channel"], v["who"]) for v in mine] == [("api", "writer")] * 3

    status, _ = call(server, "GET", f"/api/v1/zones/{ZONE}/versions", writer)
    assert status == 403
    status, listed_versions = call(server, "GET", f"/api/v1/zones/{ZONE}/versions?limit=2", admin)
    assert status == 200 and [v["serial"] for v in listed_versions["versions"]] == [
        start + 3, start + 2
    ]  # fmt: skip
    status, one = call(server, "GET", f"/api/v1/zones/{ZONE}/versions/{start + 1}", admin)
    assert status == 200 and one["who"] == "writer"
    assert f"api.{ZONE}. 120 IN A 192.0.2.20" in one["diff"]["added"]
    status, plan = call(
        server, "POST", f"/api/v1/zones/{ZONE}/rollback", admin, {"serial": start, "dry_run": True}
    )
    assert status == 200 and plan["removed"] == 2 and server.soa_serial() == start + 3
    status, rolled = call(
        server, "POST", f"/api/v1/zones/{ZONE}/rollback", admin, {"serial": start}
    )
    assert status == 200 and rolled["new_serial"] == start + 4
    assert dig(server, f"api.{ZONE}") == []
    newest = versions(server)[0]
    assert (newest["channel"], newest["who"]) == ("api", "admin")
    metrics = run([require_tool("curl"), "-s", f"{server.http_url}/metrics"]).stdout
    assert 'ddns_updates_total{channel="api",result="200"}' in metrics
    assert 'ddns_updates_total{channel="api",result="412"} 1.0' in metrics


def test_tokens_created_listed_revoked_while_serving(served: ServerProcess) -> None:
    server = served
    secret = token(server, "short", "--expires-days", "3", "--names", "home", "--types", "A")
    status, _ = call(server, "GET", f"/api/v1/zones/{ZONE}/records/home/A", secret)
    assert status == 200
    listing = server.cli("token", "list")
    assert listing.returncode == 0 and "short" in listing.stdout and secret not in listing.stdout
    listed = json.loads(server.cli("token", "list", "--json").stdout)
    assert listed[0]["name"] == "short" and listed[0]["names"] == ["home"]
    assert listed[0]["types"] == ["A"] and listed[0]["role"] == "write" and listed[0]["expires"]
    assert "hash" not in listed[0] and secret not in json.dumps(listed)
    again = server.cli("token", "create", "short", "--zone", ZONE)
    assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr
    bad = server.cli("token", "create", "x", "--zone", "nowhere.test")
    assert bad.returncode == 1 and "unknown zone" in bad.stderr
    revoked = server.cli("token", "revoke", "short")
    assert revoked.returncode == 0
    status, body = call(server, "GET", f"/api/v1/zones/{ZONE}/records/home/A", secret)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = call(server, "GET", "/client/v4/user/tokens/verify", secret)
    assert status == 401 and body["success"] is False and body["errors"][0]["code"] == 10000
    assert server.cli("token", "revoke", "short").returncode == 1


def test_failed_token_attempts_are_locked_out_per_source(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({ZONE: example_zone_text()}, {"dyndns": {"max_failed_logins": 3}})
    good = token(server, "good")
    for _ in range(3):
        assert call(server, "GET", "/api/v1/zones", "wrong-" + "x" * 30)[0] == 401
    status, body = call(server, "GET", "/api/v1/zones", good)
    assert status == 429 and body["error"]["code"] == "too_many_failures"
    status, body = call(server, "GET", "/client/v4/zones", good)
    assert status == 429 and body["success"] is False


def test_every_error_path_answers_json_and_changes_nothing(served: ServerProcess) -> None:
    server = served
    soa = server.cli("token", "create", "w", "--zone", ZONE, "--types", "A,SOA")
    assert soa.returncode == 1 and "SOA" in soa.stderr and not soa.stdout  # the server keeps it
    writer = token(server, "w2", "--names", "home,*.lab,@,www", "--types", "A,TXT,NS,CNAME,MX")
    reader = token(server, "r", "--role", "read")
    other = server.cli("token", "create", "o", "--zone", ZONE, "--names", "elsewhere")
    assert other.returncode == 0
    outsider = other.stdout.strip()
    serial = server.soa_serial()
    count = len(versions(server))
    v1 = f"/api/v1/zones/{ZONE}"
    a = {"ttl": 60, "values": ["192.0.2.1"]}
    cases: list[tuple[str, str, str | None, Any, dict[str, Any], int, str]] = [
        ("GET", "/api/v1/zones", None, None, {}, 401, "unauthorized"),
        ("GET", "/api/v1/zones", "not-a-token", None, {}, 401, "unauthorized"),
        ("GET", "/api/v1/zones/other.test", writer, None, {}, 403, "forbidden"),
        ("PUT", f"{v1}/records/www2/A", writer, a, {}, 403, "forbidden"),
        ("PUT", f"{v1}/records/home/AAAA", writer, {"values": ["2001:db8::1"]}, {}, 403, "forbidden"),
        ("PUT", f"{v1}/records/home/A", reader, a, {}, 403, "forbidden"),
        ("PUT", f"{v1}/records/home/A", outsider, a, {}, 403, "forbidden"),
        ("PUT", f"{v1}/records/@/SOA", writer, {"values": ["a. b. 1 2 3 4 5"]}, {}, 403, "forbidden"),
        ("PUT", f"{v1}/records/@/NS", writer, {"values": ["ns9.example.net."]}, {}, 403, "forbidden"),
        ("PUT", f"{v1}/records/home/BOGUS", writer, a, {}, 400, "bad_request"),
        ("PUT", f"{v1}/records/home/A", writer, {"values": ["not-an-ip"]}, {}, 400, "bad_request"),
        ("PUT", f"{v1}/records/home.other.test./A", writer, a, {}, 400, "bad_request"),
        ("PUT", f"{v1}/records/home/A", writer, {"values": []}, {}, 400, "bad_request"),
        ("PUT", f"{v1}/records/home/A", writer, {"ttl": -1, "values": ["192.0.2.1"]}, {}, 400, "bad_request"),
        ("PUT", f"{v1}/records/home/A", writer, {"values": ["192.0.2.1"], "x": 1}, {}, 400, "bad_request"),
        ("PUT", f"{v1}/records/home/A", writer, None, {"raw": b"{nope"}, 400, "bad_json"),
        ("PUT", f"{v1}/records/home/A", writer, None, {"raw": b"[1]"}, 400, "bad_json"),
        ("PUT", f"{v1}/records/home/A", writer, None, {"raw": b"\xff\xfe"}, 400, "bad_json"),
        ("PUT", f"{v1}/records/home/A", writer, a, {"ctype": "text/plain"}, 415, "unsupported_media_type"),
        ("PUT", f"{v1}/records/home/A", writer, None, {"raw": b" " * (1024 * 1024 + 1)}, 413, "too_large"),
        ("PUT", f"{v1}/records/www/CNAME", writer, {"values": ["home"]}, {}, 400, "cname_conflict"),
        ("POST", f"{v1}/records", writer, {"changes": []}, {}, 400, "bad_request"),
        ("POST", f"{v1}/records", writer, {"changes": [{"op": "zap", "name": "home", "type": "A"}]}, {}, 400, "bad_request"),
        ("POST", f"{v1}/records", writer, {"if_serial": "x", "changes": [{"op": "delete", "name": "home", "type": "A"}]}, {}, 400, "bad_request"),
        ("POST", f"{v1}/records", writer, {"if_serial": 1, "changes": [{"op": "delete", "name": "home", "type": "A"}]}, {}, 412, "serial_mismatch"),
        ("DELETE", f"{v1}/records/nothing.lab/TXT", writer, None, {}, 404, "not_found"),
        ("GET", f"{v1}/nowhere", writer, None, {}, 404, "not_found"),
        ("GET", "/api/v1/elsewhere", writer, None, {}, 404, "not_found"),
        ("POST", "/api/v1/zones", writer, {}, {}, 405, "method_not_allowed"),
        ("GET", f"{v1}/versions", writer, None, {}, 403, "forbidden"),
        ("POST", f"{v1}/rollback", writer, {"serial": 1}, {}, 403, "forbidden"),
        ("GET", f"{v1}/mirrors", reader, None, {}, 403, "forbidden"),
    ]  # fmt: skip
    for method, path, secret, body, extra, status, code in cases:
        got, answer = call(server, method, path, secret, body, **extra)
        assert (got, answer["error"]["code"]) == (status, code), (method, path, answer)
        assert answer["error"]["message"], answer
    _, refused = call(server, "PUT", f"{v1}/records/www2/A", writer, a)
    assert refused["error"]["refused"] == {"name": f"www2.{ZONE}."}
    _, refused = call(server, "PUT", f"{v1}/records/home/AAAA", writer, {"values": ["2001:db8::1"]})
    assert refused["error"]["refused"] == {"type": "AAAA"}

    cf = "/client/v4"
    status, zones = call(server, "GET", f"{cf}/zones", writer)
    zid = zones["result"][0]["id"]
    records = f"{cf}/zones/{zid}/dns_records"
    home = {"type": "A", "name": f"home.{ZONE}", "content": "192.0.2.1"}
    _, listed = call(server, "GET", f"{records}?name=home.{ZONE}&type=A", writer)
    existing = listed["result"][0]
    cf_cases: list[tuple[str, str, str | None, Any, dict[str, Any], int, int]] = [
        ("GET", f"{cf}/zones", None, None, {}, 401, 10000),
        ("GET", f"{cf}/user/tokens/verify", "nope", None, {}, 401, 10000),
        ("GET", f"{cf}/zones/{'0' * 32}", writer, None, {}, 404, 7003),
        ("GET", f"{cf}/accounts", writer, None, {}, 404, 7000),
        ("DELETE", f"{cf}/zones", writer, None, {}, 405, 7001),
        ("POST", records, writer, {**home, "type": "SPF", "content": "v=spf1"}, {}, 400, 1004),
        ("POST", records, writer, {**home, "content": "999.1.1.1"}, {}, 400, 1004),
        ("POST", records, writer, {**home, "name": "home.other.test."}, {}, 400, 1004),
        ("POST", records, writer, {**home, "content": existing["content"]}, {}, 400, 81057),
        ("POST", records, writer, {**home, "name": f"www2.{ZONE}"}, {}, 403, 10000),
        ("POST", records, reader, home, {}, 403, 10000),
        ("POST", records, writer, None, {"raw": b"{"}, 400, 9207),
        ("POST", records, writer, home, {"ctype": "application/x-www-form-urlencoded"}, 415, 6003),
        ("POST", records, writer, None, {"raw": b"0" * (1024 * 1024 + 1)}, 413, 9207),
        ("GET", f"{records}/{'f' * 32}", writer, None, {}, 404, 81044),
        ("PATCH", f"{records}/{existing['id']}", writer, {"content": "nope"}, {}, 400, 1004),
        ("PUT", f"{records}/{existing['id']}", writer, {**home, "type": "AAAA", "content": "2001:db8::5"}, {}, 403, 10000),
        ("POST", records, writer, {"type": "CNAME", "name": f"www.{ZONE}", "content": "home"}, {}, 400, 81053),
    ]  # fmt: skip
    for method, path, secret, body, extra, status, code in cf_cases:
        got, answer = call(server, method, path, secret, body, **extra)
        assert answer["success"] is False and answer["result"] is None, (method, path, answer)
        assert (got, answer["errors"][0]["code"]) == (status, code), (method, path, answer)
        assert answer["errors"][0]["message"] and answer["messages"] == []

    assert server.soa_serial() == serial
    assert len(versions(server)) == count
    log = server.log_text()
    assert "Traceback" not in log


def test_cloudflare_ids_are_stable_across_restarts(served: ServerProcess) -> None:
    server = served
    secret = token(server, "ids")
    _, zones = call(server, "GET", "/client/v4/zones", secret)
    zid = zones["result"][0]["id"]
    _, made = call(
        server, "POST", f"/client/v4/zones/{zid}/dns_records", secret,
        {"type": "TXT", "name": f"keep.{ZONE}", "content": "stay", "ttl": 120},
    )  # fmt: skip
    rid = made["result"]["id"]
    server.restart()
    _, zones = call(server, "GET", f"/client/v4/zones?name={ZONE}", secret)
    assert zones["result"][0]["id"] == zid
    status, again = call(server, "GET", f"/client/v4/zones/{zid}/dns_records/{rid}", secret)
    assert status == 200 and again["result"]["content"] == "stay"
