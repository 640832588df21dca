"""The `log:` section: format (text | json) and level."""

from __future__ import annotations

import yaml

from ddns_server.config.reader import Reader, join
from ddns_server.model import Log

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")


def read_log(reader: Reader, node: yaml.Node | None) -> Log:
    if node is None:
        return Log()
    values = reader.mapping(node, "log", ("format", "level"))
    chosen = {}
    for key, allowed in (("format", FORMATS), ("level", LEVELS)):
        if key not in values:
            continue
        text = reader.string(values[key], join("log", key))
        if text is None:
            continue
        if text.lower() not in allowed:
            reader.problem(
                values[key],
                join("log", key),
                f"{text!r} is not one of {', '.join(allowed)}",
            )
            continue
        chosen[key] = text.lower()
    return Log(**chosen)
