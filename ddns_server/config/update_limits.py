"""The request limits of issue 14: `update_limits:` and `tsig_max_fudge:`."""

from __future__ import annotations

import yaml

from ddns_server.config.reader import Reader, join
from ddns_server.model import TSIG_MAX_FUDGE, UpdateLimits

_UPDATE_LIMITS = {  # key -> (low, high); 0 = unlimited, as BIND's options
    "max_records_per_type": (0, None),
    "max_types_per_name": (0, None),
    "max_rdata_size": (0, 65535),
    # Above ~65,000 octets an RRset cannot be answered over TCP at all.
    "max_rrset_size": (0, 65000),
}


def read_update_limits(reader: Reader, node: yaml.Node | None) -> UpdateLimits:
    if node is None:
        return UpdateLimits()
    values = reader.mapping(node, "update_limits", tuple(_UPDATE_LIMITS))
    numbers: dict[str, int] = {}
    for key, (low, high) in _UPDATE_LIMITS.items():
        if key in values:
            number = reader.integer(values[key], join("update_limits", key), low, high)
            if number is not None:
                numbers[key] = number
    return UpdateLimits(**numbers)


def read_tsig_max_fudge(reader: Reader, node: yaml.Node | None) -> int:
    """Seconds; RFC 8945 allows a request to claim up to 65535."""
    if node is None:
        return TSIG_MAX_FUDGE
    value = reader.integer(node, "tsig_max_fudge", 0, 65535)
    return TSIG_MAX_FUDGE if value is None else value
