"""`ddns-server mirror status|resync`, and which mirrors have a version (`journal log`).

Both read the journal directly, so they work whether or not `serve` runs; a
resync calls the provider from this process (pushes are idempotent RRset
replaces, so a running server's worker pushing the same RRsets does no harm).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ddns_server.errors import UserError
from ddns_server.journal import Journal, Version
from ddns_server.mirrors import state
from ddns_server.mirrors.base import ProviderError
from ddns_server.mirrors.spec import MirrorSpec

if TYPE_CHECKING:  # the engine and providers: imported by the mirror commands only
    from ddns_server.mirrors.engine import Mirror


def add_parsers(
    sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    mirror = sub.add_parser("mirror", help="upstream mirrors").add_subparsers(metavar="ACTION")
    p = with_config(mirror.add_parser("status", help="each mirror's delivery state"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_mirror_status)
    p = with_config(
        mirror.add_parser("resync", help="compare the provider with the zone and repair it")
    )
    p.add_argument("name")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--force", action="store_true", help="apply beyond max_change_share")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_mirror_resync)


def _open(args: argparse.Namespace) -> tuple[Any, Journal]:
    from ddns_server.cli import _config

    config = _config(args)
    return config, Journal(config.data_dir / "journal.sqlite3")


def cmd_mirror_status(args: argparse.Namespace) -> int:
    config, journal = _open(args)
    try:
        now = time.time()
        from ddns_server.mirrors.engine import status

        rows = [status(journal, spec, now) for spec in config.mirrors]
    finally:
        journal.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no mirrors configured")
        return 0
    for row in rows:
        print(_status_text(row))
    return 0


def _status_text(row: dict[str, Any]) -> str:
    error = row["last_error"]
    error_text = f"{error['time']} {error['class']}: {error['message']}" if error else "-"
    pending = "a full compare" if row["pending"] is None else f"{row['pending']} RRsets"
    conflicts = ", ".join(row["conflicts"]) or "none"
    delivered = row["delivered_serial"] if row["delivered_serial"] is not None else "-"
    return "\n".join(
        [
            f"{row['name']} ({row['provider']}): {row['zone']} -> {row['upstream_zone']}:"
            f" {row['state']}",
            f"  delivered serial {delivered}"
            f" of {row['current_serial']}; pending {pending}"
            f" ({row['pending_versions']} versions, lag {row['lag_seconds']:.1f} s)",
            f"  last success: {row['last_success'] or '-'}",
            f"  last error:   {error_text}",
            f"  next retry:   {row['next_retry'] or '-'}",
            f"  conflicts:    {conflicts}",
        ]
    )


def _spec(config: Any, name: str) -> MirrorSpec:
    for spec in config.mirrors:
        if spec.name == name:
            return spec  # type: ignore[no-any-return]
    known = ", ".join(s.name for s in config.mirrors) or "none"
    raise UserError(f"unknown mirror {name!r} (configured: {known})")


def cmd_mirror_resync(args: argparse.Namespace) -> int:
    from ddns_server.cli import _Offline
    from ddns_server.mirrors import registry
    from ddns_server.mirrors.engine import Mirror

    offline = _Offline(args)
    config, journal = offline.config, offline.journal
    try:
        spec = _spec(config, args.name)
        offline.open(spec.zone)  # seeded from its file when `serve` never ran
        try:
            provider = registry.create(spec, config.keys)
        except ProviderError as e:
            raise UserError(str(e)) from None
        try:
            return _resync(args, spec, journal, Mirror(spec, journal, provider))
        finally:
            provider.close()
    finally:
        journal.close()


def _resync(args: argparse.Namespace, spec: MirrorSpec, journal: Journal, mirror: Mirror) -> int:
    try:
        plan = mirror.plan()
    except ProviderError as e:
        raise UserError(f"mirror {spec.name}: cannot read the provider: {e}") from None
    refusal = plan.refusal(spec.max_change_share, spec.name)
    if args.json:
        print(
            json.dumps({**plan.to_dict(), "refused": refusal if not args.force else None}, indent=2)
        )
    else:
        for line in plan.lines():
            print(line)
        print(
            f"plan for mirror {spec.name}: {len(plan.creates)} to create, {len(plan.replaces)}"
            f" to replace, {len(plan.deletes)} to delete, {len(plan.conflicts)} conflicts"
            f" ({plan.existing} managed RRsets at the provider)"
        )
    if args.dry_run:
        return 0
    if refusal is not None and not args.force:
        raise UserError(refusal)
    state.reset_stopped(journal.conn, [spec.name])
    try:
        mirror.apply_plan(plan)
    except ProviderError as e:
        raise UserError(f"mirror {spec.name}: the provider refused the plan: {e}") from None
    serial = plan.version.serial if plan.version else "-"
    if not args.json:
        print(
            f"applied; mirror {spec.name} has serial {serial}"
            if plan.changes
            else f"nothing to change; mirror {spec.name} has serial {serial}"
        )
    return 0


def mirrors_having(
    journal: Journal, mirrors: Sequence[MirrorSpec], zone: str, versions: Sequence[Version]
) -> list[dict[str, bool]]:
    """Per version, for each mirror of `zone`: has the provider confirmed it?"""
    cursors = state.load_all(journal.conn)
    mine = []
    for spec in mirrors:
        if spec.zone == zone:
            st = cursors.get(spec.name)
            mine.append((spec.name, st.version_id if st is not None and st.zone == zone else 0))
    return [{name: cursor >= v.id for name, cursor in mine} for v in versions]
