"""The `ddns-server` command: parse arguments, call the core, print. Nothing more."""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone

from ddns_server import cli_mirrors, model
from ddns_server import config as config_mod
from ddns_server.api.tokens import TokenStore
from ddns_server.errors import ConfigError, DdnsError, UserError
from ddns_server.journal import Journal, Version
from ddns_server.plan import DEFAULT_MAX_CHANGE_SHARE, Plan, plan_content
from ddns_server.store import Store, ZoneLimits, records_from_file, zone_key
from ddns_server.zonedata import Record, ZoneData, name_to_wire, wire_to_name


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 1
    except DdnsError as e:
        print(f"ddns-server: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. a data_dir that is a file, or not writable
        where = f"{e.filename}: " if e.filename else ""
        print(f"ddns-server: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except sqlite3.Error as e:  # a journal that is locked, corrupt, read-only
        print(f"ddns-server: journal: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddns-server", description="Authoritative DNS server for dynamic DNS."
    )
    sub = parser.add_subparsers(metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c",
            "--config",
            type=Path,
            default=None,
            help="configuration file (default: $DDNS_CONFIG, then conf/ddns.yaml)",
        )
        return p

    p = with_config(sub.add_parser("serve", help="run the server in the foreground"))
    p.set_defaults(func=cmd_serve)
    p = with_config(sub.add_parser("check-config", help="validate the configuration"))
    p.set_defaults(func=cmd_check_config)
    p = sub.add_parser("keygen", help="print a new TSIG key (BIND key clause)")
    p.add_argument("name")
    p.add_argument("-a", "--algorithm", default="hmac-sha256")
    p.set_defaults(func=cmd_keygen)
    p = sub.add_parser("passwd", help="print a password hash for a DynDNS2 user")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=cmd_passwd)

    zone = sub.add_parser("zone", help="export or import a zone").add_subparsers(metavar="ACTION")
    p = with_config(zone.add_parser("export", help="print the current version as a master file"))
    p.add_argument("zone")
    p.set_defaults(func=cmd_zone_export)
    p = with_config(zone.add_parser("import", help="replace the content with a master file's"))
    p.add_argument("zone")
    p.add_argument("file", type=Path)
    _plan_options(p)
    p.set_defaults(func=cmd_zone_import)

    journal = sub.add_parser("journal", help="zone history").add_subparsers(metavar="ACTION")
    p = with_config(journal.add_parser("log", help="list versions, newest first"))
    p.add_argument("zone")
    p.add_argument("--limit", type=_positive, default=None, help="at most N versions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_journal_log)
    p = with_config(journal.add_parser("diff", help="records removed/added by a version"))
    p.add_argument("zone")
    p.add_argument("serial", type=_serial)
    p.set_defaults(func=cmd_journal_diff)
    p = with_config(journal.add_parser("rollback", help="restore an earlier version's content"))
    p.add_argument("zone")
    p.add_argument("serial", type=_serial)
    _plan_options(p)
    p.set_defaults(func=cmd_journal_rollback)
    p = with_config(journal.add_parser("undo", help="roll back to the version before the newest"))
    p.add_argument("zone")
    _plan_options(p)
    p.set_defaults(func=cmd_journal_undo)
    p = sub.add_parser("client", help="detect the public address and update it (docs/client.md)")
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="client configuration (default: $DDNS_CLIENT_CONFIG, then conf/client.yaml)",
    )
    p.add_argument("--once", action="store_true", help="one pass, then exit (cron, Task Scheduler)")
    p.set_defaults(func=cmd_client)

    token = sub.add_parser("token", help="API tokens (docs/api.md)").add_subparsers(
        metavar="ACTION"
    )
    p = with_config(token.add_parser("create", help="print a new API token once"))
    p.add_argument("name")
    p.add_argument("--zone", required=True)
    p.add_argument("--names", default="", help="patterns: home, *.lab, @ (default: every name)")
    p.add_argument("--types", default="", help="record types, e.g. A,AAAA,TXT (default: all)")
    p.add_argument("--role", choices=("read", "write", "admin"), default="write")
    p.add_argument("--expires-days", type=_positive, default=None)
    p.set_defaults(func=cmd_token_create)
    p = with_config(token.add_parser("list", help="list API tokens (never their secrets)"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_token_list)
    p = with_config(token.add_parser("revoke", help="revoke an API token at once"))
    p.add_argument("name")
    p.set_defaults(func=cmd_token_revoke)
    cli_mirrors.add_parsers(sub, with_config)
    p = with_config(sub.add_parser("backup", help="a consistent copy of the journal"))
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_backup)
    p = with_config(sub.add_parser("restore", help="put a backup in place (serve stopped)"))
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_restore)

    health = sub.add_parser("health", help="failover RRsets").add_subparsers(metavar="ACTION")
    p = with_config(health.add_parser("status", help="targets, their states, what is served"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_health_status)
    return parser


def _plan_options(p: argparse.ArgumentParser) -> None:
    """--dry-run/--json/--force of the commands that replace a zone's content."""
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan (records removed and added) only"
    )
    p.add_argument("--json", action="store_true", help="print the plan as a JSON object")
    p.add_argument(
        "--force",
        action="store_true",
        help="apply a plan that deletes more than max_change_share of the zone or changes apex NS",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return value


def _serial(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad serial {text!r}: expected a number") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"bad serial {text!r}: expected 0..4294967295")
    return value


def _config(args: argparse.Namespace, check_zone_files: bool = False) -> model.Config:
    """The config; zone files are parsed only by check-config (and when seeding)."""
    return config_mod.load_config(
        args.config or config_mod.default_config_path(), check_zone_files=check_zone_files
    )


# -- commands ---------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from ddns_server.backup import ServeLock
    from ddns_server.edge.service import run

    config = _config(args)
    lock = ServeLock(config.data_dir)  # held until exit: `restore` checks it
    lock.acquire("cannot start")
    try:
        return run(config)
    finally:
        lock.release()


def cmd_backup(args: argparse.Namespace) -> int:
    from ddns_server.backup import backup

    config = _config(args)
    for zone, serial in backup(config.data_dir, args.file):
        print(f"{zone} serial {serial}")
    print(f"backup written to {args.file} (integrity check ok)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from ddns_server.backup import restore

    config = _config(args)
    serials, kept = restore(config.data_dir, args.file)
    for zone, serial in serials:
        print(f"{zone} serial {serial}")
    where = f"; the previous journal is kept as {kept}" if kept else ""
    print(f"restored {args.file} into {config.data_dir} (integrity check ok){where}")
    return 0


def cmd_client(args: argparse.Namespace) -> int:
    from ddns_server.client.runner import main as client_main

    return client_main(args.config, args.once)


def cmd_check_config(args: argparse.Namespace) -> int:
    _config(args, check_zone_files=True)
    print("OK")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from ddns_server.keys import ALGORITHMS, keygen_text

    if args.algorithm not in ALGORITHMS:
        raise UserError(
            f"unknown algorithm {args.algorithm!r} (expected one of {', '.join(ALGORITHMS)})"
        )
    try:
        text = keygen_text(args.name, args.algorithm)
    except ValueError as e:
        raise UserError(
            f"{str(e).rstrip('.')} (a key name is a domain name: letters, digits,"
            " '-' and '.'; no spaces, quotes, braces or semicolons)"
        ) from None
    sys.stdout.write(text)
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    from ddns_server.passwords import hash_password

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Again: ")
        except EOFError:  # Ctrl-D at the prompt
            print(file=sys.stderr)  # end the prompt's line
            raise UserError("no password given (end of input at the prompt)") from None
        if again != password:
            raise UserError("the passwords differ")
    if not password:
        raise UserError("empty password")
    print(hash_password(password))
    return 0


class _Offline:
    """The journal and zones of a config, for commands that run beside `serve`."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.config = _config(args)
        self.journal = Journal(self.config.journal_path)
        self.store = Store(self.journal)

    def zone_config(self, text: str) -> model.Zone | None:
        origin = _zone_name(text)
        return next((z for z in self.config.zones if z.name == origin), None)

    def open(self, text: str, seed_from_file: bool = True) -> ZoneData:
        """The zone's current version (seeded from its file if never served)."""
        origin = _zone_name(text)
        zc = self.zone_config(text)
        in_journal = self.journal.has_zone(zone_key(origin))
        if not in_journal and zc is None:
            raise UserError(f"unknown zone {origin.to_text()}: not in the config or the journal")
        seed = None
        if not in_journal:
            if not (seed_from_file and zc and zc.file):
                raise UserError(f"zone {origin.to_text()}: no version journaled yet")
            seed = records_from_file(zc.file, origin)
        limits = ZoneLimits(zc.journal_max_versions, zc.journal_max_age_days) if zc else None
        return self.store.open_zone(origin, seed, limits)

    def version(self, zone: ZoneData, serial: int) -> Version:
        version = self.journal.find_version(zone_key(zone.origin), serial)
        if version is None:
            raise UserError(
                f"serial {serial} is not in the journal of zone {zone.origin.to_text()}"
            )
        return version


def _who() -> str:
    """The local user, the journal's `who` (a container's uid may have no passwd entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _zone_name(text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as e:
        raise UserError(f"bad zone name {text!r}: {e}") from None


def cmd_zone_export(args: argparse.Namespace) -> int:
    """Print the zone's current version; read-only, it never writes the journal.

    A zone with no journaled version yet prints its seed file's content (and
    says so on stderr) without seeding it: a seed written here would give one
    zone history before `serve`, which then refuses to seed the others.
    """
    config = _config(args)
    origin = _zone_name(args.zone)
    path = config.journal_path
    if path.exists() or path.is_symlink():  # never create a journal just to read it
        journal = Journal(path)
        try:
            key = zone_key(origin)
            if journal.has_zone(key):
                with journal.reading():
                    zone = ZoneData.from_records(origin, journal.load(key))
                sys.stdout.write(master_file(origin, zone.records()))
                return 0
        finally:
            journal.close()
    elif path.parent.exists() and not path.parent.is_dir():
        raise UserError(f"data_dir {path.parent} is not a folder")
    zc = next((z for z in config.zones if z.name == origin), None)
    if zc is None:
        raise UserError(f"unknown zone {origin.to_text()}: not in the config or the journal")
    if zc.file is None:
        raise UserError(f"zone {origin.to_text()}: no version journaled yet and no file")
    records = records_from_file(zc.file, origin)
    print(
        f"zone {origin.to_text()}: no version journaled yet; printing its file {zc.file}"
        " (nothing written)",
        file=sys.stderr,
    )
    sys.stdout.write(master_file(origin, ZoneData.from_records(origin, records).records()))
    return 0


def cmd_zone_import(args: argparse.Namespace) -> int:
    offline = _Offline(args)
    origin = _zone_name(args.zone)
    zc = offline.zone_config(args.zone)
    in_journal = offline.journal.has_zone(zone_key(origin))
    if zc is None and not in_journal:  # before reading FILE: its errors would mislead
        raise UserError(
            f"zone {origin.to_text()} is not configured: add it to zones: in {offline.config.path}"
        )
    records = records_from_file(args.file, origin)
    if not in_journal:
        assert zc is not None
        if zc.file is None:
            # Nothing else to start from: the imported content is the first version.
            zone = offline.store.open_zone(origin, records)
            print(zone.serial)
            return 0
    zone = offline.open(args.zone)  # seeded from its file first when never served
    return _replace_content(offline, args, zone, records, "import")


def cmd_journal_log(args: argparse.Namespace) -> int:
    offline = _Offline(args)
    zone = offline.open(args.zone, seed_from_file=False)
    versions = offline.journal.versions(zone_key(zone.origin), args.limit)
    # which mirrors' providers have confirmed each version (an audit trail upstream)
    having = cli_mirrors.mirrors_having(
        offline.journal, offline.config.mirrors, zone_key(zone.origin), versions
    )
    if args.json:
        # "mirrors" only for a mirrored zone: the other entries keep their keys
        rows = [
            {**_version_dict(v), **({"mirrors": h} if h else {})}
            for v, h in zip(versions, having, strict=True)
        ]
        print(json.dumps(rows, indent=2))
        return 0
    mirrors = " MIRRORS" if any(having) else ""
    print(
        f"{'SERIAL':>10}  {'TIME (UTC)':<20}  {'WHO':<16} {'SOURCE':<24} {'CHANNEL':<9} CHANGES"
        + mirrors
    )
    for v, h in zip(versions, having, strict=True):
        d = _version_dict(v)
        delivered = " " + (",".join(name for name, ok in h.items() if ok) or "-") if h else ""
        print(
            f"{v.serial:>10}  {d['time']:<20}  {v.who:<16} {v.source:<24} {v.channel:<9}"
            f" -{v.removed} +{v.added}{delivered}"
        )
    return 0


def _version_dict(v: Version) -> dict[str, object]:
    return v.as_dict()


def cmd_journal_diff(args: argparse.Namespace) -> int:
    offline = _Offline(args)
    zone = offline.open(args.zone, seed_from_file=False)
    version = offline.version(zone, args.serial)
    changeset = offline.journal.changeset(version.id)
    for rr in changeset.removed:
        print("- " + record_text(rr))
    for rr in changeset.added:
        print("+ " + record_text(rr))
    return 0


def cmd_journal_rollback(args: argparse.Namespace) -> int:
    offline = _Offline(args)
    zone = offline.open(args.zone, seed_from_file=False)
    version = offline.version(zone, args.serial)
    content = offline.journal.content_at(zone_key(zone.origin), version)
    return _replace_content(offline, args, zone, content, "rollback")


def cmd_journal_undo(args: argparse.Namespace) -> int:
    """Back to the version before the newest: a rollback to it (same plan rules)."""
    offline = _Offline(args)
    zone = offline.open(args.zone, seed_from_file=False)
    key = zone_key(zone.origin)
    versions = offline.journal.versions(key, limit=2)
    if len(versions) < 2:
        raise UserError(f"zone {zone.origin.to_text()}: no earlier version to undo to")
    content = offline.journal.content_at(key, versions[1])
    return _replace_content(offline, args, zone, content, "rollback")


def _replace_content(
    offline: _Offline,
    args: argparse.Namespace,
    zone: ZoneData,
    wanted: Iterable[Record],
    channel: str,
) -> int:
    """Make the zone's content `wanted` through the store's writer, plan first.

    The plan is computed again against the newest version each time the
    writer retries (a server may be committing updates meanwhile), and the
    safety rail (max_change_share, apex NS) is applied to that plan.
    """
    origin = zone.origin
    records = list(wanted)
    zc = offline.zone_config(origin.to_text())
    max_share = zc.max_change_share if zc is not None else DEFAULT_MAX_CHANGE_SHARE
    if args.dry_run:
        offline.store.poll()
        plan = plan_content(origin, zone.records(), records)
        _print_plan(plan, args.json, max_share, args.force)
        return 0
    plan, version = offline.store.replace_content(
        origin, records, _who(), "local", channel, None if args.force else max_share
    )
    if args.json:
        out = plan.to_dict(record_text)
        out["new_serial"] = version.serial if version is not None else None
        print(json.dumps(out, indent=2))
    elif version is None:
        print(_no_change(plan))
    else:
        print(version.serial)
    return 0


def _no_change(plan: Plan) -> str:
    zone = plan.origin.to_text()
    return (
        f"no change: zone {zone} already has this content (serial {plan.serial}); nothing written"
    )


def _print_plan(plan: Plan, as_json: bool, max_share: float, force: bool) -> None:
    refusal = None if force else plan.refusal(max_share)
    if as_json:
        out = plan.to_dict(record_text)
        out["refused"] = refusal
        print(json.dumps(out, indent=2))
        return
    if plan.empty:
        print(_no_change(plan))
        return
    print(f"plan for zone {plan.origin.to_text()} at serial {plan.serial}:")
    for rr in plan.removed:
        print("- " + record_text(rr))
    for rr in plan.added:
        print("+ " + record_text(rr))

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    print(
        f"{len(plan.removed)} removed, {len(plan.added)} added"
        f" ({plan.deleted} of {plan.records} records deleted, {plan.delete_share:.0%});"
        f" apex SOA changed: {yes(plan.apex_soa_changed)};"
        f" apex NS changed: {yes(plan.apex_ns_changed)}"
    )
    if refusal:
        print(f"refused without --force: {refusal}")
    print("dry run: nothing changed")


def cmd_health_status(args: argparse.Namespace) -> int:
    """Every failover RRset: from the running server's status file, with what
    the journal serves; without a running server the states are unknown."""
    from ddns_server.health_report import health_status, status_text

    config = _config(args)
    rows, running = health_status(config)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        sys.stdout.write(status_text(rows, running))
    return 0


# -- text forms ---------------------------------------------------------------------


def record_text(record: Record) -> str:
    owner, rdtype, ttl, rdata = record
    rd = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, rdata, 0, len(rdata))  # type: ignore[arg-type]
    type_text = dns.rdatatype.to_text(rdtype)  # type: ignore[arg-type]
    return f"{wire_to_name(owner).to_text()} {ttl} IN {type_text} {rd.to_text()}"


def master_file(origin: dns.name.Name, records: Iterable[Record]) -> str:
    """An RFC 1035 master file: $ORIGIN, the SOA first, then owners in order.

    Written record by record (a dnspython Zone of 100,000 records would take
    seconds to build just to print it).
    """
    lines = [f"$ORIGIN {origin.to_text()}"]
    apex = name_to_wire(origin).lower()
    rows = []
    names: dict[bytes, tuple[dns.name.Name, str]] = {}
    for owner, rdtype, ttl, rdata in records:
        known = names.get(owner)
        if known is None:
            name = wire_to_name(owner)
            known = names[owner] = (name, name.relativize(origin).to_text())
        name, text = known
        rd = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, rdata, 0, len(rdata))  # type: ignore[arg-type]
        rd_text = rd.to_text(origin=origin, relativize=True)
        line = f"{text} {ttl} IN {dns.rdatatype.to_text(rdtype)} {rd_text}"  # type: ignore[arg-type]
        if rdtype == dns.rdatatype.SOA and owner.lower() == apex:
            lines.append(line)
        else:
            rows.append((name, rdtype, line))
    rows.sort(key=lambda row: (row[0], row[1]))
    lines.extend(row[2] for row in rows)
    return "\n".join(lines) + "\n"


# -- API tokens ---------------------------------------------------------------------


def _tokens(args: argparse.Namespace) -> tuple[model.Config, TokenStore]:
    config = _config(args)
    journal = Journal(config.journal_path)
    return config, TokenStore(journal.conn)


def cmd_token_create(args: argparse.Namespace) -> int:
    config, tokens = _tokens(args)
    origin = _zone_name(args.zone)
    if not any(z.name == origin for z in config.zones):
        raise UserError(f"unknown zone {origin.to_text()}: not in the config")
    _token, secret = tokens.create(
        args.name,
        origin,
        [p for p in args.names.split(",") if p.strip()],
        [t for t in args.types.split(",") if t.strip()],
        args.role,
        args.expires_days,
        now=time.time(),
    )
    print(secret)
    print(
        f"token {args.name} for zone {origin.to_text()} created; the secret above is shown"
        " only now",
        file=sys.stderr,
    )
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    _config_unused, tokens = _tokens(args)
    listed = [t.to_dict() for t in tokens.list()]
    for item in listed:
        for key in ("created", "expires"):
            when = item[key]
            item[key] = (
                datetime.datetime.fromtimestamp(float(when), datetime.UTC).strftime(  # type: ignore[arg-type]
                    "%Y-%m-%dT%H:%M:%SZ"
                )
                if when is not None
                else None
            )
    if args.json:
        print(json.dumps(listed, indent=2))
        return 0
    print(
        f"{'NAME':<20} {'ZONE':<24} {'ROLE':<6} {'NAMES':<20} {'TYPES':<16} {'CREATED':<20} EXPIRES"
    )
    for item in listed:
        names = ",".join(item["names"])  # type: ignore[arg-type]
        types = ",".join(item["types"])  # type: ignore[arg-type]
        print(
            f"{item['name']:<20} {item['zone']:<24} {item['role']:<6} {names:<20} {types:<16}"
            f" {item['created']:<20} {item['expires'] or 'never'}"
        )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    _config_unused, tokens = _tokens(args)
    if not tokens.revoke(args.name):
        raise UserError(f"no token named {args.name!r}")
    print(f"token {args.name} revoked")
    return 0
