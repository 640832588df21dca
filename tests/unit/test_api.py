"""Unit tests of the API core: token scopes and storage, request validation,
request -> changeset, the Cloudflare record mapping, the front ends' routing
and error shapes (a real Store on a temporary journal; no HTTP, no reactor)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import dns.name
import dns.rdatatype
import pytest
from zonetext import records_from_text

from ddns_server import model
from ddns_server.api import cloudflare, v1
from ddns_server.api.openapi import document
from ddns_server.api.records import (
    DEFAULT_TTL,
    ApiError,
    Change,
    changeset_for,
    check_scope,
    parse_owner,
    parse_rdata,
    parse_ttl,
    parse_type,
)
from ddns_server.api.service import ApiContext, ApiRequest, json_body
from ddns_server.api.tokens import NamePattern, Token, TokenStore
from ddns_server.errors import UserError
from ddns_server.journal import Journal
from ddns_server.mirrors import engine
from ddns_server.mirrors.spec import MirrorSpec
from ddns_server.store import Store
from ddns_server.zonedata import ZoneData, name_to_wire

ORIGIN = dns.name.from_text("dyn.example.test.")
ZONE_TEXT = """$ORIGIN dyn.example.test.
$TTL 3600
@ IN SOA ns1 hostmaster 1 3600 600 604800 300
  IN NS ns1
