"""The route53 provider against moto's server mode, a real HTTP emulator of the
Route 53 API, on loopback.

Moto checks SigV4 signatures against its IAM users only while authentication
is switched on (its /moto-api/reset-auth). The bad-credentials test switches it
on for its calls and off again: moto 5.2 computes the signature of a bodiless
GET over the wrong payload, so even good credentials fail its reads while it
is on.
"""

from __future__ import annotations

import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import BackgroundProcess, free_port, port_is_open, tail, wait_for
from provider_contract import (
    check_a_becomes_cname,
    check_create_replace_delete,
    delete,
    keys,
    managed,
    put,
    sample,
)

from ddns_server.mirrors.base import PermanentError, RRset, TransientError

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

from ddns_server.mirrors.route53 import Route53Provider  # noqa: E402

ZONE = "example.test."
SETUP_KEYS = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}


class Moto:
    def __init__(self, proc: BackgroundProcess, url: str, key_id: str, secret: str) -> None:
        self.proc = proc
        self.url = url
        self.key_id = key_id
        self.secret = secret

    def client(self) -> Any:
        return boto3.client(
            "route53",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )

    def new_zone(self) -> str:
        """A fresh hosted zone with one record that no mirror manages."""
        client = self.client()
        zone = client.create_hosted_zone(Name=ZONE, CallerReference=str(uuid.uuid4()))
        zone_id: str = zone["HostedZone"]["Id"]
        client.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": OUTSIDE_AWS}]},
        )
        return zone_id

    def authentication(self, on: bool) -> None:
        """Make moto check every request's signature and the user's policy, or stop it."""
        urllib.request.urlopen(
            urllib.request.Request(
                f"{self.url}/moto-api/reset-auth",
                data=b"0" if on else b"inf",
                method="POST",
                headers={"Content-Type": "text/plain"},
            ),
            timeout=10,
        ).read()

    def options(self, zone_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "hosted_zone_id": zone_id,
            "endpoint_url": self.url,
            "access_key_id": self.key_id,
            "secret_access_key": self.secret,
            "timeout": 5,
            **extra,
        }


