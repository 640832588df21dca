"""The dnspod provider (Tencent Cloud's SDK) against the loopback double of the
DNSPod API 3.0 actions in dnspod_double.py (a double, not DNSPod)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from dnspod_double import DnspodDouble
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

pytest.importorskip("tencentcloud.dnspod")

from ddns_server.mirrors.dnspod import DnspodProvider  # noqa: E402

ZONE = "example.test."
DOMAIN = "example.test"
OUTSIDE = RRset(f"other.{ZONE}", "A", 600, ("198.51.100.7",))


def start_double() -> DnspodDouble:
    """The double serving example.test with records no mirror manages (the mirror
    end-to-end tests start it too)."""
    d = DnspodDouble()
    d.start()
    d.secret_ids.add("AKIDtest")
    d.add_domain(DOMAIN)
    d.add_record(
        DOMAIN, {"SubDomain": "other", "RecordType": "A", "Value": "198.51.100.7", "TTL": 600}
    )
    # the same name and type on another line (split horizon) is not ours either
    d.add_record(
        DOMAIN,
        {
            "SubDomain": "home.dyn",
            "RecordType": "A",
            "Value": "10.0.0.1",
            "RecordLine": "电信",
            "TTL": 600,
        },
    )
    return d


@pytest.fixture
def double() -> Iterator[DnspodDouble]:
    d = start_double()
    yield d
    d.stop()


def provider(d: DnspodDouble, **extra: Any) -> DnspodProvider:
    options: dict[str, Any] = {
        "secret_id": "AKIDtest",
        "secret_key": secrets.token_hex(16),
        "endpoint": d.endpoint,
        "timeout": 5,
    }
    options.update(extra)
    return DnspodProvider(options, ZONE)


def untouched(d: DnspodDouble) -> list[tuple[str, str, str, str]]:
    return sorted(
        (r["Name"], r["Type"], r["Value"], r["Line"])
        for r in d.domain_records(DOMAIN)
        if (r["Name"], r["Type"]) in (("other", "A"), ("@", "NS")) or r["Line"] != "默认"
    )


def test_create_replace_delete_every_type(double: DnspodDouble) -> None:
    before = untouched(double)
    p = provider(double)
    check_create_replace_delete(p, ZONE)
    assert p.read([OUTSIDE.key]) == [OUTSIDE]
    assert untouched(double) == before  # other names, the default NS, the other line


def test_stored_form_is_dnspods(double: DnspodDouble) -> None:
    p = provider(double)
    p.apply(put(sample(ZONE)))
    stored = double.domain_records(DOMAIN)
    mx = sorted((r["MX"], r["Value"]) for r in stored if r["Type"] == "MX")
    assert mx == [(10, "mail.example.test."), (20, "backup.example.test.")]
    assert {r["Name"] for r in stored if r["Type"] == "MX"} == {"dyn"}
    (txt,) = [r for r in stored if r["Type"] == "TXT"]
    assert txt["Value"] == "v=spf1 -all" and txt["Name"] == "home.dyn"
    # everything is written on the default line; only the fixture's record is on another
    assert [r["Value"] for r in stored if r["Line"] != "默认"] == ["10.0.0.1"]


def test_apex_is_at_and_full_read(double: DnspodDouble) -> None:
    p = provider(double)
    apex = RRset(ZONE, "TXT", 600, ('"google-site-verification=abc"',))
    p.apply(put([apex]))
    assert {r["Name"] for r in double.domain_records(DOMAIN) if r["Type"] == "TXT"} == {"@"}
    everything = p.read()
    assert apex in everything and OUTSIDE in everything
    assert RRset(ZONE, "NS", 86400, ("f1g1ns1.dnspod.net.", "f1g1ns2.dnspod.net.")) in everything


def test_idempotent_reapply_and_in_place_modify(double: DnspodDouble) -> None:
    p = provider(double)
    p.apply(put(sample(ZONE)))
    double.calls.clear()
    p.apply(put(sample(ZONE)))
    assert double.calls == ["DescribeRecordList"] * len(sample(ZONE))  # no write
    home_a = sample(ZONE)[0]
    moved = RRset(home_a.name, "A", 60, ("192.0.2.99",))
    double.calls.clear()
    p.apply([Change(moved.key, moved)])
    assert double.writes == ["ModifyRecord"]
    assert p.read([moved.key]) == [moved]


def test_pagination(double: DnspodDouble) -> None:
    double.max_limit = 3
    p = provider(double)
    many = RRset(f"pool.dyn.{ZONE}", "A", 600, tuple(f"192.0.2.{i}" for i in range(1, 9)))
    p.apply(put([many]))
    assert p.read([many.key]) == [many]
    assert many in p.read()


def test_rate_limit_and_server_errors_are_transient(double: DnspodDouble) -> None:
    p = provider(double)
    double.fail_next("RequestLimitExceeded")
    with pytest.raises(TransientError) as caught:
        p.apply(put(sample(ZONE)))
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    double.fail_next("InternalError")
    with pytest.raises(TransientError):
        p.read()
    double.calls.clear()
    p.apply(put(sample(ZONE)))
    assert managed(p, sample(ZONE)) == sorted(sample(ZONE))


def test_bad_credentials_are_permanent(double: DnspodDouble) -> None:
    p = provider(double, secret_id="AKIDunknown")
    double.calls.clear()
    with pytest.raises(PermanentError, match="AuthFailure.SecretIdNotFound"):
        p.apply(put(sample(ZONE)))
    assert len(double.calls) == 1  # no retry inside the SDK
    assert managed(provider(double), sample(ZONE)) == []


def test_unknown_domain_and_rejected_record_are_permanent(double: DnspodDouble) -> None:
    other = DnspodProvider(
        {"secret_id": "AKIDtest", "secret_key": "k", "endpoint": double.endpoint}, "elsewhere.test"
    )
    with pytest.raises(PermanentError, match="DomainNotExists"):
        other.read()
    p = provider(double, record_line="nowhere")
    with pytest.raises(PermanentError, match="RecordLineInvalid"):
        p.apply(put(sample(ZONE)[:1]))


def test_peer_down_is_transient() -> None:
    port = free_port("tcp")
    p = DnspodProvider(
        {"secret_id": "AKIDtest", "secret_key": "k", "endpoint": f"http://127.0.0.1:{port}"}, ZONE
    )
    with pytest.raises(TransientError, match="ClientNetworkError"):
        p.read(keys(sample(ZONE)))
    with pytest.raises(TransientError):
        p.apply(delete(sample(ZONE)))


def test_a_becomes_cname_in_one_push(double: DnspodDouble) -> None:
    check_a_becomes_cname(provider(double), ZONE)
