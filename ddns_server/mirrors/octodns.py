"""Any installed octoDNS provider (the long tail: PowerDNS, Gandi, OVH, Hetzner,
NS1, DigitalOcean... as octoDNS plug-ins), restricted to the managed names.

The mirror never runs an octoDNS sync of the zone. A push populates the
provider's current zone, builds octoDNS Records for the changed RRsets only,
and hands the provider a Plan whose Changes are exactly those (Create, Update
or Delete of a managed RRset); `plan.desired` is the existing zone with only
those RRsets replaced, so even a provider that looked at the whole desired
zone would find every other record as it was.

Options: `class` (the provider's dotted path, e.g.
"octodns_powerdns.PowerDnsProvider") and the class's own keyword options,
passed as they are (secrets given as NAME_env/NAME_file arrive as NAME).

Quirk: octoDNS models a TXT value as one text, so a TXT record with several
character-strings comes back as one string (their concatenation).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from .base import Change, PermanentError, ProviderError, RRset, TransientError
from .options import Option
from .rdata import canonical, make_rrset, owner, zone_name

EXTRA = "octodns"
LIBRARY = "octodns"
OPTIONS: Mapping[str, Option] = {
    "class": Option(
        required=True, help='the provider class, e.g. "octodns_powerdns.PowerDnsProvider"'
    ),
}
PASSTHROUGH = True  # every other key is the provider class's keyword option
PROVIDER_ID = "ddns-server"


class OctodnsProvider:
    def __init__(self, options: Mapping[str, Any], upstream_zone: str) -> None:
        path = str(options.get("class") or "")
        module_name, _, class_name = path.rpartition(".")
        if not module_name:
            raise PermanentError(f"octodns: class must be a dotted path, not {path!r}")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise PermanentError(f"octodns: cannot load {path}: {exc}") from exc
        kwargs = {k: v for k, v in options.items() if k != "class"}
        self.zone = zone_name(upstream_zone)
        try:
            self.provider = cls(PROVIDER_ID, **kwargs)
        except Exception as exc:  # a plug-in's constructor rejecting its options
            raise PermanentError(f"octodns: {path}: {exc}") from exc
        self.supports = set(getattr(self.provider, "SUPPORTS", ()))

    # -- the Provider interface

    def read(self, keys: Iterable[tuple[str, str]] | None = None) -> list[RRset]:
        wanted = None if keys is None else set(keys)
        found = []
        for (name, rdtype), record in self._populate().items():
            if wanted is not None and (name, rdtype) not in wanted:
                continue
            try:
                found.append(_rrset_of(record))
            except PermanentError:
                if wanted is not None:
                    raise
        return sorted(found)

    def apply(self, changes: list[Change]) -> None:
        if not changes:
            return
        from octodns.provider.plan import Plan
        from octodns.record import Create, Delete

        for change in changes:
            if change.key[1] not in self.supports:
                raise PermanentError(
                    f"octodns: {type(self.provider).__name__} does not support {change.key[1]}"
                )
        existing_records = self._populate()
        existing = self._zone()
        for record in existing_records.values():
            existing.add_record(record, lenient=True)
        desired = existing.copy()
        plan_changes: list[Any] = []
        for change in changes:
            old = existing_records.get(change.key)
            if change.new is None:
                if old is not None:
                    plan_changes.append(Delete(old))
                    desired.remove_record(old)
                continue
            new = self._record(desired, change.new)
            if old is None:
                plan_changes.append(Create(new))
            else:
                update = old.changes(new, self.provider)  # Update(existing, new)
                if update is None:
                    continue  # already as wanted
                plan_changes.append(update)
            desired.add_record(new, replace=True, lenient=True)
        if not plan_changes:
            return
        plan = Plan(existing, desired, plan_changes, exists=True)
        self._call(self.provider.apply, plan)

    def close(self) -> None:
        session = getattr(self.provider, "_sess", None)
        if session is not None and hasattr(session, "close"):
            session.close()

    # -- helpers

    def _zone(self) -> Any:
        from octodns.zone import Zone

        return Zone(self.zone, [])

    def _populate(self) -> dict[tuple[str, str], Any]:
        zone = self._zone()
        exists = self._call(self.provider.populate, zone, target=True, lenient=True)
        if exists is False:  # None: a plug-in that does not say
            # Never let a push create the zone (octodns-powerdns would, from our RRsets alone).
            raise PermanentError(f"octodns: the zone {self.zone} does not exist at the provider")
        return {(owner(r.fqdn), str(r._type)): r for r in zone.records}

    def _record(self, zone: Any, rrset: RRset) -> Any:
        from octodns.record import Record
        from octodns.record.base import ValuesMixin, value_from_rdata_text

        cls = Record.registered_types().get(rrset.rdtype)
        if cls is None:
            raise PermanentError(f"octodns: no octoDNS record type {rrset.rdtype}")
        try:
            values = [value_from_rdata_text(cls._value_type, v) for v in rrset.values]
            data: dict[str, Any] = {"type": rrset.rdtype, "ttl": rrset.ttl}
            if issubclass(cls, ValuesMixin):
                data["values"] = values
            else:
                data["value"] = values[0]
            return Record.new(zone, zone.hostname_from_fqdn(rrset.name), data, source=self)
        except Exception as exc:  # octoDNS's ValidationError and value parse errors
            raise PermanentError(f"octodns: {rrset.name} {rrset.rdtype} rejected: {exc}") from exc

    def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ProviderError:
            raise
        except Exception as exc:
            raise classify(exc) from exc


def classify(exc: BaseException) -> ProviderError:
    """An octoDNS plug-in's exception, whatever its library, as transient or permanent.

    HTTP libraries' errors carry a response status: 429 and 5xx are transient,
    other 4xx (401/403 bad credentials, 404 zone not found, 422 rejected) are
    permanent. Connection errors and timeouts of any library (by class name or
    OSError) are transient. Anything else is permanent: an unknown failure stops
    the mirror with its message rather than retrying forever.
    """
    text = f"octodns: {type(exc).__name__}: {exc}"
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for error in chain:  # a plug-in may wrap the HTTP error in its own exception
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            body = _error_body(response)
            text = f"{text} (HTTP {status}{': ' + body if body else ''})"
            if status == 429 or status >= 500:
                return TransientError(text, retry_after=_retry_after(response))
            return PermanentError(text)
    for error in chain:
        names = [c.__name__.lower() for c in type(error).__mro__]
        if isinstance(error, OSError) or any("connection" in n or "timeout" in n for n in names):
            return TransientError(text)
    return PermanentError(text)


def _error_body(response: Any) -> str:
    try:
        return str(response.text)[:200]
    except Exception:
        return ""


def _retry_after(response: Any) -> float | None:
    try:
        return float(response.headers.get("Retry-After"))
    except (TypeError, ValueError, AttributeError):
        return None


def _rrset_of(record: Any) -> RRset:
    from octodns.record.base import value_to_rdata_text

    values = record.values if hasattr(record, "values") else [record.value]
    rdtype = str(record._type)
    texts = [canonical(rdtype, value_to_rdata_text(v)) for v in values]
    return make_rrset(owner(record.fqdn), rdtype, record.ttl, texts)