OUTSIDE_AWS = {
    "Name": f"other.{ZONE}",
    "Type": "A",
    "TTL": 300,
    "ResourceRecords": [{"Value": "198.51.100.7"}],
}
OUTSIDE = RRset(f"other.{ZONE}", "A", 300, ("198.51.100.7",))


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    port = free_port("tcp")
    log = Path(tmp_path_factory.mktemp("moto")) / "moto.log"
    proc = BackgroundProcess(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: port_is_open("127.0.0.1", port), timeout=30, message="moto_server")
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", **SETUP_KEYS)
        iam.create_user(UserName="mirror")
        iam.put_user_policy(
            UserName="mirror",
            PolicyName="route53",
            PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",'
            ' "Action": "route53:*", "Resource": "*"}]}',
        )
        key = iam.create_access_key(UserName="mirror")["AccessKey"]
        yield Moto(proc, url, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        proc.stop()
        print(f"----- moto log (tail) -----\n{tail(proc.log_text())}")


def count_calls(provider: Route53Provider) -> list[str]:
    """The API operations the provider's client sends, as they go out."""
    calls: list[str] = []
    provider.client.meta.events.register(
        "before-send.route53.*", lambda request, **_: calls.append(request.method)
    )
    return calls


def test_create_replace_delete_every_type(moto: Moto) -> None:
    zone_id = moto.new_zone()
    provider = Route53Provider(moto.options(zone_id), ZONE)
    check_create_replace_delete(provider, ZONE)
    # the record nobody manages is still there, unchanged
    assert provider.read([OUTSIDE.key]) == [OUTSIDE]
    provider.close()


def test_hosted_zone_id_with_prefix_and_full_read(moto: Moto) -> None:
    zone_id = moto.new_zone()
    assert zone_id.startswith("/hostedzone/")
    short = zone_id.rsplit("/", 1)[-1]
    provider = Route53Provider(moto.options(short), ZONE.rstrip("."))
    provider.apply(put(sample(ZONE)))
    everything = provider.read()
    names = {(r.name, r.rdtype) for r in everything}
    # the full read has the NS Route 53 made, the outside record and ours (moto's SOA
    # value is not valid master-file text: a full read skips what it cannot parse)
    assert (ZONE, "NS") in names
    assert OUTSIDE in everything
    assert set(sample(ZONE)) <= set(everything)
    provider.close()


def test_one_batch_per_push_and_idempotent_reapply(moto: Moto) -> None:
    zone_id = moto.new_zone()
    provider = Route53Provider(moto.options(zone_id), ZONE)
    calls = count_calls(provider)
    provider.apply(put(sample(ZONE)))
    assert calls == ["POST"]  # one ChangeResourceRecordSets for five RRsets
    provider.apply(put(sample(ZONE)))  # UPSERT again: no error, same state
    assert managed(provider, sample(ZONE)) == sorted(sample(ZONE))
    calls.clear()
    provider.apply(delete(sample(ZONE)))
    assert calls == ["GET", "POST"]  # list the zone for what to delete, then one batch
    calls.clear()
    provider.apply(delete(sample(ZONE)))  # already gone: only the read
    assert calls == ["GET"]
    provider.apply(put(sample(ZONE)[:2]))
    calls.clear()
    provider.apply(delete(sample(ZONE)[:2]))  # few keys: looked up one by one
    assert calls == ["GET", "GET", "POST"]
    assert provider.read(keys(sample(ZONE)[:2])) == []
    assert provider.read(keys(sample(ZONE)) + [OUTSIDE.key]) == [OUTSIDE]
    provider.close()


def test_wildcard_and_txt_quoting(moto: Moto) -> None:
    zone_id = moto.new_zone()
    provider = Route53Provider(moto.options(zone_id), ZONE)
    wild = RRset(f"*.lab.dyn.{ZONE}", "TXT", 60, ('"a \\"quoted\\" word"', '"two" "strings"'))
    provider.apply(put([wild]))
    assert provider.read([wild.key]) == [wild]
    provider.close()


def test_bad_credentials_are_permanent(moto: Moto) -> None:
    zone_id = moto.new_zone()
    wrong_secret = Route53Provider(moto.options(zone_id, secret_access_key="wrong"), ZONE)
    unknown_key = Route53Provider(moto.options(zone_id, access_key_id="AKIANOSUCHKEY"), ZONE)
    calls = count_calls(wrong_secret)
    moto.authentication(True)
    try:
        with pytest.raises(PermanentError, match="403"):
            wrong_secret.read()
        with pytest.raises(PermanentError, match="403"):
            wrong_secret.apply(put(sample(ZONE)))
        with pytest.raises(PermanentError, match="403"):
            unknown_key.apply(put(sample(ZONE)))
    finally:
        moto.authentication(False)
    assert len(calls) == 2  # one call each: no retries inside the SDK
    # nothing was written
    good = Route53Provider(moto.options(zone_id), ZONE)
    assert managed(good, sample(ZONE)) == []


def test_unknown_zone_and_rejected_record_are_permanent(moto: Moto) -> None:
    provider = Route53Provider(moto.options("ZNOSUCHZONE"), ZONE)
    with pytest.raises(PermanentError, match="NoSuchHostedZone"):
        provider.read()
    zone_id = moto.new_zone()
    provider = Route53Provider(moto.options(zone_id), ZONE)
    outside_zone = RRset("home.elsewhere.test.", "A", 60, ("192.0.2.1",))
    with pytest.raises(PermanentError):
        provider.apply(put([outside_zone]))


def test_peer_down_is_transient() -> None:
    port = free_port("tcp")  # nothing listens there
    provider = Route53Provider(
        {
            "hosted_zone_id": "Z1",
            "endpoint_url": f"http://127.0.0.1:{port}",
            "access_key_id": "x",
            "secret_access_key": "y",
            "timeout": 2,
        },
        ZONE,
    )
    with pytest.raises(TransientError):
        provider.read()
    with pytest.raises(TransientError):
        provider.apply(put(sample(ZONE)))


def test_unknown_option_is_refused() -> None:
    with pytest.raises(PermanentError, match="hosted_zone"):
        Route53Provider({"hosted_zone": "Z1"}, ZONE)


def test_a_becomes_cname_in_one_push(moto: Moto) -> None:
    check_a_becomes_cname(Route53Provider(moto.options(moto.new_zone()), ZONE), ZONE)
