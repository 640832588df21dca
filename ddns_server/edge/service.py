"""Wiring: config -> journal, store, handlers, listeners. The only place that knows them all."""

from __future__ import annotations

import dataclasses
import gc
import logging
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from twisted.internet import task
from twisted.internet.interfaces import IListeningPort
from twisted.python import log as twisted_log

from ddns_server import config as config_mod
from ddns_server import model
from ddns_server.dnsmsg import DnsHandler
from ddns_server.edge.dns import DnsTcpFactory, DnsUdp, TcpGroupCommit, listen_udp
from ddns_server.edge.notify import Notifier
from ddns_server.edge.probes import HealthService
from ddns_server.errors import ConfigError, DdnsError, UserError
from ddns_server.journal import Journal, Version
from ddns_server.journal_file import check_history, loose_modes
from ddns_server.keys import keyring
from ddns_server.logs import audit
from ddns_server.logs import configure as configure_logs
from ddns_server.metrics import Metrics
from ddns_server.mirrors.spec import MirrorSpec
from ddns_server.query import QueryEngine
from ddns_server.rrl import RateLimiter, RrlCounters
from ddns_server.store import Store, ZoneLimits, records_from_file
from ddns_server.update_handler import UpdateProcessor
from ddns_server.xfr import TransferProcessor
from ddns_server.zonedata import ZoneData, name_to_wire

if TYPE_CHECKING:  # imported when an http(s) listener is configured (Server._http_site)
    from ddns_server.api.service import ApiContext
    from ddns_server.dyndns2 import Dyndns2
    from ddns_server.edge.http_limits import LimitedSite
    from ddns_server.edge.tls import ReloadableContextFactory
    from ddns_server.mirrors.engine import Mirror
    from ddns_server.mirrors.worker import Supervisor

log = logging.getLogger("ddns_server")

# How often the server looks for versions other processes journaled
# (`journal rollback`, `zone import`): well inside the promised 2 seconds.
POLL_INTERVAL = 0.25
# How often a failed journal tries a write probe (so /healthz recovers
# without waiting for the next update).
PROBE_INTERVAL = 2.0


def open_store(config: model.Config, journal: Journal) -> Store:
    """A store serving every configured zone (seeded from its file only while
    the journal has no history at all: check_history)."""
    check_history(journal, [zone.name.to_text().lower() for zone in config.zones])
    store = Store(journal)
    opening = []
    for zone in config.zones:
        seed = None
        if zone.file and not journal.has_zone(zone.name.to_text().lower()):
            seed = records_from_file(zone.file, zone.name)
        limits = ZoneLimits(zone.journal_max_versions, zone.journal_max_age_days)
        opening.append((zone.name, seed, limits))
    store.open_zones(opening)  # the seeds in one transaction
    return store


