"""The cloudflare provider (Cloudflare's SDK) against the loopback double of the
/client/v4 DNS endpoints in cloudflare_double.py (a double, not Cloudflare)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from cloudflare_double import CloudflareDouble
from harness import free_port
from provider_contract import (
    check_a_becomes_cname,
    check_create_replace_delete,
    delete,
    keys,
    managed,
    put,
    sample,
)

from ddns_server.mirrors.base import Change, PermanentError, RRset, TransientError

pytest.importorskip("cloudflare")

from ddns_server.mirrors.cloudflare import CloudflareProvider  # noqa: E402

ZONE = "example.test."


def start_double() -> CloudflareDouble:
    """The double serving example.test. with one record no mirror manages (the
    mirror end-to-end tests start it too)."""
    d = CloudflareDouble()
    d.base_url = d.start()
    d.token = secrets.token_hex(16)
    d.tokens[d.token] = "edit"
    d.zone_id = d.add_zone(ZONE)
    d.add_record(d.zone_id, {"name": "other", "type": "A", "content": "198.51.100.7", "ttl": 300})
    return d


@pytest.fixture
def double() -> Iterator[CloudflareDouble]:
    d = start_double()
    yield d
    d.stop()


def provider(d: CloudflareDouble, **extra: object) -> CloudflareProvider:
    options = {"api_token": d.token, "zone_id": d.zone_id, "base_url": d.base_url, "timeout": 5}
    options.update(extra)
    return CloudflareProvider({k: v for k, v in options.items() if v is not None}, ZONE)


OUTSIDE = RRset(f"other.{ZONE}", "A", 300, ("198.51.100.7",))


def test_create_replace_delete_every_type(double: CloudflareDouble) -> None:
    p = provider(double)
    check_create_replace_delete(p, ZONE)
    assert p.read([OUTSIDE.key]) == [OUTSIDE]
    # the outside record was never written to
    assert not [c for c in double.writes if "other" in c[1]]
    p.close()


def test_stored_form_is_cloudflares(double: CloudflareDouble) -> None:
    p = provider(double)
    p.apply(put(sample(ZONE)))
    stored = {(r["name"], r["type"]): r for r in double.zone_records(double.zone_id)}
    mx = [r for r in double.zone_records(double.zone_id) if r["type"] == "MX"]
    assert sorted((r["priority"], r["content"]) for r in mx) == [
        (10, "mail.example.test"),
        (20, "backup.example.test"),
    ]
    assert stored[("www.dyn.example.test", "CNAME")]["content"] == "home.dyn.example.test"
    assert stored[("home.dyn.example.test", "A")]["proxied"] is False
    # TXT content written unquoted by someone else reads back as the same value
    double.add_record(
        double.zone_id, {"name": "t.dyn", "type": "TXT", "content": "v=spf1 -all", "ttl": 1}
    )
    assert p.read([(f"t.dyn.{ZONE}", "TXT")]) == [
        RRset(f"t.dyn.{ZONE}", "TXT", 300, ('"v=spf1 -all"',))
    ]


def test_zone_looked_up_by_name_and_proxied(double: CloudflareDouble) -> None:
    p = provider(double, zone_id=None, proxied=True)
    rrset = RRset(f"home.dyn.{ZONE}", "A", 300, ("192.0.2.1",))
    p.apply(put([rrset]))
    (record,) = [r for r in double.zone_records(double.zone_id) if r["name"].startswith("home")]
    assert record["proxied"] is True and record["ttl"] == 1  # proxied: TTL "automatic"
    assert ("GET", "/client/v4/zones?name=example.test") in double.calls
    double.calls.clear()
    p.apply(put([rrset]))
    assert double.writes == []  # a proxied record is not rewritten on every push


def test_idempotent_reapply_writes_nothing(double: CloudflareDouble) -> None:
    p = provider(double)
    p.apply(put(sample(ZONE)))
    double.calls.clear()
    p.apply(put(sample(ZONE)))
    # every value already there: one list per RRset and no write
    assert [c[0] for c in double.calls] == ["GET"] * len(sample(ZONE))


def test_replace_updates_in_place_and_pagination(double: CloudflareDouble) -> None:
    double.max_per_page = 2
    p = provider(double)
    many = RRset(f"pool.dyn.{ZONE}", "A", 60, tuple(f"192.0.2.{i}" for i in range(1, 8)))
    p.apply(put([many]))
    assert p.read([many.key]) == [many]
    ids = {r["id"] for r in double.zone_records(double.zone_id) if r["name"].startswith("pool")}
    fewer = RRset(many.name, "A", 60, ("192.0.2.1", "192.0.2.50"))
    double.calls.clear()
    p.apply(put([fewer]))
    writes = [c[0] for c in double.writes]
    assert writes.count("PUT") == 1 and writes.count("DELETE") == 5 and "POST" not in writes
    left = {r["id"] for r in double.zone_records(double.zone_id) if r["name"].startswith("pool")}
    assert left < ids  # updated in place, not recreated
    assert sorted(p.read()) == sorted([fewer, OUTSIDE])


def test_rate_limited_is_transient_with_retry_after(double: CloudflareDouble) -> None:
    p = provider(double)
    double.fail_next(429, {"Retry-After": "17"})
    double.calls.clear()
    with pytest.raises(TransientError) as caught:
        p.apply(put(sample(ZONE)))
    assert caught.value.retry_after == 17.0
    assert len(double.calls) == 1  # the SDK did not retry on its own
    double.fail_next(503)
    with pytest.raises(TransientError):
        p.read()
    p.apply(put(sample(ZONE)))  # the repeat after the pause succeeds
    assert managed(p, sample(ZONE)) == sorted(sample(ZONE))


def test_bad_token_and_read_only_token_are_permanent(double: CloudflareDouble) -> None:
    bad = provider(double, api_token="not-a-token")
    double.calls.clear()
    with pytest.raises(PermanentError, match="401"):
        bad.apply(put(sample(ZONE)))
    assert len(double.calls) == 1
    double.tokens["reader"] = "read"
    reader = provider(double, api_token="reader")
    with pytest.raises(PermanentError, match="403"):
        reader.apply(put(sample(ZONE)))
    assert managed(provider(double), sample(ZONE)) == []


def test_unknown_zone_and_rejected_record_are_permanent(double: CloudflareDouble) -> None:
    with pytest.raises(PermanentError, match="not found"):
        provider(double, zone_id="0" * 32).read()
    other = CloudflareProvider(
        {"api_token": double.token, "base_url": double.base_url}, "elsewhere.test"
    )
    with pytest.raises(PermanentError, match="no zone"):
        other.read()
    p = provider(double)
    too_short = RRset(f"home.dyn.{ZONE}", "A", 5, ("192.0.2.1",))
    with pytest.raises(PermanentError, match="9003"):
        p.apply([Change(too_short.key, too_short)])


def test_peer_down_is_transient() -> None:
    port = free_port("tcp")
    p = CloudflareProvider(
        {"api_token": "t", "zone_id": "z", "base_url": f"http://127.0.0.1:{port}/client/v4"},
        ZONE,
    )
    with pytest.raises(TransientError):
        p.read()
    with pytest.raises(TransientError):
        p.apply(delete(sample(ZONE)))


def test_keys_not_asked_for_are_not_listed(double: CloudflareDouble) -> None:
    p = provider(double)
    p.apply(put(sample(ZONE)))
    double.calls.clear()
    assert p.read(keys(sample(ZONE)[:1])) == sample(ZONE)[:1]
    assert len(double.calls) == 1


def test_a_becomes_cname_in_one_push(double: CloudflareDouble) -> None:
    check_a_becomes_cname(provider(double), ZONE)
