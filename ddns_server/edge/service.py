"""Wiring: config -> journal, store, handlers, listeners. The only place that knows them all."""

from __future__ import annotations

import gc
import logging
import signal
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.internet import task
from twisted.internet.interfaces import IListeningPort
from twisted.python import log as twisted_log

from ddns_server import config as config_mod
from ddns_server import model
from ddns_server.api.service import ApiContext
from ddns_server.api.tokens import TokenStore
from ddns_server.dnsmsg import DnsHandler
from ddns_server.dyndns2 import Dyndns2
from ddns_server.edge.api_http import add_api_resources
from ddns_server.edge.dns import DnsTcpFactory, DnsUdp, listen_udp
from ddns_server.edge.dyndns_http import DdnsRequest, add_resources
from ddns_server.edge.http import make_root
from ddns_server.edge.http_limits import LimitedSite
from ddns_server.edge.notify import Notifier
from ddns_server.edge.tls import context_factory
from ddns_server.errors import ConfigError, UserError
from ddns_server.journal import Journal, Version, check_history, loose_modes
from ddns_server.keys import keyring
from ddns_server.metrics import Metrics
from ddns_server.mirrors import registry as mirror_registry
from ddns_server.mirrors.base import ProviderError
from ddns_server.mirrors.metrics import MirrorCollector
from ddns_server.mirrors.spec import MirrorSpec
from ddns_server.mirrors.worker import Supervisor
from ddns_server.query import QueryEngine
from ddns_server.rrl import RateLimiter, RrlCounters
from ddns_server.store import Store, ZoneLimits, records_from_file, zone_key
from ddns_server.update_handler import UpdateProcessor
from ddns_server.xfr import TransferProcessor
from ddns_server.zonedata import ZoneData, name_to_wire

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
    for zone in config.zones:
        seed = None
        if zone.file and not journal.has_zone(zone.name.to_text().lower()):
            seed = records_from_file(zone.file, zone.name)
        store.open_zone(
            zone.name,
            seed,
            ZoneLimits(zone.journal_max_versions, zone.journal_max_age_days),
        )
    return store


class Server:
    """A running ddns-server: listeners on a reactor around one store."""

    def __init__(self, config: model.Config, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self.journal = Journal(config.journal_path)
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
        self.updates = UpdateProcessor(
            self.store,
            config.zones,
            lambda result: self.metrics.updates.labels("rfc2136", result).inc(),
            limits=config.update_limits,
        )
        self.handler.updates = self.updates
        self.transfers = TransferProcessor(self.store, config.zones)
        self.handler.transfers = self.transfers
        self.notifier = Notifier(
            reactor, config.zones, lambda result: self.metrics.notifies.labels(result).inc()
        )
        self.store.add_listener(self.notifier.on_version)
        self.dyndns = Dyndns2(
            self.store, lambda: self.config, lambda code: self.metrics.dyndns.labels(code).inc()
        )
        # /api/v1 and /client/v4: tokens are read from the journal on each request
        self.api = ApiContext(
            self.store, TokenStore(self.journal.conn), lambda: self.config, time.time
        )
        self.ports: list[IListeningPort] = []
        self.store.add_listener(self._on_version)
        self.store.on_hook_error = lambda name: self.metrics.hook_errors.labels(name).inc()
        # Mirrors: one worker thread each; the listener only wakes them.
        self.mirrors = Supervisor(config.journal_path)
        self.store.add_listener(self._wake_mirrors)
        self.registry.register(MirrorCollector(lambda: self.journal, self.mirrors.mirrors))
        self._poller = task.LoopingCall(self._poll)
        self._prober = task.LoopingCall(self._probe)

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        reactor = self.reactor
        tcp = DnsTcpFactory(self.handler, self.metrics)
        for ep in self.config.dns:
            # One protocol per UDP port: Twisted binds a protocol to one transport.
            udp = DnsUdp(self.handler, self.metrics, self.store)
            self._udp.append(udp)
            self.ports.append(listen_udp(reactor, ep.port, udp, ep.host))
            self.ports.append(reactor.listenTCP(ep.port, tcp, interface=ep.host, backlog=128))
        self._configure_rrl(self.config)
        root = make_root(self.health_problem, self.registry)
        add_resources(root, self.dyndns, lambda: self.config, reactor, time.time)
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
        for ep in self.config.http:
            self.ports.append(reactor.listenTCP(ep.port, site, interface=ep.host))
        if self.config.https:
            tls = context_factory(self.config)  # TLS 1.2+; self-signed when no cert_file
            for ep in self.config.https:
                self.ports.append(reactor.listenSSL(ep.port, site, tls, interface=ep.host))
        self._poller.start(POLL_INTERVAL, now=False)
        self._prober.start(PROBE_INTERVAL, now=False)
        self.mirrors.configure(_mirror_specs(self.config))
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
        self.mirrors.stop()
        for port in self.ports:
            port.stopListening()
        self.ports = []
        self.journal.close()

    def _configure_rrl(self, config: config_mod.Config) -> None:
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

    def _wake_mirrors(self, zone: ZoneData, version: Version | None) -> None:
        self.mirrors.wake(zone_key(zone.origin))

    def _on_version(self, zone: ZoneData, version: Version | None) -> None:
        if version is not None:
            log.info(
                "zone %s serial %d by %s from %s via %s (-%d +%d)",
                zone.origin,
                version.serial,
                version.who,
                version.source,
                version.channel,
                version.removed,
                version.added,
            )

    def reload(self, config: model.Config) -> None:
        """SIGHUP: take new keys, users, policies and zones; listeners stay.

        New zones are opened (and their files parsed) first: if that fails,
        the ConfigError propagates and nothing of the new config is taken.
        """
        new_zones = [
            z.name.to_text().lower() for z in config.zones if self.store.zone_for(z.name) is None
        ]
        try:
            check_history(self.journal, new_zones)
        except UserError as e:
            raise ConfigError([str(e)]) from None
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
        self.mirrors.configure(_mirror_specs(config), reset=True)
        log.info("configuration reloaded from %s", config.path)


def _mirror_specs(config: model.Config) -> list[MirrorSpec]:
    """The mirrors with their rfc2136 key resolved (a new secret restarts the mirror)."""
    out = []
    for spec in config.mirrors:
        try:
            out.append(mirror_registry.with_keys(spec, config.keys))
        except ProviderError:
            out.append(spec)  # its worker reports the problem as a permanent error
    return out


def run(config: model.Config) -> int:
    """`ddns-server serve`: run in the foreground until SIGTERM/SIGINT."""
    from twisted.internet import reactor

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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