class Server:
    """A running ddns-server: listeners on a reactor around one store."""

    def __init__(self, config: model.Config, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self.journal = Journal(config.journal_path)
        self.journal.checkpoint_in_background()  # not inside an update's COMMIT
        for loose in loose_modes(self.journal.path):
            log.warning("%s is readable by group or others: chmod go= it", loose)
        self.store = open_store(config, self.journal)
        self.engine = QueryEngine(self.store.zones)
        self.registry = CollectorRegistry()
        self.rrl_counters = RrlCounters()  # across reloads
        self.metrics = Metrics(
            self.registry,
            lambda: self.store.zones,
            lambda: self.store.health.healthy,
            self.rrl_counters,
        )
        self._udp: list[DnsUdp] = []
        self.handler = DnsHandler(
            self.engine,
            keyring(config.keys),
            max_fudge=config.tsig_max_fudge,
            count_error=self.metrics.dns_errors.inc,
        )
        self._update_counts: dict[str, Any] = {}  # result -> its counter child
        self.updates = UpdateProcessor(
            self.store,
            config.zones,
            self._count_update,
            limits=config.update_limits,
        )
        self.handler.updates = self.updates
        self.transfers = TransferProcessor(self.store, config.zones)
        self.handler.transfers = self.transfers
        self.notifier = Notifier(
            reactor, config.zones, lambda result: self.metrics.notifies.labels(result).inc()
        )
        self.store.add_listener(self.notifier.on_version)
        # DynDNS2 and the API: made with the HTTP site (_http_site)
        self.dyndns: Dyndns2 | None = None
        self.api: ApiContext | None = None
        # (kind, host, port) -> its listening ports (DNS: UDP and TCP)
        self.listening: dict[tuple[str, str, int], list[IListeningPort]] = {}
        self._tls: ReloadableContextFactory | None = None
        self._site: LimitedSite | None = None
        self._udp_of: dict[tuple[str, str, int], DnsUdp] = {}
        self._tcp: DnsTcpFactory | None = None
        self._log_settings = config.log
        self.store.add_listener(audit)  # one audit line per committed change
        # Failover RRsets: probes, the checker's writes, ownership (docs/failover.md).
        self.failover = HealthService(reactor, self.store, config, self.registry)
        self.store.on_hook_error = lambda name: self.metrics.hook_errors.labels(name).inc()
        # Mirrors: one worker thread each; the listener only wakes them. The
        # supervisor (and the providers' code) comes with the first mirror.
        self.mirrors: Supervisor | None = None
        self.store.add_listener(self._wake_mirrors)
        self._poller = task.LoopingCall(self._poll)
        self._prober = task.LoopingCall(self._probe)

    # -- lifecycle --------------------------------------------------------------

    @property
    def ports(self) -> list[IListeningPort]:
        return [port for ports in self.listening.values() for port in ports]

    def _listen(self, kind: str, ep: model.Endpoint) -> None:
        """Open one listen address; its ports are kept only if all of them open."""
        reactor = self.reactor
        opened: list[IListeningPort] = []
        try:
            if kind == "dns":
                # One protocol per UDP port: Twisted binds a protocol to one transport.
                udp = DnsUdp(self.handler, self.metrics, self.store)
                udp.rrl = self._udp[0].rrl if self._udp else None  # the shared limiter
                opened.append(listen_udp(reactor, ep.port, udp, ep.host))
                opened.append(reactor.listenTCP(ep.port, self._tcp, interface=ep.host, backlog=128))
            elif kind == "http":
                opened.append(reactor.listenTCP(ep.port, self._http_site(), interface=ep.host))
            else:
                from twisted.protocols.tls import TLSMemoryBIOFactory

                # What reactor.listenSSL does, which a reactor imported
                # without TLS (import_reactor) does not offer.
                tls: Any = self._tls  # an IOpenSSLContextFactory (getContext)
                site = TLSMemoryBIOFactory(tls, False, self._http_site())
                port = reactor.listenTCP(ep.port, site, interface=ep.host)
                port._type = "TLS"  # as listenSSL names it in Twisted's log lines
                opened.append(port)
        except Exception:
            for port in opened:
                port.stopListening()
            raise
        self.listening[(kind, ep.host, ep.port)] = opened
        if kind == "dns":
            self._udp.append(udp)
            self._udp_of[(kind, ep.host, ep.port)] = udp

    def _unlisten(self, key: tuple[str, str, int]) -> None:
        for port in self.listening.pop(key):
            port.stopListening()
        udp = self._udp_of.pop(key, None)
        if udp is not None:
            self._udp.remove(udp)

    def _http_site(self) -> LimitedSite:
        """The HTTP side: /healthz, /metrics, DynDNS2, the API.

        Made (and twisted.web, the API and DynDNS2 code imported) with the
        first http(s) listener, at start or by a reload: a DNS-only server
        neither loads nor keeps any of it.
        """
        if self._site is not None:
            return self._site
        from ddns_server.api.service import ApiContext
        from ddns_server.api.tokens import TokenStore
        from ddns_server.dyndns2 import Dyndns2
        from ddns_server.edge.api_http import add_api_resources
        from ddns_server.edge.dyndns_http import DdnsRequest, add_resources
        from ddns_server.edge.http import make_root
        from ddns_server.edge.http_limits import LimitedSite

        self.dyndns = Dyndns2(
            self.store, lambda: self.config, lambda code: self.metrics.dyndns.labels(code).inc()
        )
        self.dyndns.owned = self.failover.checker.owns
        # /api/v1 and /client/v4: tokens are read from the journal on each request
        self.api = ApiContext(
            self.store, TokenStore(self.journal.conn), lambda: self.config, time.time
        )
        self.api.failover_status = self.failover.checker.status
        from ddns_server.mirrors.metrics import MirrorCollector

        # /metrics is the registry's only reader: its mirror families come with it
        self.registry.register(MirrorCollector(lambda: self.journal, self._mirror_list))
        root = make_root(self.health_problem, self.registry)
        add_resources(root, self.dyndns, lambda: self.config, self.reactor, time.time)
        add_api_resources(
            root,
            self.api,
            lambda: self.config,
            lambda status: self.metrics.updates.labels("api", status).inc(),
        )
        site = LimitedSite(
            root,
            lambda: self.config.http_limits,
            lambda: self.config.trusted_proxies,
            requestFactory=DdnsRequest,
        )
        site.displayTracebacks = False
        self._site = site
        return site

    def start(self) -> None:
        group = TcpGroupCommit(self.reactor, self.store, self.handler)  # UPDATEs ready at once
        self._tcp = DnsTcpFactory(self.handler, self.metrics, group)
        if self.config.http or self.config.https:
            self._http_site()  # a broken install fails here, before listening
        if self.config.https:
            from ddns_server.edge.tls import ReloadableContextFactory, context_factory

            # TLS 1.2+; self-signed when no cert_file
            self._tls = ReloadableContextFactory(context_factory(self.config))
        for kind, endpoints in _endpoints(self.config):
            for ep in endpoints:
                self._listen(kind, ep)
        self._configure_rrl(self.config)
        self._poller.start(POLL_INTERVAL, now=False)
        self._prober.start(PROBE_INTERVAL, now=False)
        self.failover.start()
        self._configure_mirrors(self.config)
        for zone in self.store.zones.values():
            log.info(
                "serving zone %s serial %d (%d records)",
                zone.origin,
                zone.serial,
                zone.record_count,
            )
            self.notifier.notify(zone)  # like BIND, announce the zones at start-up

    def stop(self) -> None:
        if self._poller.running:
            self._poller.stop()
        if self._prober.running:
            self._prober.stop()
        self.notifier.stop()
        self.failover.stop()
        if self.mirrors is not None:
            self.mirrors.stop()
        for key in list(self.listening):
            self._unlisten(key)
        self.journal.close()

    def _configure_rrl(self, config: model.Config) -> None:
        """Response rate limiting on every UDP listener, or off (no `rate_limit:`).

        A reload with unchanged settings keeps the limiter and its state.
        """
        settings = config.rate_limit
        current = self._udp[0].rrl if self._udp else None
        if current is not None and current.settings == settings:
            return
        limiter = RateLimiter(settings, self.rrl_counters) if settings is not None else None
        for udp in self._udp:
            udp.rrl = limiter  # one table for all listeners: a client is one client
        if settings is not None:
            log.info(
                "response rate limiting: %d/s (nxdomain %s/s, errors %s/s), window %d s, slip %d",
                settings.responses_per_second,
                settings.nxdomains_per_second or settings.responses_per_second,
                settings.errors_per_second or settings.responses_per_second,
                settings.window,
                settings.slip,
            )

    def health_problem(self) -> str | None:
        """None while listening with a readable journal whose writes succeed.

        Writes are judged by what they did (store.health: the last commit or
        write probe), never by file permissions: a read-only mount report
        means nothing while commits succeed. Never waits for the journal's
        write lock: a `journal rollback` in another process must not stall
        the reactor (and DNS) for seconds.
        """
        if not self.ports:
            return "not listening"
        try:
            self.journal.conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except Exception as e:  # noqa: BLE001 - any failure means unhealthy
            return f"journal unreadable: {e}"
        return self.store.health.reason

    def healthy(self) -> bool:
        return self.health_problem() is None

    def _probe(self) -> None:
        """While a write failed, try a small write now and then (issue 14)."""
        health = self.store.health
        if health.healthy:
            return
        try:
            if self.journal.write_probe():
                health.record_success()
        except Exception as e:  # noqa: BLE001 - the failure is the state we report
            health.record_failure(f"{type(e).__name__}: {e}")

    # -- changes ------------------------------------------------------------------

    def _poll(self) -> None:
        try:
            self.store.poll()
        except Exception:
            log.exception("reading the journal failed")

    def _count_update(self, result: str) -> None:
        """Count one RFC 2136 UPDATE by result (the labelled child looked up once)."""
        child = self._update_counts.get(result)
        if child is None:
            child = self._update_counts[result] = self.metrics.updates.labels("rfc2136", result)
        child.inc()

    def _wake_mirrors(self, zone: ZoneData, version: Version | None) -> None:
        if self.mirrors is not None:
            self.mirrors.wake(self.store.key_of(zone))

    def _mirror_list(self) -> list[tuple[MirrorSpec, Mirror | None]]:
        return self.mirrors.mirrors() if self.mirrors is not None else []

    def _configure_mirrors(self, config: model.Config, reset: bool = False) -> None:
        """Run the configured mirrors (the supervisor made with the first one)."""
        if self.mirrors is None:
            if not config.mirrors:
                return
            from ddns_server.mirrors.worker import Supervisor

            self.mirrors = Supervisor(config.journal_path)
        self.mirrors.configure(_mirror_specs(config), reset=reset)

    def reload(self, config: model.Config) -> None:
        """SIGHUP: take new keys, users, policies, zones, listen addresses and TLS files.

        New zones are opened (and their files parsed) first: if that fails,
        the ConfigError propagates and nothing of the new config is taken.
        What cannot change without a restart is logged with the reason, and
        the closing line says it was not applied (like `rndc reconfig`, which
        logs what it could not do rather than claiming success).
        """
        new_zones = [
            z.name.to_text().lower() for z in config.zones if self.store.zone_for(z.name) is None
        ]
        try:
            check_history(self.journal, new_zones)
        except UserError as e:
            raise ConfigError([str(e)]) from None
        not_applied = restart_needed(self.config, config)
        for setting, why in not_applied:
            log.warning("reload: %s changed but needs a restart: %s", setting, why)
        if not_applied:  # keep serving with the settings in effect
            config = dataclasses.replace(
                config, **{name: getattr(self.config, name) for name, _ in not_applied}
            )
        tls_options = None
        if config.https:
            from ddns_server.edge.tls import context_factory

            try:  # read again even when the paths are the same: an ACME client renewed them
                tls_options = context_factory(config)
            except UserError as e:
                log.error("reload: tls: %s; keeping the previous certificate", e)
                not_applied.append(("tls", str(e)))
                if self._tls is None:
                    config = dataclasses.replace(config, https=())
        opened = []
        for zone in config.zones:
            if self.store.zone_for(zone.name) is None:
                seed = None
                if zone.file and not self.journal.has_zone(zone.name.to_text().lower()):
                    seed = records_from_file(zone.file, zone.name)
                opened.append((zone, seed))
        self.config = config
        self.handler.keyring = keyring(config.keys)
        self.handler.max_fudge = config.tsig_max_fudge
        self.updates.configure(config.zones)
        self.updates.limits = config.update_limits
        self.transfers.configure(config.zones)
        self.notifier.configure(config.zones)
        self._configure_rrl(config)
        wanted = {name_to_wire(zone.name).lower() for zone in config.zones}
        for apex in list(self.store.zones):
            if apex not in wanted:
                del self.store.zones[apex]
        for zone in config.zones:
            # new journal limits apply from the next commit on
            self.store.limits[name_to_wire(zone.name).lower()] = ZoneLimits(
                zone.journal_max_versions, zone.journal_max_age_days
            )
        for zone, seed in opened:
            data = self.store.open_zone(
                zone.name,
                seed,
                ZoneLimits(zone.journal_max_versions, zone.journal_max_age_days),
            )
            log.info(
                "serving zone %s serial %d (%d records)",
                data.origin,
                data.serial,
                data.record_count,
            )
            self.notifier.notify(data)
        # A changed mirror (or its key's secret) restarts; stopped ones try again.
        self._configure_mirrors(config, reset=True)
        if tls_options is not None:
            from ddns_server.edge.tls import ReloadableContextFactory, describe_certificate

            if self._tls is None:
                self._tls = ReloadableContextFactory(tls_options)
            else:
                self._tls.options = tls_options
            log.info("tls: certificate %s", describe_certificate(config))
        not_applied += self._apply_listen(config)
        if config.log != self._log_settings:
            configure_logs(config.log.format, config.log.level, sys.stderr)
            self._log_settings = config.log
        self.failover.reload(config)
        if not_applied:
            log.warning(
                "configuration reloaded from %s, except: %s",
                config.path,
                ", ".join(setting for setting, _ in not_applied),
            )
        else:
            log.info("configuration reloaded from %s", config.path)

    def _apply_listen(self, config: model.Config) -> list[tuple[str, str]]:
        """Close the listen addresses no longer configured, open the new ones."""
        wanted = {(kind, ep.host, ep.port): ep for kind, eps in _endpoints(config) for ep in eps}
        for key in [key for key in self.listening if key not in wanted]:
            self._unlisten(key)
            log.info("listen.%s: closed %s", key[0], _address(key[1], key[2]))
        failed = []
        for key, ep in wanted.items():
            if key in self.listening:
                continue
            try:
                self._listen(key[0], ep)
            except Exception as e:  # noqa: BLE001 - in use, not an address of ours
                log.error("listen.%s: cannot listen on %s: %s", key[0], _address(*key[1:]), e)
                failed.append((f"listen.{key[0]} {_address(*key[1:])}", str(e)))
            else:
                log.info("listen.%s: listening on %s", key[0], _address(*key[1:]))
        return failed


# Settings a running server cannot take over, and why (SIGHUP logs them).
RESTART_ONLY = {
    "data_dir": "the journal stays open in the old data_dir",
}


def restart_needed(old: model.Config, new: model.Config) -> list[tuple[str, str]]:
    """(setting, why) for each changed setting that only a restart applies."""
    return [
        (name, why)
        for name, why in RESTART_ONLY.items()
        if getattr(old, name) != getattr(new, name)
    ]


def _endpoints(
    config: model.Config,
) -> list[tuple[str, tuple[model.Endpoint, ...]]]:
    return [("dns", config.dns), ("http", config.http), ("https", config.https)]


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _mirror_specs(config: model.Config) -> list[MirrorSpec]:
    """The mirrors with their rfc2136 key resolved (a new secret restarts the mirror)."""
    from ddns_server.mirrors import registry as mirror_registry
    from ddns_server.mirrors.base import ProviderError

    out = []
    for spec in config.mirrors:
        try:
            out.append(mirror_registry.with_keys(spec, config.keys))
        except ProviderError:
            out.append(spec)  # its worker reports the problem as a permanent error
    return out


# What Twisted's reactor imports for listenSSL/connectSSL/startTLS, each
# inside `try: ... except ImportError` (posixbase.py, tcp.py): pyOpenSSL and
# cryptography, ~12 MiB and a tenth of a second at every start.
_REACTOR_TLS = ("twisted.protocols.tls", "twisted.internet.ssl", "twisted.internet._newtls")


def import_reactor(tls: bool) -> Any:
    """Twisted's default reactor; without its TLS parts unless `tls`.

    Without them the reactor lacks listenSSL (https listeners use listenTCP
    with TLSMemoryBIOFactory, which is what listenSSL does) and startTLS
    (unused); TLS itself still imports normally afterwards, for a reload
    that adds an https listener or a probe.
    """
    blocked = []
    if not tls and "twisted.internet.reactor" not in sys.modules:
        blocked = [name for name in _REACTOR_TLS if name not in sys.modules]
        for name in blocked:
            sys.modules[name] = None  # type: ignore[assignment] # ImportError
    try:
        from twisted.internet import reactor
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return reactor


def _uses_tls(config: model.Config) -> bool:
    """https listeners or HTTPS health checks."""
    return bool(config.https) or any(
        f.check.protocol == "https" for zone in config.zones for f in zone.failover
    )


def run(config: model.Config) -> int:
    """`ddns-server serve`: run in the foreground until SIGTERM/SIGINT."""
    reactor = import_reactor(_uses_tls(config))

    configure_logs(config.log.format, config.log.level, sys.stderr)
    twisted_log.PythonLoggingObserver("twisted").start()
    # Loading a large zone makes hundreds of thousands of objects, none in a
    # cycle: the collector would only walk them again and again. Afterwards
    # they go to the permanent generation, out of every later collection.
    gc.disable()
    try:
        server = Server(config, reactor)
        try:
            server.start()
        except Exception as e:  # a port in use, an address we cannot bind
            log.error("cannot start: %s", e)
            server.stop()
            return 1
    finally:
        gc.freeze()
        gc.enable()

    def on_hup(_signum: int, _frame: object) -> None:
        def do_reload() -> None:
            try:
                server.reload(config_mod.load_config(config.path, check_zone_files=False))
            except ConfigError as e:
                for problem in e.problems:
                    log.error("reload refused: %s", problem)
            except DdnsError as e:
                log.error("reload refused: %s", e)

        reactor.callFromThread(do_reload)  # type: ignore[attr-defined]

    if hasattr(signal, "SIGHUP"):  # not on Windows
        signal.signal(signal.SIGHUP, on_hup)
    reactor.addSystemEventTrigger("before", "shutdown", server.stop)  # type: ignore[attr-defined]
    log.info(
        "ddns-server listening on dns %s, http %s, https %s",
        ", ".join(f"{e.host}:{e.port}" for e in config.dns),
        ", ".join(f"{e.host}:{e.port}" for e in config.http) or "-",
        ", ".join(f"{e.host}:{e.port}" for e in config.https) or "-",
    )
    reactor.run()  # type: ignore[attr-defined]
    return 0
