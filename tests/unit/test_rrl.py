"""Response rate limiting, pure (issue 14 item 17): a fake clock, real wire answers."""

from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from ddns_server import rrl
from ddns_server.rrl import DROP, SEND, SLIP, RateLimit, RateLimiter, truncated


def query(name: str = "www.dyn.example.test.", rdtype: str = "A") -> bytes:
    return dns.message.make_query(name, rdtype).to_wire()


def answer(wire: bytes, rcode: int = dns.rcode.NOERROR) -> bytes:
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if rcode == dns.rcode.NOERROR:
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.1"))
    return r.to_wire()


def flood(
    limiter: RateLimiter, count: int, seconds: float, host: str = "198.51.100.7", **kw: str
) -> dict[int, int]:
    """`count` identical answers spread evenly over `seconds`; verdict -> count."""
    q = query(**kw)
    a = answer(q)
    verdicts = {SEND: 0, DROP: 0, SLIP: 0}
    for i in range(count):
        verdicts[limiter.check(host, q, a, 1000.0 + seconds * i / count)] += 1
    return verdicts


def test_20000_identical_answers_in_2_s_are_mostly_dropped_or_slipped() -> None:
    limiter = RateLimiter(RateLimit(responses_per_second=20, slip=2))
    verdicts = flood(limiter, 20_000, 2.0)
    # one second's burst plus 20 per second: about 60 sent
    assert verdicts[SEND] <= 20 + 20 * 2 + 1
    limited = verdicts[DROP] + verdicts[SLIP]
    assert limited >= 19_900
    assert abs(verdicts[SLIP] - verdicts[DROP]) <= 1  # slip 2: every other one truncated
    assert (limiter.counters.dropped, limiter.counters.slipped) == (verdicts[DROP], verdicts[SLIP])


def test_a_client_under_the_limit_is_never_limited() -> None:
    limiter = RateLimiter(RateLimit(responses_per_second=20))
    verdicts = flood(limiter, 19 * 60, 60.0)
    assert verdicts == {SEND: 19 * 60, DROP: 0, SLIP: 0}


def test_slip_0_drops_all_and_slip_1_truncates_all() -> None:
    drop_all = flood(RateLimiter(RateLimit(responses_per_second=5, slip=0)), 1000, 1.0)
    assert drop_all[SLIP] == 0 and drop_all[DROP] >= 980
    slip_all = flood(RateLimiter(RateLimit(responses_per_second=5, slip=1)), 1000, 1.0)
    assert slip_all[DROP] == 0 and slip_all[SLIP] >= 980
    third = flood(RateLimiter(RateLimit(responses_per_second=5, slip=3)), 3000, 1.0)
    assert abs(third[DROP] - 2 * third[SLIP]) <= 2


def test_exempt_networks_are_never_limited() -> None:
    limiter = RateLimiter(RateLimit(responses_per_second=5, exempt=("10.0.0.0/8", "2001:db8::/32")))
    assert flood(limiter, 5000, 1.0, host="10.1.2.3") == {SEND: 5000, DROP: 0, SLIP: 0}
    assert flood(limiter, 5000, 1.0, host="2001:db8::5")[SEND] == 5000
    assert flood(limiter, 5000, 1.0, host="11.1.2.3")[SEND] < 100


def test_clients_are_grouped_by_prefix() -> None:
    limiter = RateLimiter(
        RateLimit(responses_per_second=10, ipv4_prefix_length=24, ipv6_prefix_length=56)
    )
    q = query()
    a = answer(q)
    now = 1000.0
    # one /24 shares its buckets: 10 while the prefix as a whole is within the
    # rate (not looked at per answer), then 10 of the answer's own bucket
    sent = sum(limiter.check(f"198.51.100.{i % 250}", q, a, now) == SEND for i in range(500))
    assert sent == 20
    assert limiter.check("198.51.101.1", q, a, now) == SEND  # another /24
    sent6 = sum(limiter.check(f"2001:db8:0:{i % 200:x}::1", q, a, now) == SEND for i in range(500))
    assert sent6 == 20  # 2001:db8:0:0..ff are one /56
    assert limiter.check("2001:db8:0:100::1", q, a, now) == SEND


