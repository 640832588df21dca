"""What the client last sent, per hostname and record type, kept in a small JSON file.

The file makes updates happen only on change, across runs (`--once` from cron
or Task Scheduler) and restarts. It also remembers an authentication failure
together with a digest of the settings that failed, so the client does not try
again until those settings change (no retry storm against a server that said
`badauth` or BADKEY). Written atomically: a temporary file in the same folder,
fsync, then os.replace (atomic on POSIX and Windows alike).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("ddns_server.client")

FORMAT_VERSION = 1


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass
class State:
    """sent[host][rdtype] = address; blocked[host/rdtype] = {fingerprint, error, time}."""

    sent: dict[str, dict[str, str]] = field(default_factory=dict)
    blocked: dict[str, dict[str, str]] = field(default_factory=dict)
    settings: str = ""  # the digest of the update settings `sent` was sent with

    def follow(self, fingerprint: str) -> bool:
        """Forget what was sent when it went elsewhere (another server, zone, account):
        the new destination has not seen it. True when something was forgotten."""
        if self.settings == fingerprint:
            return False
        forgot = bool(self.sent)
        self.sent.clear()
        self.settings = fingerprint
        return forgot

    def last_sent(self, host: str, rdtype: str) -> str | None:
        return self.sent.get(host, {}).get(rdtype)

    def record_sent(self, host: str, rdtype: str, address: str) -> None:
        self.sent.setdefault(host, {})[rdtype] = address

    def block(self, host: str, rdtype: str, fingerprint: str, error: str) -> None:
        self.blocked[f"{host}/{rdtype}"] = {
            "fingerprint": fingerprint,
            "error": error,
            "time": _now(),
        }

    def blocked_by(self, host: str, rdtype: str, fingerprint: str) -> str | None:
        """The stored error when this host/type failed authentication with these settings."""
        entry = self.blocked.get(f"{host}/{rdtype}")
        if entry is None:
            return None
        if entry.get("fingerprint") != fingerprint:
            return None  # the settings changed since: try again
        return entry.get("error") or "authentication failed"

    def unblock(self, host: str, rdtype: str) -> None:
        self.blocked.pop(f"{host}/{rdtype}", None)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "settings": self.settings,
            "sent": self.sent,
            "blocked": self.blocked,
        }

    @classmethod
    def from_json(cls, data: object) -> State:
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError("not a ddns-server client state file (version 1)")
        sent = data.get("sent", {})
        blocked = data.get("blocked", {})
        if not isinstance(sent, dict) or not isinstance(blocked, dict):
            raise ValueError("malformed state file")
        state = cls(settings=str(data.get("settings", "")))
        for host, types in sent.items():
            if isinstance(types, dict):
                state.sent[str(host)] = {
                    str(k): str(v) for k, v in types.items() if isinstance(v, str)
                }
        for key, entry in blocked.items():
            if isinstance(entry, dict):
                state.blocked[str(key)] = {str(k): str(v) for k, v in entry.items()}
        return state


def load(path: Path) -> State:
    """The state in `path`; an empty State when there is none or it is unreadable
    (then the next update is sent again, which is harmless)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return State()
    except OSError as e:
        log.warning("state file %s: cannot read (%s); starting afresh", path, e.strerror or e)
        return State()
    try:
        return State.from_json(json.loads(text))
    except (ValueError, UnicodeDecodeError) as e:
        log.warning("state file %s: %s; starting afresh", path, e)
        return State()


def save(path: Path, state: State) -> None:
    """Write `state` to `path` atomically (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(state.to_json(), indent=1, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
