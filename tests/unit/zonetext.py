"""Zones from master-file text: how unit tests build a zone (the server reads files)."""

from __future__ import annotations

import dns.name
import dns.zone

from ddns_server.zonedata import Record
from ddns_server.zonefile import records_from_zone


def records_from_text(text: str, origin: dns.name.Name, filename: str) -> list[Record]:
    zone = dns.zone.from_text(text, origin, relativize=False, check_origin=True, filename=filename)
    return records_from_zone(zone)
