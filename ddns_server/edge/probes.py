"""Health probes on the reactor, and the failover service around health.HealthChecker.

Every probe runs concurrently on the one event loop, never a thread per
probe. A scheduler tick (every TICK seconds) starts the probes that are due,
from one heap; each target is probed every `interval` seconds (with a
stable spread over the interval at start and +-5% jitter after, so 10,000
targets do not fire together) and times out after `timeout` (checked by the
same tick, so a timeout is late by at most TICK).

TCP checks are a non-blocking connect watched by the reactor (a writer
descriptor: writable = connected or refused): about a third of the CPU of
`reactor.connectTCP`, which builds a transport and a protocol we would close
at once (bench/failover.py). HTTP and HTTPS checks use Twisted's Agent (a
GET with `Connection: close`, the status line is all we read). Like Route 53
health checks, HTTPS checks do not verify the target's certificate (a
target is often addressed by IP, or has an internal certificate); the `host`
is sent as the Host header and as TLS SNI.
"""

from __future__ import annotations

import errno
import heapq
import logging
import os
import random
import select
import socket
import struct
import time
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from ddns_server import model
from ddns_server.health import FailoverSet, HealthChecker, HealthMetrics, Hooks, Target
from ddns_server.health_report import STATUS_FILE, write_status_file
from ddns_server.store import Store

log = logging.getLogger("ddns_server.health")

TICK = 0.05  # seconds between scheduler passes
JITTER = 0.05  # +-5% of the interval
STATUS_CHANGED_EVERY = 1.0  # the status file, at most this often after a state change
STATUS_EVERY = 10.0  # ... and at least this often (a heartbeat for `health status`)
# Close a connected probe with a reset (SO_LINGER 0), as HAProxy's checks do:
# no FIN exchange and no TIME_WAIT socket left per probe on either side.
_RESET = struct.pack("ii", 1, 0)


@implementer(IWriteDescriptor)
class _Connect:
    """One TCP connect probe: a non-blocking socket the reactor watches for writability."""

    __slots__ = ("sock", "done", "reactor", "started", "finished")

    def __init__(self, reactor: Any, target: Target, port: int, done: Any) -> None:
        self.reactor = reactor
        self.done = done
        family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.started = time.monotonic()
        self.finished = False
        code = self.sock.connect_ex((target.address, port))
        if code in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            reactor.addWriter(self)
        else:
            self._finish(code)

    def fileno(self) -> int:
        return self.sock.fileno()

    def doWrite(self) -> None:  # noqa: N802 - Twisted's interface
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self.reactor.removeWriter(self)
        self._finish(code)

    def cancel(self) -> None:
        if not self.finished:
            self.finished = True
            self.reactor.removeWriter(self)
            self.sock.close()

    def _finish(self, code: int) -> None:
        if self.finished:
            return
        self.finished = True
        latency = time.monotonic() - self.started
        if code == 0:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.sock.close()
        self.done(code == 0, latency, "" if code == 0 else os.strerror(code))

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802 - Twisted's interface
        # The reactor saw an error/hang-up event (e.g. a refused connect under
        # epoll) and removed us: the socket's error says what happened.
        try:
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as e:
            code = e.errno or errno.ECONNABORTED
        self._finish(code or errno.ECONNRESET)

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's interface
        return "tcp-probe"


