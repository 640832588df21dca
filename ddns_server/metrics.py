"""Prometheus metrics around an injected registry.

The query path only bumps plain dict counters (no locks, no label lookups);
a custom collector turns them, and the zones' serials and sizes, into metrics
when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import dns.rcode
import dns.rdatatype
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ddns_server.rrl import RrlCounters
from ddns_server.zonedata import ZoneData, wire_to_name

# Answer latency is observed for one query in LATENCY_SAMPLE (cheap, unbiased).
LATENCY_SAMPLE = 16
LATENCY_BUCKETS = (0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.1, 1.0)


class Metrics:
    """Counters the edges bump; exported through `registry`."""

    def __init__(
        self,
        registry: CollectorRegistry,
        zones: Callable[[], dict[bytes, ZoneData]],
        journal_healthy: Callable[[], bool] | None = None,
        rrl: RrlCounters | None = None,
    ) -> None:
        self.registry = registry
        self.rrl = rrl if rrl is not None else RrlCounters()
        # (qtype as 2 wire bytes, rcode) -> count
        self.queries: dict[tuple[bytes, int], int] = {}
        # qtype << 4 | rcode -> count of UDP answers from the query engine's
        # `hit`, counted there (it has the type at hand); exported with `queries`
        self.hits: dict[int, int] = {}
        self.latency = Histogram(
            "ddns_query_latency_seconds",
            "Time to answer a DNS query (sampled: one query in 16)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.updates = Counter(
            "ddns_updates",
            "Update requests by channel and result",
            ["channel", "result"],
            registry=registry,
        )
        self.dyndns = Counter(
            "ddns_dyndns2_requests", "DynDNS2 replies by code", ["code"], registry=registry
        )
        self.notifies = Counter(
            "ddns_notify", "NOTIFY messages by result", ["result"], registry=registry
        )
        self.hook_errors = Counter(
            "ddns_hook_errors",
            "After-commit hooks (NOTIFY, logs, mirrors, pruning) that failed; the change stood",
            ["hook"],
            registry=registry,
        )
        self.dns_errors = Counter(
            "ddns_dns_internal_errors",
            "DNS messages whose handling failed inside the server (answered SERVFAIL)",
            registry=registry,
        )
        registry.register(_Collector(self, zones))
        if journal_healthy is not None:
            Gauge(
                "ddns_journal_healthy",
                "1 while journal writes succeed, 0 after a failed commit until a write succeeds",
                registry=registry,
            ).set_function(lambda: 1.0 if journal_healthy() else 0.0)

    def count_query(self, query: bytes, response: bytes) -> None:
        """Count one answered query (opcode QUERY) by type and rcode."""
        if query[2] & 0x78:
            return  # UPDATE, NOTIFY, ...: counted by their own metrics
        end = query.find(b"\x00", 12)
        key = (query[end + 1 : end + 3], response[3] & 0x0F)
        queries = self.queries
        queries[key] = queries.get(key, 0) + 1

    def uncount_hit(self, query: bytes, response: bytes) -> None:
        """Take back a counted hit whose answer was not sent (rate limited)."""
        end = query.find(0, 12)
        self.hits[(query[end + 1] << 12) | (query[end + 2] << 4) | (response[3] & 0x0F)] -= 1

    def query_counts(self) -> dict[tuple[bytes, int], int]:
        """Answered queries by (qtype wire, rcode): `queries` and `hits` together."""
        counts = dict(self.queries)
        for key, n in list(self.hits.items()):
            pair = ((key >> 4).to_bytes(2, "big"), key & 0x0F)
            counts[pair] = counts.get(pair, 0) + n
        return counts


class _Collector(Collector):
    def __init__(self, metrics: Metrics, zones: Callable[[], dict[bytes, ZoneData]]) -> None:
        self.metrics = metrics
        self.zones = zones

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        queries = CounterMetricFamily(
            "ddns_queries",
            "DNS queries answered, by query type and rcode",
            labels=["qtype", "rcode"],
        )
        for (qtype, rcode), count in sorted(self.metrics.query_counts().items()):
            type_text = (
                dns.rdatatype.to_text(dns.rdatatype.RdataType.make(int.from_bytes(qtype, "big")))
                if len(qtype) == 2
                else "?"
            )
            queries.add_metric([type_text, dns.rcode.to_text(dns.rcode.Rcode.make(rcode))], count)
        yield queries
        serial = GaugeMetricFamily("ddns_zone_serial", "Current SOA serial", labels=["zone"])
        records = GaugeMetricFamily("ddns_zone_records", "Records in the zone", labels=["zone"])
        for apex, zone in sorted(self.zones().items()):
            name = wire_to_name(apex).to_text()
            serial.add_metric([name], zone.serial)
            records.add_metric([name], zone.record_count)
        yield serial
        yield records
        rrl = self.metrics.rrl
        yield CounterMetricFamily(
            "ddns_rrl_dropped", "UDP answers dropped by response rate limiting", value=rrl.dropped
        )
        yield CounterMetricFamily(
            "ddns_rrl_slipped",
            "UDP answers sent truncated (TC) instead by response rate limiting",
            value=rrl.slipped,
        )
