"""Amazon Route 53, through boto3.

One ChangeResourceRecordSets call per push: UPSERT for every replaced RRset,
DELETE (with the RRset as Route 53 holds it, which the API requires) for every
removed one, all in one change batch, which Route 53 applies atomically.
Reads use ListResourceRecordSets (paginated). boto3's own retries are off: the
engine retries with its backoff, and a 429/Throttling comes back as a
TransientError at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .base import Change, PermanentError, ProviderError, RRset, TransientError
from .options import Option, seconds
from .rdata import canonical, make_rrset, owner, zone_name

EXTRA = "route53"
LIBRARY = "boto3"
OPTIONS: Mapping[str, Option] = {
    "hosted_zone_id": Option(required=True, help='"Z0123..." or "/hostedzone/Z0123..."'),
    "region": Option(help="default us-east-1 (Route 53 is global)"),
    "endpoint_url": Option(help="another API endpoint (moto, a proxy); default AWS's"),
    "access_key_id": Option(secret=True, help="default: boto3's credential chain"),
    "secret_access_key": Option(secret=True),
    "session_token": Option(secret=True),
    "timeout": Option(kind=float, help="seconds per HTTP call, default 30"),
}

OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
FEW_KEYS = 3  # up to this many keys are looked up one by one; more list the zone

# Error codes that mean "try again later" (Route 53 answers 400 for some of them).
_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
}


class Route53Provider:
    def __init__(self, options: Mapping[str, Any], upstream_zone: str) -> None:
        import boto3
        import botocore.config

        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise PermanentError(f"route53: unknown options {sorted(unknown)}")
        zone_id = str(options.get("hosted_zone_id") or "")
        if not zone_id:
            raise PermanentError("route53: hosted_zone_id is required")
        self.zone = zone_name(upstream_zone)
        self.zone_id = zone_id.rsplit("/", 1)[-1]
        timeout = seconds(options, "timeout", 30, "route53")
        config = botocore.config.Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
        )
        session = boto3.session.Session(
            aws_access_key_id=options.get("access_key_id"),
            aws_secret_access_key=options.get("secret_access_key"),
            aws_session_token=options.get("session_token"),
            region_name=options.get("region") or "us-east-1",
        )
        self.client = session.client(
            "route53", endpoint_url=options.get("endpoint_url"), config=config
        )

    # -- the Provider interface

    def read(self, keys: Iterable[tuple[str, str]] | None = None) -> list[RRset]:
        wanted = None if keys is None else set(keys)
        if wanted is not None and len(wanted) <= FEW_KEYS:
            items = [item for key in sorted(wanted) for item in self._lookup(*key)]
        else:
            items = self._list()
        found = []
        for item in items:
            if wanted is not None and (aws_name(item["Name"]), item["Type"]) not in wanted:
                continue
            try:
                rrset = _from_aws(item)
            except PermanentError:
                if wanted is not None:
                    raise
                continue  # a full read skips what it cannot parse (the engine filters anyway)
            if rrset is not None:
                found.append(rrset)
        return sorted(found)

    def apply(self, changes: list[Change]) -> None:
        if not changes:
            return
        current = {}
        if any(change.new is None for change in changes):
            # A DELETE must name the RRset exactly as Route 53 holds it.
            deleted = {change.key for change in changes if change.new is None}
            current = {rrset.key: rrset for rrset in self.read(deleted)}
        batch = []
        # DELETEs first, so that a CNAME may take the place of an A in the same batch
        for change in sorted(changes, key=lambda c: c.new is not None):
            if change.new is not None:
                batch.append({"Action": "UPSERT", "ResourceRecordSet": _to_aws(change.new)})
            elif change.key in current:
                batch.append(
                    {"Action": "DELETE", "ResourceRecordSet": _to_aws(current[change.key])}
                )
        if batch:
            self._call(
                self.client.change_resource_record_sets,
                HostedZoneId=self.zone_id,
                ChangeBatch={"Comment": "ddns-server mirror", "Changes": batch},
            )

    def close(self) -> None:
        self.client.close()

    # -- helpers

    def _lookup(self, name: str, rdtype: str) -> list[dict[str, Any]]:
        """One RRset by name and type: one call instead of listing the zone (Route 53
        allows 5 calls a second per account)."""
        answer = self._call(
            self.client.list_resource_record_sets,
            HostedZoneId=self.zone_id,
            StartRecordName=name,
            StartRecordType=rdtype,
            MaxItems="1",
        )
        # the answer starts at (name, type), or at the next RRset when there is none
        items: list[dict[str, Any]] = answer.get("ResourceRecordSets", [])
        return [i for i in items if (aws_name(i["Name"]), i["Type"]) == (name, rdtype)]

    def _list(self) -> list[dict[str, Any]]:
        def every_page() -> list[dict[str, Any]]:
            paginator = self.client.get_paginator("list_resource_record_sets")
            items: list[dict[str, Any]] = []
            for page in paginator.paginate(HostedZoneId=self.zone_id):
                items.extend(page.get("ResourceRecordSets", []))
            return items

        result: list[dict[str, Any]] = self._call(every_page)
        return result

    def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        import botocore.exceptions

        try:
            return func(*args, **kwargs)
        except botocore.exceptions.ClientError as exc:
            raise _classify(exc) from exc
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
        ) as exc:
            raise TransientError(f"route53: {exc}") from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise PermanentError(f"route53: {exc}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise TransientError(f"route53: {exc}") from exc


def _classify(exc: Any) -> ProviderError:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    message = error.get("Message", "") or str(exc)
    meta = exc.response.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode") or 0)
    text = f"route53: HTTP {status} {code or 'error'}: {message}"
    if status == 429 or status >= 500 or code in _TRANSIENT_CODES:
        retry_after = None
        header = meta.get("HTTPHeaders", {}).get("retry-after")
        if header:
            try:
                retry_after = float(header)
            except ValueError:
                retry_after = None
        return TransientError(text, retry_after=retry_after)
    return PermanentError(text)


def aws_name(name: str) -> str:
    """A Route 53 name as ours. Route 53 escapes characters as OCTAL \\ooo ("*" is
    \\052), where master files use decimal; letters and digits are never escaped."""
    plain = OCTAL_ESCAPE.sub(lambda m: _master_escape(chr(int(m.group(1), 8))), name)
    return owner(plain)


def _master_escape(char: str) -> str:
    return char if char.isalnum() or char in "*-_" else f"\\{ord(char):03d}"


def _from_aws(item: Mapping[str, Any]) -> RRset | None:
    """A Route 53 RRset as ours; alias and routing-policy RRsets are not ours to model."""
    if "AliasTarget" in item or "SetIdentifier" in item or "ResourceRecords" not in item:
        return None
    values = [record["Value"] for record in item["ResourceRecords"]]
    return make_rrset(aws_name(item["Name"]), item["Type"], item.get("TTL", 300), values)


def _to_aws(rrset: RRset) -> dict[str, Any]:
    return {
        "Name": rrset.name,
        "Type": rrset.rdtype,
        "TTL": rrset.ttl,
        "ResourceRecords": [{"Value": canonical(rrset.rdtype, v)} for v in rrset.values],
    }
