"""DNSPod (Tencent Cloud DNS), through Tencent Cloud's official SDK
(`tencentcloud-sdk-python-dnspod`, API 3.0 version 2021-03-23, TC3-HMAC-SHA256
signing done by the SDK).

Actions used: DescribeRecordList, CreateRecord, ModifyRecord, DeleteRecord.
Like Cloudflare, DNSPod keeps one record per value; a push lists the records at
(sub-domain, type) on the configured line, keeps those that hold a wanted value,
modifies the others in place, creates what is missing and deletes the rest.

Quirks mapped here: names are relative sub-domains with "@" for the apex; MX
preference is the separate `MX` field; TXT values are stored without quotes;
CNAME/MX targets carry a trailing dot; an empty list is the error
ResourceNotFound.NoDataOfRecord; records on other lines (split horizon) are
not ours and are left alone. The SDK does not retry on its own here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .base import Change, PermanentError, ProviderError, RRset, TransientError
from .options import Option, seconds
from .rdata import (
    absolute,
    canonical,
    make_rrset,
    relative,
    split_priority,
    txt_from_plain,
    txt_text,
    zone_name,
)

EXTRA = "dnspod"
LIBRARY = "tencentcloud.dnspod"
OPTIONS: Mapping[str, Option] = {
    "secret_id": Option(required=True, secret=True, help="a CAM API key's SecretId"),
    "secret_key": Option(required=True, secret=True, help="its SecretKey"),
    "endpoint": Option(help="default dnspod.tencentcloudapi.com; http(s)://host:port allowed"),
    "region": Option(help="not needed by DNSPod; sent when set"),
    "record_line": Option(help='the line records are written on, default "默认" (default)'),
    "timeout": Option(kind=float, help="seconds per HTTP call, default 30"),
}

DEFAULT_LINE = "默认"
PAGE = 3000  # DescribeRecordList's largest Limit
FEW_KEYS = 3  # up to this many keys are listed one by one; more list the zone once
NO_RECORDS = "ResourceNotFound.NoDataOfRecord"
# RequestLimitExceeded carries no Retry-After; DNSPod's limits are per second.
RATE_LIMIT_PAUSE = 1.0


class DnspodProvider:
    def __init__(self, options: Mapping[str, Any], upstream_zone: str) -> None:
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.dnspod.v20210323 import dnspod_client

        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise PermanentError(f"dnspod: unknown options {sorted(unknown)}")
        secret_id, secret_key = options.get("secret_id"), options.get("secret_key")
        if not secret_id or not secret_key:
            raise PermanentError("dnspod: secret_id and secret_key are required")
        self.zone = zone_name(upstream_zone)
        self.domain = self.zone.rstrip(".")
        self.line = str(options.get("record_line") or DEFAULT_LINE)
        endpoint = str(options.get("endpoint") or "dnspod.tencentcloudapi.com")
        scheme = "https"
        if "://" in endpoint:
            parts = urlsplit(endpoint)
            scheme, endpoint = parts.scheme, parts.netloc
        http = HttpProfile(
            protocol=scheme,
            endpoint=endpoint,
            reqTimeout=seconds(options, "timeout", 30, "dnspod"),
        )
        self.client = dnspod_client.DnspodClient(
            credential.Credential(str(secret_id), str(secret_key)),
            str(options.get("region") or ""),
            ClientProfile(httpProfile=http),
        )

    # -- the Provider interface

    def read(self, keys: Iterable[tuple[str, str]] | None = None) -> list[RRset]:
        wanted = None if keys is None else set(keys)
        if wanted is None or len(wanted) > FEW_KEYS:
            everything = self._group(self._list())
            return sorted(r for r in everything if wanted is None or r.key in wanted)
        found: list[RRset] = []
        for name, rdtype in sorted(wanted):
            found.extend(self._group(self._list(name, rdtype)))
        return sorted(found)

    def apply(self, changes: list[Change]) -> None:
        # deletions first: a CNAME may replace an A at the same name only once it is gone
        for change in sorted(changes, key=lambda c: c.new is not None):
            self._push(change)

    def close(self) -> None:
        pass  # the SDK opens a connection per call

    # -- one RRset

    def _push(self, change: Change) -> None:
        name, rdtype = change.key
        sub = relative(name, self.zone)
        wanted = [] if change.new is None else [_fields(rdtype, v) for v in change.new.values]
        ttl = None if change.new is None else change.new.ttl
        unmatched = []
        for record in self._list(name, rdtype):
            have = _fields(rdtype, self._value_of(record))
            if have in wanted and int(record.TTL) == ttl:
                wanted.remove(have)
            else:
                unmatched.append(record)
        common = {"Domain": self.domain, "SubDomain": sub, "RecordType": rdtype}
        line = {"RecordLine": self.line}
        for record, fields in zip(unmatched, wanted, strict=False):
            self._call(
                "ModifyRecord",
                {**common, **line, **fields, "TTL": ttl, "RecordId": record.RecordId},
            )
        for fields in wanted[len(unmatched) :]:
            self._call("CreateRecord", {**common, **line, **fields, "TTL": ttl})
        for record in unmatched[len(wanted) :]:
            self._call("DeleteRecord", {"Domain": self.domain, "RecordId": record.RecordId})

    def _value_of(self, record: Any) -> str:
        return _value(str(record.Type), record)

    def _group(self, records: Iterable[Any]) -> list[RRset]:
        """One record per value, as RRsets (the lowest TTL of a set wins)."""
        sets: dict[tuple[str, str], tuple[int, list[str]]] = {}
        for record in records:
            key = (absolute(record.Name, self.zone), str(record.Type))
            ttl = int(record.TTL)
            old_ttl, values = sets.get(key, (ttl, []))
            values.append(self._value_of(record))
            sets[key] = (min(old_ttl, ttl), values)
        return [make_rrset(n, t, ttl, values) for (n, t), (ttl, values) in sets.items()]

    # -- calls

    def _list(self, name: str | None = None, rdtype: str | None = None) -> list[Any]:
        query: dict[str, Any] = {"Domain": self.domain, "Limit": PAGE}
        if name is not None:
            query["Subdomain"] = relative(name, self.zone)
        if rdtype is not None:
            query["RecordType"] = rdtype
        found: list[Any] = []
        offset = 0
        while True:
            answer = self._call("DescribeRecordList", {**query, "Offset": offset}, empty_ok=True)
            if answer is None:
                break
            items = list(answer.RecordList or [])
            found.extend(items)
            offset += len(items)
            total = answer.RecordCountInfo.TotalCount if answer.RecordCountInfo else None
            if not items or total is None or offset >= int(total):
                break
        # Subdomain filters by host, and other lines' records are not ours
        return [
            r
            for r in found
            if r.Line == self.line
            and (name is None or absolute(r.Name, self.zone) == name)
            and (rdtype is None or r.Type == rdtype)
        ]

    def _call(self, action: str, params: Mapping[str, Any], empty_ok: bool = False) -> Any:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
            TencentCloudSDKException,
        )
        from tencentcloud.dnspod.v20210323 import models

        request = getattr(models, f"{action}Request")()
        request.from_json_string(_json({k: v for k, v in params.items() if v is not None}))
        try:
            return getattr(self.client, action)(request)
        except TencentCloudSDKException as exc:
            if empty_ok and exc.code == NO_RECORDS:
                return None
            raise _classify(action, exc) from exc


def _json(params: Mapping[str, Any]) -> str:
    import json

    return json.dumps(params, ensure_ascii=False)


def _classify(action: str, exc: Any) -> ProviderError:
    code = str(exc.code or "")
    message = exc.message if isinstance(exc.message, str) else repr(exc.message)
    text = f"dnspod: {action}: {code}: {message}"
    if code.startswith("RequestLimitExceeded"):
        return TransientError(text, retry_after=RATE_LIMIT_PAUSE)
    if code in ("ClientNetworkError", "ServerNetworkError") or code.startswith(
        ("InternalError", "ResourceUnavailable", "FailedOperation.Timeout")
    ):
        return TransientError(text)
    return PermanentError(text)


def _fields(rdtype: str, value: str) -> dict[str, Any]:
    """Our master-file value as DNSPod's Value (and MX) fields."""
    if rdtype == "MX":
        preference, exchange = split_priority(rdtype, value)
        return {"Value": exchange, "MX": preference}
    if rdtype == "TXT":
        return {"Value": txt_text(value)}
    return {"Value": value}


def _value(rdtype: str, record: Any) -> str:
    if rdtype == "MX":
        return canonical("MX", f"{int(record.MX or 0)} {record.Value}")
    if rdtype == "TXT":
        return txt_from_plain(str(record.Value))
    return canonical(rdtype, str(record.Value))
