"""One thread per mirror, so that blocking provider SDKs never touch the reactor.

Each worker owns its journal connection and its provider. The store's
after-commit listener only sets the workers' wake-up events (`wake`): it
never blocks, never touches SQLite, and a mirror that is slow or stuck in
retries cannot slow an update or a query.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ddns_server.journal import Journal
from ddns_server.mirrors import registry, state
from ddns_server.mirrors.base import PermanentError, Provider
from ddns_server.mirrors.engine import Mirror
from ddns_server.mirrors.spec import MirrorSpec

log = logging.getLogger("ddns_server.mirrors")

# A stopped mirror looks for `mirror resync` (another process) clearing its
# stop this often; an idle one rereads the journal this often even unwoken.
STOPPED_POLL = 2.0
IDLE_POLL = 30.0

ProviderFactory = Callable[[MirrorSpec], Provider]


class MirrorWorker(threading.Thread):
    def __init__(
        self, spec: MirrorSpec, journal_path: Path, factory: ProviderFactory, reset: bool
    ) -> None:
        super().__init__(name=f"mirror-{spec.name}", daemon=True)
        self.spec = spec
        self.journal_path = journal_path
        self.factory = factory
        self.wakeup = threading.Event()
        self.stopping = threading.Event()
        self.reset_requested = reset
        self.mirror: Mirror | None = None

    def wake(self) -> None:
        self.wakeup.set()

    def stop(self) -> None:
        self.stopping.set()
        self.wakeup.set()

    def run(self) -> None:
        journal = Journal(self.journal_path)
        try:
            self._run(journal)
        except Exception:
            log.exception("mirror %s: worker failed", self.spec.name)
        finally:
            if self.mirror is not None:
                try:
                    self.mirror.provider.close()
                except Exception as e:  # noqa: BLE001 - closing must not stop the others
                    log.warning("mirror %s: closing the provider: %s", self.spec.name, e)
            journal.close()

    def _run(self, journal: Journal) -> None:
        spec = self.spec
        if self.reset_requested:
            state.reset_stopped(journal.conn, [spec.name])
            self.reset_requested = False
        try:
            provider = self.factory(spec)
        except PermanentError as e:
            st = state.load(journal.conn, spec.name, spec.zone)
            st.stopped, st.error_class, st.error_message = True, "permanent", str(e)
            state.save(journal.conn, st)
            log.error("mirror %s: cannot start: %s", spec.name, e)
            self.stopping.wait()
            return
        self.mirror = mirror = Mirror(spec, journal, provider, sleep=self.stopping.wait)
        while not self.stopping.is_set():
            if self.reset_requested:
                self.reset_requested = False
                state.reset_stopped(journal.conn, [spec.name])
            self.wakeup.clear()
            try:
                wait = mirror.step()
            except Exception:
                log.exception("mirror %s: step failed", spec.name)
                wait = STOPPED_POLL
            if wait is None:
                wait = STOPPED_POLL if mirror.holding else IDLE_POLL
            self._sleep(wait, mirror.holding)

    def _sleep(self, seconds: float, holding: bool) -> None:
        """Until the next step is due; a new version ends the wait unless the
        mirror is holding (stopped or backing off): then only a stop or a
        reset (SIGHUP) does, and a wake-up costs no journal read."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.wakeup.wait(remaining):
                return
            if not holding or self.reset_requested:
                return
            self.wakeup.clear()


class Supervisor:
    """The running mirrors of a server: start, wake, reconfigure, stop."""

    def __init__(self, journal_path: Path, factory: ProviderFactory = registry.create) -> None:
        self.journal_path = journal_path
        self.factory = factory
        self.workers: dict[str, MirrorWorker] = {}

    def configure(self, specs: Iterable[MirrorSpec], reset: bool = False) -> None:
        """Run exactly these mirrors; with `reset` (SIGHUP), stopped ones try again."""
        wanted = {spec.name: spec for spec in specs}
        for name, worker in list(self.workers.items()):
            if wanted.get(name) != worker.spec:
                worker.stop()  # a provider call in flight ends on its own; pushes are idempotent
                del self.workers[name]
            elif reset:
                worker.reset_requested = True
                worker.wake()
        for name, spec in wanted.items():
            if name not in self.workers:
                worker = MirrorWorker(spec, self.journal_path, self.factory, reset)
                self.workers[name] = worker
                worker.start()

    def wake(self, zone: str) -> None:
        """A new version of `zone` (absolute lower-case text): cheap, never blocks."""
        for worker in self.workers.values():
            if worker.spec.zone == zone:
                worker.wakeup.set()

    def mirrors(self) -> list[tuple[MirrorSpec, Mirror | None]]:
        return [(w.spec, w.mirror) for w in self.workers.values()]

    def stop(self, timeout: float = 5.0) -> None:
        workers = list(self.workers.values())
        self.workers = {}
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join(timeout)