def test_answers_are_limited_per_name_and_type_nxdomain_and_errors_pooled() -> None:
    limiter = RateLimiter(
        RateLimit(responses_per_second=5, nxdomains_per_second=2, errors_per_second=1, slip=0)
    )
    host, now = "198.51.100.7", 1000.0
    # the prefix's first answer (lowest rate 1) is sent without per-answer accounting
    q = query("warm-up.dyn.example.test.")
    assert limiter.check(host, q, answer(q), now) == SEND
    for name in ("a.dyn.example.test.", "b.dyn.example.test."):
        q = query(name)
        assert [limiter.check(host, q, answer(q), now) for _ in range(6)].count(SEND) == 5
    q = query("a.dyn.example.test.", "AAAA")
    assert limiter.check(host, q, answer(q), now) == SEND  # another type
    q = query("A.DYN.example.TEST.")  # 0x20 case does not make a new answer
    assert limiter.check(host, q, answer(q), now) == DROP
    # NXDOMAIN for random names shares one bucket
    nx = [
        limiter.check(
            host,
            query(f"r{i}.dyn.example.test."),
            answer(query(f"r{i}.dyn.example.test."), dns.rcode.NXDOMAIN),
            now,
        )
        for i in range(10)
    ]
    assert nx.count(SEND) == 2
    errors = [
        limiter.check(host, q, answer(q, rcode), now)
        for rcode in (dns.rcode.REFUSED, dns.rcode.FORMERR, dns.rcode.SERVFAIL)
    ]
    assert errors == [SEND, DROP, DROP]


def test_a_client_that_stops_recovers_within_the_window() -> None:
    limiter = RateLimiter(RateLimit(responses_per_second=10, window=5, slip=0))
    flood(limiter, 100_000, 10.0)  # deep in debt
    q = query()
    a = answer(q)
    assert limiter.check("198.51.100.7", q, a, 1010.5) == DROP
    assert limiter.check("198.51.100.7", q, a, 1010.0 + 5.0 + 1.0) == SEND


