"""Cloudflare DNS, through Cloudflare's official Python SDK (`cloudflare`, v4).

Cloudflare keeps one record per value, each with its own id; an RRset push
lists the records at (name, type), keeps those that already hold a wanted
value, updates the others in place (PUT), creates what is missing and deletes
what is left over. So a repeated push makes no write at all.

Quirks mapped here: record names are FQDNs without the trailing dot; CNAME and
MX targets come back without it too; MX preference is the separate `priority`
field; SRV and CAA travel in `data`; TXT content is written as quoted
character-strings and read in either form; TTL 1 means "automatic" (300 s).
The SDK's own retries are off (the engine retries with its backoff and honours
Retry-After itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .base import Change, PermanentError, ProviderError, RRset, TransientError
from .options import Option, flag, seconds
from .rdata import canonical, make_rrset, owner, split_priority, txt_from_plain, zone_name

EXTRA = "cloudflare"
LIBRARY = "cloudflare"
OPTIONS: Mapping[str, Option] = {
    "api_token": Option(required=True, secret=True, help="an API token with Zone.DNS Edit"),
    "zone_id": Option(help="the zone's id; default: looked up by upstream_zone (needs Zone Read)"),
    "base_url": Option(help="default https://api.cloudflare.com/client/v4"),
    "proxied": Option(kind=bool, help="create A/AAAA/CNAME records proxied (default false)"),
    "timeout": Option(kind=float, help="seconds per HTTP call, default 30"),
}

AUTO_TTL = 300  # what Cloudflare's "automatic" TTL (1) stands for
PER_PAGE = 100
FEW_KEYS = 3  # up to this many keys are listed one by one; more list the zone once
PROXIABLE = {"A", "AAAA", "CNAME"}


class CloudflareProvider:
    def __init__(self, options: Mapping[str, Any], upstream_zone: str) -> None:
        import cloudflare

        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise PermanentError(f"cloudflare: unknown options {sorted(unknown)}")
        token = options.get("api_token")
        if not token:
            raise PermanentError("cloudflare: api_token is required")
        self.zone = zone_name(upstream_zone)
        try:
            self.proxied = flag(options.get("proxied", False), "proxied")
        except ValueError as exc:
            raise PermanentError(f"cloudflare: {exc}") from exc
        self._zone_id: str | None = options.get("zone_id") or None
        self.client = cloudflare.Cloudflare(
            api_token=str(token),
            base_url=options.get("base_url") or None,
            max_retries=0,
            timeout=seconds(options, "timeout", 30, "cloudflare"),
        )

    # -- the Provider interface

    def read(self, keys: Iterable[tuple[str, str]] | None = None) -> list[RRset]:
        wanted = None if keys is None else set(keys)
        if wanted is None or len(wanted) > FEW_KEYS:
            everything = _group(self._list())
            return sorted(r for r in everything if wanted is None or r.key in wanted)
        found: list[RRset] = []
        for name, rdtype in sorted(wanted):
            found.extend(_group(self._list(name, rdtype)))
        return sorted(found)

    def apply(self, changes: list[Change]) -> None:
        # deletions first: a CNAME may replace an A at the same name only once it is gone
        for change in sorted(changes, key=lambda c: c.new is not None):
            self._push(change)

    def close(self) -> None:
        self.client.close()

    # -- one RRset

    def _push(self, change: Change) -> None:
        name, rdtype = change.key
        existing = self._list(name, rdtype)
        wanted = [] if change.new is None else self._payloads(change.new)
        unmatched = []
        for record in existing:
            payload = _payload_of(record)
            if payload in wanted:
                wanted.remove(payload)  # already there: nothing to write
            else:
                unmatched.append(record)
        records: Any = self.client.dns.records
        zone_id = self.zone_id
        # update in place first, then create, then delete: the name never goes empty
        for record, payload in zip(unmatched, wanted, strict=False):
            self._call(records.update, record.id, zone_id=zone_id, **payload)
        for payload in wanted[len(unmatched) :]:
            self._call(records.create, zone_id=zone_id, **payload)
        for record in unmatched[len(wanted) :]:
            self._call(records.delete, record.id, zone_id=zone_id, missing_ok=True)

    def _payloads(self, rrset: RRset) -> list[dict[str, Any]]:
        payloads = []
        for value in rrset.values:
            payload: dict[str, Any] = {
                "name": rrset.name.rstrip("."),
                "type": rrset.rdtype,
                "ttl": rrset.ttl,
            }
            payload.update(_content_fields(rrset.rdtype, value))
            if rrset.rdtype in PROXIABLE:
                payload["proxied"] = self.proxied
                if self.proxied:
                    payload["ttl"] = 1  # Cloudflare keeps proxied records on "automatic"
            payloads.append(payload)
        return payloads

    # -- calls

    @property
    def zone_id(self) -> str:
        if self._zone_id is None:
            page = self._call(self.client.zones.list, name=self.zone.rstrip("."))
            zones = list(page.result or [])
            if not zones:
                raise PermanentError(f"cloudflare: no zone {self.zone} for this token")
            self._zone_id = str(zones[0].id)
        return self._zone_id

    def _list(self, name: str | None = None, rdtype: str | None = None) -> list[Any]:
        records: Any = self.client.dns.records
        query: dict[str, Any] = {"zone_id": self.zone_id, "per_page": PER_PAGE}
        if name is not None:
            query["name"] = {"exact": name.rstrip(".")}
        if rdtype is not None:
            query["type"] = rdtype
        found: list[Any] = []
        for number in range(1, 100_000):
            page = self._call(records.list, page=number, **query)
            items = list(page.result or [])
            found.extend(items)
            info = page.result_info
            total_pages = getattr(info, "total_pages", None) if info is not None else None
            if not items or (total_pages is not None and number >= total_pages):
                break
        return found

    def _call(self, func: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        import cloudflare

        try:
            return func(*args, **kwargs)
        except cloudflare.APIConnectionError as exc:  # includes timeouts
            raise TransientError(f"cloudflare: {exc}") from exc
        except cloudflare.NotFoundError as exc:
            if missing_ok:
                return None
            raise PermanentError(f"cloudflare: not found: {_errors(exc)}") from exc
        except cloudflare.APIStatusError as exc:
            raise _classify(exc) from exc
        except cloudflare.APIError as exc:
            raise TransientError(f"cloudflare: {exc}") from exc


def _errors(exc: Any) -> str:
    """Cloudflare's `errors` list as one line ("9005 Content for A record is invalid")."""
    parts = []
    for error in getattr(exc, "errors", None) or []:
        parts.append(f"{getattr(error, 'code', '')} {getattr(error, 'message', '')}".strip())
    return "; ".join(parts) or str(getattr(exc, "message", exc))


