"""Prometheus metrics of the mirrors: a collector that reads the engine's state
(the journal's cursor rows and each running mirror's counters) on a scrape,
instead of copying values into gauges (client_python's custom collectors)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ddns_server.journal import Journal
from ddns_server.mirrors import state
from ddns_server.mirrors.engine import Mirror, lag
from ddns_server.mirrors.spec import MirrorSpec

ERROR_CLASSES = ("transient", "permanent", "threshold")


class MirrorCollector(Collector):
    def __init__(
        self,
        journal: Callable[[], Journal],
        mirrors: Callable[[], list[tuple[MirrorSpec, Mirror | None]]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self.mirrors = mirrors
        self.clock = clock

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        labels = ["mirror", "zone", "provider"]
        lag_versions = GaugeMetricFamily(
            "ddns_mirror_lag_versions",
            "Versions of the zone not yet confirmed by the provider",
            labels=labels,
        )
        lag_seconds = GaugeMetricFamily(
            "ddns_mirror_lag_seconds",
            "Age of the oldest version not yet confirmed (0: in sync)",
            labels=labels,
        )
        last_success = GaugeMetricFamily(
            "ddns_mirror_last_success_timestamp_seconds",
            "When the provider last confirmed a push or compare",
            labels=labels,
        )
        conflicts = GaugeMetricFamily(
            "ddns_mirror_conflicts",
            "Managed RRsets left alone: at the provider, differing, not ours",
            labels=labels,
        )
        stopped = GaugeMetricFamily(
            "ddns_mirror_stopped", "1 while a permanent error stops the mirror", labels=labels
        )
        pushes = CounterMetricFamily(
            "ddns_mirror_pushes", "Provider apply calls confirmed (since start)", labels=labels
        )
        errors = CounterMetricFamily(
            "ddns_mirror_errors",
            "Provider errors by class (since start)",
            labels=[*labels, "class"],
        )
        journal = self.journal()
        now = self.clock()
        for spec, mirror in self.mirrors():
            values = [spec.name, spec.zone, spec.provider]
            st = state.load(journal.conn, spec.name, spec.zone)
            versions, oldest = lag(journal, spec.zone, st.version_id)
            lag_versions.add_metric(values, versions)
            lag_seconds.add_metric(values, max(0.0, now - oldest) if oldest is not None else 0.0)
            last_success.add_metric(values, st.last_success or 0.0)
            conflicts.add_metric(values, len(st.conflicts))
            stopped.add_metric(values, 1.0 if st.stopped else 0.0)
            counts = dict.copy(mirror.counters) if mirror is not None else {}
            pushes.add_metric(values, counts.get(("pushes", "ok"), 0))
            for kind in ERROR_CLASSES:
                errors.add_metric([*values, kind], counts.get(("errors", kind), 0))
        yield from (lag_versions, lag_seconds, last_success, conflicts, stopped, pushes, errors)
