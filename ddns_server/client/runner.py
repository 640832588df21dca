"""One pass of the client (`--once`), or passes in a loop: detect, compare, update.

Every decision is one log line: which address each family takes and why,
whether each host is sent or skipped, each retry, each final failure.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

import dns.name

from ddns_server.client import addresses, state
from ddns_server.client.config import ClientConfig, load_client_config
from ddns_server.client.updaters import UpdateError, Updater, make_updater
from ddns_server.errors import ConfigError

log = logging.getLogger("ddns_server.client")

MAX_RETRY_DELAY = 300.0  # seconds: backoff doubles up to this


def _rdtype(family: int) -> str:
    return "A" if family == 4 else "AAAA"


def _host(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True)


class Client:
    """The client for one config; `run_once` is a whole pass."""

    def __init__(self, config: ClientConfig, stop: threading.Event | None = None) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        settings = config.rfc2136 if config.rfc2136 is not None else config.dyndns2
        assert settings is not None
        self.updater: Updater = make_updater(settings, config.timeout)

    def run_once(self) -> bool:
        """Detect and update; True when every host is up to date for every family."""
        config = self.config
        decisions = addresses.detect(
            {f.version: (f.policy, f.sources) for f in config.families},
            timeout=config.timeout,
            allow_private=config.allow_private,
        )
        current = state.load(config.state_file)
        if current.follow(config.fingerprint()):
            log.info("the update settings changed since the last pass: every address is sent again")
        ok = True
        for family in config.families:
            decision = decisions[family.version]
            if decision.address is None:
                log.warning("IPv%d: not updating: %s", family.version, decision.reason)
                ok = False
                continue
            log.info("IPv%d: address %s (%s)", family.version, decision.address, decision.reason)
            for host in config.hostnames:
                if self.stop.is_set():
                    return ok
                ok = self._host(current, host, _rdtype(family.version), decision.address) and ok
        return ok

    def _host(
        self, current: state.State, host: dns.name.Name, rdtype: str, ip: addresses.IPAddress
    ) -> bool:
        config = self.config
        name = _host(host)
        fingerprint = config.fingerprint()
        blocked = current.blocked_by(name, rdtype, fingerprint)
        if blocked is not None:
            log.error(
                "%s %s: not sending %s: an earlier update failed permanently (%s); "
                "fix %s and the client tries again",
                name,
                rdtype,
                ip,
                blocked,
                config.path,
            )
            return False
        last = current.last_sent(name, rdtype)
        if last == str(ip):
            log.info("%s %s: %s unchanged since the last update, nothing sent", name, rdtype, ip)
            return True
        log.info(
            "%s %s: %s -> %s, updating by %s", name, rdtype, last or "(unknown)", ip, config.method
        )
        attempts = config.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                answer = self.updater.update(host, rdtype, ip)
            except UpdateError as e:
                if e.permanent:
                    log.error(
                        "%s %s: update failed permanently: %s; no retry until %s changes",
                        name,
                        rdtype,
                        e,
                        config.path,
                    )
                    current.block(name, rdtype, fingerprint, str(e))
                    state.save(config.state_file, current)
                    return False
                if attempt == attempts:
                    log.error(
                        "%s %s: update failed after %d attempt(s): %s", name, rdtype, attempts, e
                    )
                    return False
                delay = min(config.retry_delay * 2 ** (attempt - 1), MAX_RETRY_DELAY)
                log.warning(
                    "%s %s: update failed (%s); retry %d of %d in %g s",
                    name,
                    rdtype,
                    e,
                    attempt,
                    attempts - 1,
                    delay,
                )
                if self.stop.wait(delay):
                    return False
                continue
            log.info("%s %s: updated to %s (%s)", name, rdtype, ip, answer)
            current.unblock(name, rdtype)
            current.record_sent(name, rdtype, str(ip))
            state.save(config.state_file, current)
            return True
        return False  # pragma: no cover (the loop always returns)


def run(path: Path, once: bool, stop: threading.Event | None = None) -> int:
    """`ddns-server client`: 0 when (the last pass found) everything up to date, else 1.

    In the loop the config is read again before every pass, so an edited file
    (a fixed password, a new key) takes effect without a restart; a broken
    edit is logged and the previous config kept.
    """
    config = load_client_config(path)  # a bad config at start: ConfigError, exit 1
    stop = stop or threading.Event()
    if once:
        return 0 if Client(config, stop).run_once() else 1
    _stop_on_sigterm(stop)
    log.info("client started: %s, every %g s, by %s", config.path, config.interval, config.method)
    while True:
        started = time.monotonic()
        try:
            Client(config, stop).run_once()
            if stop.wait(max(0.0, config.interval - (time.monotonic() - started))):
                break
        except OSError as e:  # e.g. the state file's folder is not writable
            log.error("pass failed: %s", e)
            if stop.wait(config.interval):
                break
        except KeyboardInterrupt:  # Ctrl-C, and NSSM's stop on Windows
            break
        try:
            config = load_client_config(path)
        except ConfigError as e:
            log.error("config not reloaded, keeping the previous one: %s", "; ".join(e.problems))
    log.info("client stopped")
    return 0


def _stop_on_sigterm(stop: threading.Event) -> None:
    """SIGTERM (systemd, NSSM's console close) ends the loop cleanly between passes."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())


def main(path: Path | None, once: bool) -> int:
    """The command's entry (cli.py): log lines to stderr, then `run`."""
    from ddns_server.client.config import default_client_config_path

    logging.basicConfig(
        format="%(asctime)s %(levelname)s client: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        level=logging.INFO,
    )
    if path is None:
        path = default_client_config_path()
        if not path.exists():
            raise ConfigError(
                [
                    f"{path}: no such file "
                    "(the default: give -c CLIENT_CONFIG or set DDNS_CLIENT_CONFIG)"
                ]
            )
    return run(path, once)