@implementer(IReadDescriptor)
class _Connects:
    """Many TCP connect probes in one epoll set, which the reactor watches as
    one readable descriptor (Linux): a ready batch is handled in one call,
    without the reactor's per-descriptor bookkeeping. Half the CPU of one
    reactor writer per probe, which matters at 1,000 probes a second
    (bench/failover.py); elsewhere each probe is a `_Connect`."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.epoll = select.epoll()
        # fd -> (socket, done callback, start time)
        self.pending: dict[int, tuple[socket.socket, Any, float]] = {}
        reactor.addReader(self)

    def start(self, target: Target, port: int, done: Any) -> socket.socket | None:
        """Start a connect; the socket (a handle for `cancel`), or None when done at once."""
        family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        started = time.monotonic()
        code = sock.connect_ex((target.address, port))
        if code in (errno.EINPROGRESS, errno.EWOULDBLOCK):
            fd = sock.fileno()
            self.epoll.register(fd, select.EPOLLOUT)
            self.pending[fd] = (sock, done, started)
            return sock
        sock.close()
        done(code == 0, time.monotonic() - started, "" if code == 0 else os.strerror(code))
        return None

    def cancel(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        entry = self.pending.get(fd)
        if entry is not None and entry[0] is sock:
            del self.pending[fd]
            self.epoll.unregister(fd)
            sock.close()

    def fileno(self) -> int:
        return self.epoll.fileno()

    def doRead(self) -> None:  # noqa: N802 - Twisted's interface
        pending = self.pending
        unregister = self.epoll.unregister
        now = time.monotonic
        for fd, _events in self.epoll.poll(0):
            entry = pending.pop(fd, None)
            if entry is None:
                continue
            sock, done, started = entry
            unregister(fd)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            sock.close()
            done(code == 0, now() - started, "" if code == 0 else os.strerror(code))

    def stop(self) -> None:
        self.reactor.removeReader(self)
        for sock, _done, _started in self.pending.values():
            sock.close()
        self.pending = {}
        self.epoll.close()

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802 - Twisted's interface
        pass

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's interface
        return "tcp-probes"


class _Pending:
    """A connect in `_Connects`, cancellable like the other probes."""

    __slots__ = ("connects", "sock")

    def __init__(self, connects: _Connects, sock: socket.socket) -> None:
        self.connects = connects
        self.sock = sock

    def cancel(self) -> None:
        self.connects.cancel(self.sock)


class Prober:
    """Runs the checker's probes: one heap of due targets, a tick, in-flight timeouts."""

    def __init__(self, reactor: Any, checker: HealthChecker, metrics: HealthMetrics | None) -> None:
        self.reactor = reactor
        self.checker = checker
        self.metrics = metrics
        self._due: list[tuple[float, int, Target]] = []
        self._deadlines: list[tuple[float, int, Target, object, Any]] = []
        self._seq = 0
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = reactor
        self._connects: _Connects | None = None
        self._http: Any = None  # http_probe.HttpProbes, made for the first HTTP(S) check

    def http_probes(self) -> Any:
        """The HTTP(S) prober: twisted.web's Agent and TLS are imported only
        when a failover RRset checks over HTTP(S) (HealthService._run makes it
        at start, so a broken install fails there)."""
        if self._http is None:
            from ddns_server.edge.http_probe import HttpProbes

            self._http = HttpProbes(self.reactor)
        return self._http

    def start(self) -> None:
        if self._loop.running:
            return
        if hasattr(select, "epoll"):
            self._connects = _Connects(self.reactor)
        self._loop.start(TICK, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        for _deadline, _seq, target, token, probe in self._deadlines:
            if target.inflight is token:
                target.inflight = None
                probe.cancel()
        self._deadlines = []
        self._due = []
        if self._connects is not None:
            self._connects.stop()
            self._connects = None

    def schedule(self, target: Target, delay: float) -> None:
        due = self.reactor.seconds() + delay
        target.due = due
        self._seq += 1
        heapq.heappush(self._due, (due, self._seq, target))

    def _tick(self) -> None:
        now = self.reactor.seconds()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _deadline, _seq, target, token, probe = heapq.heappop(deadlines)
            if target.inflight is token:
                self._timed_out(target, probe)
        due = self._due
        while due and due[0][0] <= now:
            when, _seq, target = heapq.heappop(due)
            if not target.active or when != target.due or target.rrset is None:
                continue  # dropped, or scheduled again since
            spec = target.rrset.spec
            step = spec.interval * (1.0 + random.uniform(-JITTER, JITTER))  # noqa: S311
            nxt = when + step if when + step > now else now + step
            target.due = nxt
            self._seq += 1
            heapq.heappush(due, (nxt, self._seq, target))
            if target.inflight is None:
                self._probe(target, spec, now)

    def _probe(self, target: Target, spec: model.Failover, now: float) -> None:
        token = target.inflight = object()
        check = spec.check

        def done(ok: bool, latency: float | None, error: str) -> None:
            if target.inflight is not token:
                return  # timed out already
            target.inflight = None
            self._result(target, check.protocol, ok, latency, error)

        if check.protocol == "tcp":
            try:
                if self._connects is not None:
                    sock = self._connects.start(target, check.port, done)
                    probe: Any = _Pending(self._connects, sock) if sock is not None else None
                else:
                    probe = _Connect(self.reactor, target, check.port, done)
            except OSError as e:  # out of file descriptors, ...
                done(False, None, e.strerror or str(e))
                return
        else:
            probe = self.http_probes().probe(target, check, done)
        if target.inflight is token:
            self._seq += 1
            heapq.heappush(self._deadlines, (now + spec.timeout, self._seq, target, token, probe))

    def _timed_out(self, target: Target, probe: Any) -> None:
        target.inflight = None
        probe.cancel()
        spec = target.rrset.spec if target.rrset is not None else None
        timeout = spec.timeout if spec is not None else None
        self._result(target, spec.check.protocol if spec else "tcp", False, timeout, "timeout")

    def _result(
        self, target: Target, protocol: str, ok: bool, latency: float | None, error: str
    ) -> None:
        if self.metrics is not None and latency is not None:
            self.metrics.probe_latency.labels(protocol, "ok" if ok else "fail").observe(latency)
        self.checker.record(target, ok, latency, error, time.time())


class HealthService:
    """The checker, its prober, its status file and metrics, wired to a store."""

    def __init__(
        self, reactor: Any, store: Store, config: model.Config, registry: Any | None
    ) -> None:
        self.reactor = reactor
        self.store = store
        self.status_path = Path(config.data_dir) / STATUS_FILE
        self.checker = HealthChecker(store, time.time)
        self.metrics = HealthMetrics(registry, lambda: self.checker) if registry else None
        self.prober = Prober(reactor, self.checker, self.metrics)
        self.checker.hooks = Hooks(
            schedule=self.prober.schedule, wake=self._wake, on_switch=self._switched
        )
        self._woken = False
        self._status_written = 0.0
        self._status_loop = task.LoopingCall(self._status)
        self._status_loop.clock = reactor
        self._evaluate_loop = task.LoopingCall(self._evaluate)
        self._evaluate_loop.clock = reactor
        store.add_listener(self.checker.on_version)
        store.checks.append(self.checker.check_owned)
        self.config = config

    def start(self) -> None:
        self.checker.configure(self.config.zones, start=True)
        self._run()

    def reload(self, config: model.Config) -> None:
        self.config = config
        self.status_path = Path(config.data_dir) / STATUS_FILE
        self.checker.configure(config.zones)
        self._run()

    def _run(self) -> None:
        """Probe (and write the status file) only while there is a failover RRset."""
        if not self.checker.sets:
            self.stop()
            return
        if any(rrset.spec.check.protocol != "tcp" for rrset in self.checker.sets.values()):
            self.prober.http_probes()
        self.prober.start()
        if not self._status_loop.running:
            self._status_loop.start(STATUS_CHANGED_EVERY / 2, now=True)
        if not self._evaluate_loop.running:
            self._evaluate_loop.start(1.0, now=False)  # retries of failed writes

    def stop(self) -> None:
        running = self._status_loop.running
        for loop in (self._status_loop, self._evaluate_loop):
            if loop.running:
                loop.stop()
        self.prober.stop()
        if running:
            self._write_status()

    def _switched(self, rrset: FailoverSet) -> None:
        if self.metrics is not None:
            self.metrics.switched(rrset)

    def _wake(self) -> None:
        if not self._woken:
            self._woken = True
            self.reactor.callLater(0, self._evaluate)

    def _evaluate(self) -> None:
        self._woken = False
        self.checker.evaluate()

    def _status(self) -> None:
        now = time.time()
        age = now - self._status_written
        if (self.checker.changed and age >= STATUS_CHANGED_EVERY) or age >= STATUS_EVERY:
            self._write_status()

    def _write_status(self) -> None:
        now = time.time()
        self._status_written = now
        try:
            write_status_file(self.status_path, self.checker.status(raw=True), now)
        except OSError as e:
            log.error("cannot write %s: %s", self.status_path, e.strerror or e)