def test_the_table_is_bounded() -> None:
    limiter = RateLimiter(RateLimit(responses_per_second=10))
    q = query()
    a = answer(q)
    for i in range(50_000):
        limiter.check(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", q, a, 1000.0 + i / 1000)
    assert limiter._count <= 20_000
    assert sum(len(t) for t in limiter._by_prefix.values()) == limiter._count
    assert len(limiter._tables) <= 20_000


def test_truncated_keeps_the_question_only_with_tc() -> None:
    q = query()
    full = answer(q)
    tc = truncated(full)
    assert tc is not None
    message = dns.message.from_wire(tc)
    assert message.flags & dns.flags.TC and message.flags & dns.flags.QR
    assert message.id == dns.message.from_wire(q).id
    assert [str(r.name) for r in message.question] == ["www.dyn.example.test."]
    assert not message.answer and not message.authority and not message.additional
    assert truncated(b"\x00" * 5) is None
    assert truncated(full[:14]) is None


def test_a_rate_of_0_never_limits_that_class() -> None:
    limiter = RateLimiter(RateLimit(responses_per_second=0, nxdomains_per_second=1))
    assert flood(limiter, 5000, 1.0)[SEND] == 5000
    q = query("nx.dyn.example.test.")
    nx = answer(q, dns.rcode.NXDOMAIN)
    assert [limiter.check("198.51.100.7", q, nx, 1000.0) for _ in range(3)].count(SEND) == 1


def test_clients_below_the_lowest_rate_skip_per_answer_accounting() -> None:
    """The cheap path: a prefix whose answers together stay within the lowest
    rate is never looked at per answer, and never limited."""
    limiter = RateLimiter(RateLimit(responses_per_second=20, nxdomains_per_second=10))
    for i in range(600):  # 9.5 answers a second, each a different name, for a minute
        q = query(f"n{i}.dyn.example.test.")
        assert limiter.check("198.51.100.7", q, answer(q), 1000.0 + i / 9.5) == SEND
    assert limiter._count == 1  # only the prefix's own bucket


def loop_verdict(limiter: RateLimiter, host: str, q: bytes, a: bytes, now: float) -> int:
    """What edge/dns.py's read loop decides for one answer of a pass at `now` (its RRL lines)."""
    agg = limiter.hosts.get(host)
    if agg is None:
        agg = limiter.aggregate(host, now)
    elif agg.last != now and agg is not rrl.UNLIMITED:
        balance = agg.balance + limiter.agg_rate * (now - agg.last)
        agg.balance = balance if balance < limiter.agg_rate else limiter.agg_rate
        agg.last = now
    if agg.balance >= 1.0:
        agg.balance -= 1.0
        return SEND
    return limiter.check(host, q, a, now)


@pytest.mark.parametrize("max_entries", [rrl.MAX_ENTRIES, 12], ids=["roomy", "pruned-mid-pass"])
def test_the_read_loops_shortcut_decides_exactly_as_check(
    max_entries: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Passes of the read loop (one instant each, aggregate, the loop's own
    refill and take from the bucket) against check() alone on another limiter,
    answer by answer: floods and quiet clients, hosts sharing a prefix,
    exempt and IPv6 ones, every answer class, and a table so small that it
    is pruned in the middle of passes."""
    monkeypatch.setattr(rrl, "MAX_ENTRIES", max_entries)
    settings = RateLimit(
        responses_per_second=8,
        nxdomains_per_second=4,
        errors_per_second=2,
        slip=3,
        window=2,
        exempt=("10.0.0.0/8",),
    )
    hosts = [
        "198.51.100.7",
        "198.51.100.8",
        "203.0.113.9",
        "10.1.1.1",
        "2001:db8::1",
        "2001:db8::2",
    ]
    names = [f"n{i}.dyn.example.test." for i in range(6)]
    rng = random.Random(17)
    cases = []
    for name in names:
        q = query(name)
        cases.append((q, answer(q)))
        cases.append((q, answer(q, dns.rcode.NXDOMAIN)))
        cases.append((q, answer(q, dns.rcode.REFUSED)))
    reference, tested = RateLimiter(settings), RateLimiter(settings)
    now = 1000.0
    verdicts = {SEND: 0, DROP: 0, SLIP: 0}
    for _ in range(400):
        now += rng.choice((0.0005, 0.01, 0.2, 1.5))
        # a flood from a few hosts, or a trickle from all
        burst = rng.choice((1, 5, 40, 200))
        active = rng.sample(hosts, k=rng.choice((1, 2, len(hosts))))
        for _ in range(burst):
            host = rng.choice(active)
            q, a = rng.choice(cases)
            expected = reference.check(host, q, a, now)
            assert loop_verdict(tested, host, q, a, now) == expected
            verdicts[expected] += 1
    assert tested.counters == reference.counters
    assert min(verdicts.values()) > 100  # every verdict was exercised


def test_hosts_of_one_prefix_share_the_loops_take() -> None:
    limiter = RateLimiter(RateLimit(responses_per_second=10, slip=0))
    q = query()
    a = answer(q)
    hosts = ("198.51.100.7", "198.51.100.200")
    verdicts = [loop_verdict(limiter, hosts[i % 2], q, a, 1000.0) for i in range(40)]
    # one bucket for the /24: 10 answers from it (both hosts together), then
    # 10 from the answer's own bucket, then nothing
    assert limiter.hosts[hosts[0]] is limiter.hosts[hosts[1]]
    assert verdicts == [SEND] * 20 + [DROP] * 20
    assert limiter.check("198.51.100.9", q, a, 1000.0) == DROP  # the same prefix, after the pass
    assert limiter.check("198.51.101.9", q, a, 1000.0) == SEND  # another prefix
    # later passes: the shared bucket is refilled once per instant, as check() would
    reference = RateLimiter(RateLimit(responses_per_second=10, slip=0))
    for i in range(40):
        reference.check(hosts[i % 2], q, a, 1000.0)
    for host in ("198.51.100.9", "198.51.101.9"):
        reference.check(host, q, a, 1000.0)
    seen = []
    for now in (1001.0, 1003.5, 1020.0, 1020.5):
        tested = [loop_verdict(limiter, hosts[i % 2], q, a, now) for i in range(30)]
        assert tested == [reference.check(hosts[i % 2], q, a, now) for i in range(30)]
        seen += tested
    assert SEND in seen and DROP in seen


def test_exempt_hosts_share_an_inexhaustible_bucket_that_is_never_refilled() -> None:
    limiter = RateLimiter(RateLimit(responses_per_second=2, exempt=("10.0.0.0/8",)))
    q = query()
    a = answer(q)
    for second in range(3):
        assert all(
            loop_verdict(limiter, "10.1.2.3", q, a, 1000.0 + second) == SEND for _ in range(50)
        )
    assert limiter.hosts["10.1.2.3"] is rrl.UNLIMITED
    assert rrl.UNLIMITED.balance == float("inf") and rrl.UNLIMITED.last == 0.0