ns1 IN A 192.0.2.53
home IN A 192.0.2.1
www IN CNAME home
a.lab IN TXT "x"
"""
A = dns.rdatatype.A
TXT = dns.rdatatype.TXT


def token(names: tuple[str, ...] = (), types: set[int] | None = None, role: str = "write") -> Token:
    patterns = tuple(NamePattern.parse(p) for p in names)
    return Token("t", ORIGIN, patterns, frozenset(types) if types else None, role, 0.0, None)


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text, origin=ORIGIN)


# -- tokens and scopes ----------------------------------------------------------------


def test_name_patterns_are_the_mirrors_form() -> None:
    t = token(("home", "*.lab", "@"))
    assert t.can_name(n("home")) and t.can_name(ORIGIN)
    assert t.can_name(n("a.lab")) and t.can_name(n("x.y.lab"))
    assert not t.can_name(n("lab"))  # `*.lab` is every name *below* lab
    assert not t.can_name(n("sub.home")) and not t.can_name(n("www"))
    assert not t.can_name(dns.name.from_text("home.other.test."))
    assert token().can_name(n("anything.at.all")) and token().can_name(ORIGIN)
    for bad in ("", "a.", "*", "*.", "a.*.b", "x..y"):
        with pytest.raises(UserError):
            NamePattern.parse(bad)


def test_scope_refusals_name_what_was_refused() -> None:
    t = token(("home",), {A})
    check_scope(t, ORIGIN, n("home"), A)
    cases = [
        (n("www"), A, {"name": "www.dyn.example.test."}),
        (n("home"), TXT, {"type": "TXT"}),
        (ORIGIN, dns.rdatatype.SOA, {"type": "SOA"}),
        (ORIGIN, dns.rdatatype.NS, {"name": "dyn.example.test.", "type": "NS"}),
    ]
    for owner, rdtype, refused in cases:
        with pytest.raises(ApiError) as e:
            check_scope(t, ORIGIN, owner, rdtype)
        assert e.value.status == 403 and e.value.refused == refused
    check_scope(token(role="admin"), ORIGIN, ORIGIN, dns.rdatatype.NS)  # admin: apex NS
    with pytest.raises(ApiError):
        check_scope(token(role="admin"), ORIGIN, ORIGIN, dns.rdatatype.SOA)  # nobody: SOA


def test_roles_are_ordered() -> None:
    assert token(role="admin").at_least("write") and token(role="write").at_least("read")
    assert not token(role="read").at_least("write") and not token().at_least("admin")


def test_token_store_keeps_only_a_hash_and_expires(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    tokens = TokenStore(journal.conn)
    made, secret = tokens.create("ci", ORIGIN, ["home", "*.lab"], ["a", "TXT"], "read", 2, 1000.0)
    assert len(secret) == 40 and made.types == frozenset({A, TXT})
    dump = "\n".join(journal.conn.iterdump())
    assert secret not in dump and "ci" in dump
    found = tokens.find(secret, 1000.0 + 86400)
    assert found is not None and found.name == "ci" and found.role == "read"
    assert [p.text for p in found.names] == ["home", "*.lab"]
    assert tokens.find(secret, 1000.0 + 2 * 86400) is None  # expired
    assert tokens.find(secret + "x", 1000.0) is None
    assert tokens.find("", 1000.0) is None
    assert [t.name for t in tokens.list()] == ["ci"]
    assert tokens.list()[0].to_dict()["names"] == ["home", "*.lab"]
    with pytest.raises(UserError):
        tokens.create("ci", ORIGIN)
    for bad in (
        dict(name="a b"),
        dict(name="x", role="root"),
        dict(name="x", types=["SOA"]),
        dict(name="x", types=["NOPE"]),
        dict(name="x", names=["a."]),
        dict(name="x", expires_days=0),
    ):
        with pytest.raises(UserError):
            tokens.create(zone=ORIGIN, **bad)  # type: ignore[arg-type]
    assert tokens.revoke("ci") and not tokens.revoke("ci")
    assert tokens.find(secret, 1000.0) is None
    # The table migrates once; a second store on the same file finds it.
    other = TokenStore(sqlite3.connect(str(tmp_path / "j.sqlite3"), isolation_level=None))
    assert other.list() == []


# -- request validation -------------------------------------------------------------------


def test_owner_names_relative_absolute_and_fqdn_without_dot() -> None:
    assert parse_owner("@", ORIGIN) == ORIGIN
    assert parse_owner("home", ORIGIN) == n("home")
    assert parse_owner("home.dyn.example.test", ORIGIN) == n("home")
    assert parse_owner("home.dyn.example.test.", ORIGIN) == n("home")
    assert parse_owner("dyn.example.test", ORIGIN) == ORIGIN
    for bad in ("", None, "home.other.test.", "a..b", "x" * 64, 5):
        with pytest.raises(ApiError) as e:
            parse_owner(bad, ORIGIN)
        assert e.value.status == 400


def test_types_ttls_and_rdata_are_checked() -> None:
    assert parse_type("aaaa") == dns.rdatatype.AAAA
    for bad in ("BOGUS", "", None, "ANY", "AXFR", "OPT", 1):
        with pytest.raises(ApiError):
            parse_type(bad)
    assert parse_ttl(0) == 0 and parse_ttl(2**31 - 1) == 2**31 - 1
    for bad_ttl in (-1, 2**31, "60", 1.5, True, None):
        with pytest.raises(ApiError):
            parse_ttl(bad_ttl)
    assert parse_rdata(dns.rdatatype.MX, "10 mx", ORIGIN).endswith(name_to_wire(n("mx")))
    for rdtype, bad_value in ((A, "300.1.1.1"), (A, ""), (A, 7), (dns.rdatatype.MX, "mx")):
        with pytest.raises(ApiError) as e:
            parse_rdata(rdtype, bad_value, ORIGIN)
        assert e.value.status == 400


# -- request -> changeset -------------------------------------------------------------------


def zone() -> ZoneData:
    return ZoneData.from_records(ORIGIN, records_from_text(ZONE_TEXT, ORIGIN, "z"))


def wire(rdtype: int, text: str) -> bytes:
    return parse_rdata(rdtype, text, ORIGIN)


def test_changes_in_order_make_one_changeset() -> None:
    z = zone()
    cs = changeset_for(
        z,
        [
            Change(n("home"), A, "add", None, [wire(A, "192.0.2.2")]),
            Change(n("home"), A, "remove", None, [wire(A, "192.0.2.1")]),
            Change(n("new"), TXT, "replace", None, [wire(TXT, '"v"')]),
        ],
    )
    assert sorted(rr[3] for rr in cs.removed) == [wire(A, "192.0.2.1")]
    added = {(rr[0].lower(), rr[1], rr[2], rr[3]) for rr in cs.added}
    assert added == {
        (name_to_wire(n("home")), A, 3600, wire(A, "192.0.2.2")),
        (name_to_wire(n("new")), TXT, DEFAULT_TTL, wire(TXT, '"v"')),
    }
    # The same content again: nothing to do.
    same = [Change(n("home"), A, "replace", 3600, [wire(A, "192.0.2.1")])]
    assert not changeset_for(z, same)
    assert not changeset_for(z, [Change(n("nothing"), A, "delete")])


def test_cname_shares_its_name_with_nothing_else() -> None:
    z = zone()
    for changes in (
        [Change(n("www"), A, "add", None, [wire(A, "192.0.2.9")])],
        [Change(n("home"), dns.rdatatype.CNAME, "replace", None, [wire(dns.rdatatype.CNAME, "x")])],
        [Change(n("c"), dns.rdatatype.CNAME, "replace", None,
                [wire(dns.rdatatype.CNAME, "x"), wire(dns.rdatatype.CNAME, "y")])],
    ):  # fmt: skip
        with pytest.raises(ApiError) as e:
            changeset_for(z, changes)
        assert e.value.status == 400
    # Replacing the CNAME by an address in one batch is fine.
    swap = [
        Change(n("www"), dns.rdatatype.CNAME, "delete"),
        Change(n("www"), A, "replace", 60, [wire(A, "192.0.2.9")]),
    ]
    assert changeset_for(z, swap)


# -- the front ends -------------------------------------------------------------------------


@pytest.fixture
def ctx(tmp_path: Path) -> tuple[ApiContext, dict[str, str]]:
    journal = Journal(tmp_path / "journal.sqlite3")
    store = Store(journal, clock=lambda: 1000.0)
    store.open_zone(ORIGIN, records_from_text(ZONE_TEXT, ORIGIN, "z"))
    tokens = TokenStore(journal.conn)
    config = model.Config(path=tmp_path / "c.yaml", data_dir=tmp_path)
    secrets = {
        role: tokens.create(role, ORIGIN, role=role, now=1000.0)[1]
        for role in ("read", "write", "admin")
    }
    return ApiContext(store, tokens, lambda: config, lambda: 1000.0), secrets


def req(method: str, path: str, secret: str | None, body: object = None) -> ApiRequest:
    parts = path.split("?", 1)
    query: dict[str, list[str]] = {}
    if len(parts) == 2:
        for pair in parts[1].split("&"):
            k, _, v = pair.partition("=")
            query.setdefault(k, []).append(v)
    return ApiRequest(
        method,
        [p for p in parts[0].split("/") if p],
        query,
        f"Bearer {secret}" if secret else None,
        "application/json" if body is not None else None,
        json.dumps(body).encode() if body is not None else b"",
    )


def test_v1_put_and_if_serial(ctx: tuple[ApiContext, dict[str, str]]) -> None:
    c, s = ctx
    out = v1.handle(c, req("PUT", "zones/dyn.example.test/records/home/A", s["write"],
                           {"ttl": 60, "values": ["192.0.2.7"]}))  # fmt: skip
    assert out.status == 200 and out.body["serial"] == 2  # type: ignore[index]
    version = c.store.journal.versions("dyn.example.test.", 1)[0]
    assert (version.channel, version.who) == ("api", "write")
    batch = {"if_serial": 1, "changes": [{"op": "delete", "name": "home", "type": "A"}]}
    out = v1.handle(c, req("POST", "zones/dyn.example.test/records", s["write"], batch))
    assert out.status == 412
    out = v1.handle(
        c, req("PUT", "zones/dyn.example.test/records/home/A", s["read"], {"values": ["192.0.2.8"]})
    )
    assert out.status == 403 and c.store.zone_for(ORIGIN).serial == 2  # type: ignore[union-attr]
    assert v1.handle(c, req("GET", "openapi.json", None)).status == 200


def test_v1_reads_outside_the_scope_are_refused(ctx: tuple[ApiContext, dict[str, str]]) -> None:
    c, _ = ctx
    secret = c.tokens.create("home-a", ORIGIN, ["home"], ["A"], "read", now=1000.0)[1]
    base = "zones/dyn.example.test/records"
    assert v1.handle(c, req("GET", f"{base}/home/A", secret)).status == 200
    for path, refused in (
        (f"{base}/www/CNAME", {"name": "www.dyn.example.test."}),
        (f"{base}/home/TXT", {"type": "TXT"}),
        (f"{base}?name=ns1", {"name": "ns1.dyn.example.test."}),
    ):
        out = v1.handle(c, req("GET", path, secret))
        assert out.status == 403 and out.body["error"]["refused"] == refused  # type: ignore[index]
    listed = v1.handle(c, req("GET", base, secret)).body["rrsets"]  # type: ignore[index]
    assert [(r["name"], r["type"]) for r in listed] == [("home.dyn.example.test.", "A")]


def test_cloudflare_records_map_one_rdata_each(ctx: tuple[ApiContext, dict[str, str]]) -> None:
    c, s = ctx
    zid = cloudflare.zone_id(ORIGIN)
    base = f"zones/{zid}/dns_records"
    out = cloudflare.handle(c, req("POST", base, s["write"], {
        "type": "MX", "name": "dyn.example.test", "content": "mx.example.net", "priority": 5,
        "ttl": 1, "proxied": True}))  # fmt: skip
    body = out.body
    assert out.status == 200 and body["success"] is True  # type: ignore[index]
    record = body["result"]  # type: ignore[index]
    assert record["content"] == "mx.example.net" and record["priority"] == 5
    assert record["ttl"] == DEFAULT_TTL and record["proxied"] is False
    again = cloudflare.handle(c, req("GET", f"{base}/{record['id']}", s["read"]))
    assert again.body["result"]["id"] == record["id"]  # type: ignore[index]
    listed = cloudflare.handle(c, req("GET", f"{base}?type=TXT&per_page=1&page=1", s["read"]))
    info = listed.body["result_info"]  # type: ignore[index]
    assert info == {"page": 1, "per_page": 1, "count": 1, "total_count": 1, "total_pages": 1}
    beyond = cloudflare.handle(c, req("GET", f"{base}?type=TXT&per_page=1&page=2", s["read"]))
    assert beyond.body["result"] == []  # type: ignore[index]
    txt = cloudflare.handle(c, req("POST", base, s["write"], {
        "type": "TXT", "name": "long", "content": "x" * 300}))  # fmt: skip
    assert txt.body["result"]["content"] == "x" * 300  # type: ignore[index]
    gone = cloudflare.handle(c, req("DELETE", f"{base}/{record['id']}", s["write"]))
    assert gone.body["result"] == {"id": record["id"]}  # type: ignore[index]
    missing = cloudflare.handle(c, req("DELETE", f"{base}/{record['id']}", s["write"]))
    assert missing.status == 404 and missing.body["errors"][0]["code"] == 81044  # type: ignore[index]


def test_json_body_checks() -> None:
    for request, status in (
        (ApiRequest("PUT", [], too_large=True), 413),
        (ApiRequest("PUT", [], content_type="text/plain", body=b"{}"), 415),
        (ApiRequest("PUT", [], content_type="application/json", body=b"{"), 400),
        (ApiRequest("PUT", [], content_type="application/json", body=b"1"), 400),
    ):
        with pytest.raises(ApiError) as e:
            json_body(request)
        assert e.value.status == status
    ok = ApiRequest("PUT", [], content_type="application/json; charset=utf-8", body=b'{"a": 1}')
    assert json_body(ok) == {"a": 1}


def test_openapi_document_names_every_path() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {
        "/zones", "/zones/{zone}", "/zones/{zone}/records",
        "/zones/{zone}/records/{name}/{type}", "/zones/{zone}/versions",
        "/zones/{zone}/versions/{serial}", "/zones/{zone}/rollback",
    }  # fmt: skip
    json.dumps(doc)  # serialisable


def test_v1_aliases_batch_and_rollback(ctx: tuple[ApiContext, dict[str, str]]) -> None:
    c, s = ctx
    batch = {"changes": [{"op": "replace", "name": "x", "type": "A", "values": ["192.0.2.3"]}]}
    out = v1.handle(c, req("POST", "zones/dyn.example.test/changes", s["write"], batch))
    assert out.status == 200 and out.body["serial"] == 2  # type: ignore[index]
    out = v1.handle(c, req("POST", "zones/dyn.example.test/versions/1/rollback", s["write"]))
    assert out.status == 403
    out = v1.handle(c, req("POST", "zones/dyn.example.test/versions/1/rollback", s["admin"]))
    assert out.status == 200 and out.body["new_serial"] == 3  # type: ignore[index]
    version = c.store.journal.versions("dyn.example.test.", 1)[0]
    assert (version.serial, version.channel, version.who) == (3, "api", "admin")
    assert c.store.zone_for(ORIGIN).records_at(name_to_wire(n("x"))) == []  # type: ignore[union-attr]


def test_a_raising_listener_changes_no_api_answer(ctx: tuple[ApiContext, dict[str, str]]) -> None:
    """The API is a writer like the others: a hook that raises after the
    commit (a mirror, the health checker) never turns a durable change into
    an error answer, and the other hooks still run."""
    c, s = ctx
    seen: list[int] = []

    def broken(zone: object, version: object) -> None:
        raise RuntimeError("mirror down")

    c.store.add_listener(broken)
    c.store.add_listener(lambda zone, version: seen.append(zone.serial))
    out = v1.handle(c, req("PUT", "zones/dyn.example.test/records/home/A", s["write"],
                           {"ttl": 60, "values": ["192.0.2.7"]}))  # fmt: skip
    assert out.status == 200 and out.body["serial"] == 2  # type: ignore[index]
    assert c.store.journal.versions("dyn.example.test.", 1)[0].serial == 2
    assert seen == [2] and list(c.store.hook_errors.values()) == [1]


def test_v1_mirror_status_is_mirror_status_json(ctx: tuple[ApiContext, dict[str, str]]) -> None:
    c, s = ctx
    ours = MirrorSpec("public", "rfc2136", "dyn.example.test.", "example.test.", names=("home",))
    other = MirrorSpec("elsewhere", "rfc2136", "other.test.", "other.test.")
    config = dataclasses.replace(c.config(), mirrors=(ours, other))
    c.config = lambda: config
    out = v1.handle(c, req("GET", "zones/dyn.example.test/mirrors", s["admin"]))
    assert out.status == 200, out.body
    assert out.body == {"mirrors": [engine.status(c.store.journal, ours, 1000.0)]}
    assert out.body["mirrors"][0]["state"] == "full compare due"  # type: ignore[index]
    assert out.body["mirrors"][0]["current_serial"] == 1  # type: ignore[index]
    denied = v1.handle(c, req("GET", "zones/dyn.example.test/mirrors", s["write"]))
    assert denied.status == 403


def test_v1_failover_status_is_the_checkers(ctx: tuple[ApiContext, dict[str, str]]) -> None:
    c, s = ctx
    rows = [
        {"zone": "dyn.example.test", "name": "www.dyn.example.test", "served": ["192.0.2.1"]},
        {"zone": "other.test", "name": "www.other.test", "served": []},
    ]
    c.failover_status = lambda: rows
    out = v1.handle(c, req("GET", "zones/dyn.example.test/failover", s["admin"]))
    assert out.status == 200, out.body
    assert out.body == {"failover": rows[:1]}
    denied = v1.handle(c, req("GET", "zones/dyn.example.test/failover", s["write"]))
    assert denied.status == 403