def _classify(exc: Any) -> ProviderError:
    status = int(exc.status_code)
    text = f"cloudflare: HTTP {status}: {_errors(exc)}"
    if status == 429 or status >= 500 or status == 408:
        retry_after = None
        header = exc.response.headers.get("retry-after")
        if header:
            try:
                retry_after = float(header)
            except ValueError:
                retry_after = None
        return TransientError(text, retry_after=retry_after)
    return PermanentError(text)


def _content_fields(rdtype: str, value: str) -> dict[str, Any]:
    """Our master-file value as the fields Cloudflare's API takes for the type."""
    if rdtype == "MX":
        preference, exchange = split_priority(rdtype, value)
        return {"content": exchange.rstrip(".") or ".", "priority": preference}
    if rdtype == "SRV":
        priority, weight, port, target = value.split(None, 3)
        return {
            "data": {
                "priority": int(priority),
                "weight": int(weight),
                "port": int(port),
                "target": target.rstrip(".") or ".",
            }
        }
    if rdtype == "CAA":
        flags, tag, rest = value.split(None, 2)
        return {"data": {"flags": int(flags), "tag": tag, "value": rest.strip('"')}}
    if rdtype in ("CNAME", "NS", "PTR"):
        return {"content": value.rstrip(".")}
    return {"content": value}


def _payload_of(record: Any) -> dict[str, Any]:
    """A record as read, in the form `_payloads` builds (to see what is already there)."""
    rdtype = str(record.type)
    value = _value_of(record)
    payload: dict[str, Any] = {
        "name": str(record.name).rstrip(".").lower(),
        "type": rdtype,
        "ttl": int(record.ttl or 1),
    }
    payload.update(_content_fields(rdtype, value))
    if rdtype in PROXIABLE:
        payload["proxied"] = bool(getattr(record, "proxied", False))
    return payload


def _value_of(record: Any) -> str:
    """A record's value in our canonical master-file text."""
    rdtype = str(record.type)
    data = getattr(record, "data", None)
    if rdtype == "MX":
        return canonical("MX", f"{int(record.priority or 0)} {record.content}")
    if rdtype == "TXT":
        return txt_from_plain(str(record.content))
    if rdtype == "SRV" and data is not None:
        return canonical(
            "SRV", f"{int(data.priority)} {int(data.weight)} {int(data.port)} {data.target}"
        )
    if rdtype == "CAA" and data is not None:
        escaped = str(data.value).replace("\\", "\\\\").replace('"', '\\"')
        return canonical("CAA", f'{int(data.flags)} {data.tag} "{escaped}"')
    return canonical(rdtype, str(record.content))


def _group(records: Iterable[Any]) -> list[RRset]:
    """Cloudflare's one-record-per-value list as RRsets (the lowest TTL of a set wins,
    as resolvers would see it)."""
    sets: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for record in records:
        key = (owner(str(record.name)), str(record.type))
        ttl = int(record.ttl or 1)
        ttl = AUTO_TTL if ttl == 1 else ttl
        old_ttl, values = sets.get(key, (ttl, []))
        values.append(_value_of(record))
        sets[key] = (min(old_ttl, ttl), values)
    return [make_rrset(name, rdtype, ttl, values) for (name, rdtype), (ttl, values) in sets.items()]
