"""Log output: human lines or JSON lines, and one audit line per committed change.

`log.format: json` writes one JSON object per line with stable field names
(time, level, logger, message; and for a change: zone, serial, channel, who,
source, removed, added), what Loki, Elasticsearch or journald's JSON input
index without a parsing rule. `text` (the default, and what `make serve`
shows) keeps the human lines. The audit line is the same event in both: a
store listener called after each commit, whatever the channel.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import IO, Any

from ddns_server.journal import Version
from ddns_server.zonedata import ZoneData

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
AUDIT_LOGGER = "ddns_server.audit"
# The audit fields, in the order the JSON lines carry them.
AUDIT_FIELDS = ("zone", "serial", "channel", "who", "source", "removed", "added")

audit_log = logging.getLogger(AUDIT_LOGGER)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry: dict[str, Any] = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            entry.update((key, audit[key]) for key in AUDIT_FIELDS if key in audit)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(fmt: str = "text", level: str = "info", stream: IO[str] | None = None) -> None:
    """Send every logger's records to `stream` (stderr) in `fmt` from `level` up."""
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # No format of ours shows the caller's file and line, the thread or the
    # process: not computing them per record makes a log line (one per
    # committed UPDATE: the audit line) cheaper. The logging HOWTO's
    # "Optimization" section names these switches.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


_zone_text: dict[tuple[bytes, ...], str] = {}  # origin labels -> its text


def audit(zone: ZoneData, version: Version | None) -> None:
    """Store listener: one line per committed version, for people and for indexers."""
    if version is None:
        return
    text = _zone_text.get(zone.origin.labels)
    if text is None:
        text = _zone_text[zone.origin.labels] = zone.origin.to_text()
    fields = {
        "zone": text,
        "serial": version.serial,
        "channel": version.channel,
        "who": version.who,
        "source": version.source,
        "removed": version.removed,
        "added": version.added,
    }
    audit_log.info(
        "zone %s serial %d by %s from %s via %s (-%d +%d)",
        fields["zone"],
        version.serial,
        version.who,
        version.source,
        version.channel,
        version.removed,
        version.added,
        extra={"audit": fields},
    )
