"""Response rate limiting on the running server (issue 14 item 17).

20,000 identical UDP queries from one source are mostly dropped or answered
truncated; an exempt network is answered in full; TCP is never limited; a
reload (SIGHUP) turns RRL on and off.
"""

from __future__ import annotations

import socket
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
from conftest import ServerFactory
from harness import EXAMPLE_ZONE_NAME, ServerProcess, example_zone_text, http_get, wait_for

RATE = 20
QUERIES = 20_000
BURST = 64


def rrl_config(**extra: object) -> dict[str, object]:
    return {
        "rate_limit": {
            "responses_per_second": RATE,
            "window": 5,
            "slip": 2,
            "exempt": ["127.0.0.2/32"],
            **extra,
        }
    }


def flood(
    server: ServerProcess, source: str, count: int = QUERIES, share: float = 0.5
) -> tuple[int, int]:
    """`count` identical queries from `source`; (full answers, truncated answers) received.

    Sent in bursts of BURST; after each, the replies are read until `share`
    of all queries sent has been answered (0.5: what slip 2 gives), or 0.2 s
    pass: that paces the client to the server, so the kernel does not drop
    queries the server never saw. What the server drops never arrives.
    """
    wire = dns.message.make_query(f"www.{EXAMPLE_ZONE_NAME}", "A").to_wire()
    full = truncated = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", server.dns_port))

        def drain(want: float, wait: float) -> None:
            nonlocal full, truncated
            deadline = time.monotonic() + wait
            while full + truncated < want:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                sock.settimeout(left)
                try:
                    reply = sock.recv(4096)
                except TimeoutError:
                    return
                if reply[2] & 0x02:
                    truncated += 1
                else:
                    full += 1

        sent = 0
        while sent < count:
            burst = min(BURST, count - sent)
            for _ in range(burst):
                sock.send(wire)
            sent += burst
            drain(share * sent - BURST, 0.2)
        drain(count, 0.5)  # the last replies
    return full, truncated


def metric(server: ServerProcess, name: str) -> float:
    _, body = http_get(f"{server.http_url}/metrics")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def test_a_flood_from_one_source_is_mostly_dropped_or_slipped(
    server_factory: ServerFactory,
) -> None:
    server = server_factory({EXAMPLE_ZONE_NAME: example_zone_text()}, rrl_config())
    start = time.monotonic()
    full, truncated = flood(server, "127.0.0.1")
    seconds = time.monotonic() - start
    dropped = metric(server, "ddns_rrl_dropped_total")
    slipped = metric(server, "ddns_rrl_slipped_total")
    # one second's burst, then RATE a second
    assert full <= RATE * (seconds + 2), (full, seconds)
    assert truncated == slipped
    assert dropped + slipped >= QUERIES * 0.9  # the server saw them, and limited them
    assert abs(dropped - slipped) <= max(50, 0.05 * dropped)  # slip 2: every other one
    # a real client retries over TCP, which is never limited
    for _ in range(50):
        response = server.query(f"www.{EXAMPLE_ZONE_NAME}", "A", tcp=True)
        assert response.rcode() == dns.rcode.NOERROR and response.answer


def test_exempt_networks_are_answered_in_full(server_factory: ServerFactory) -> None:
    server = server_factory({EXAMPLE_ZONE_NAME: example_zone_text()}, rrl_config())
    full, truncated = flood(server, "127.0.0.2", 3000, share=1.0)
    assert truncated == 0
    assert full >= 3000 * 0.95  # loopback may lose a few under load; none are limited
    assert metric(server, "ddns_rrl_dropped_total") == 0


def test_off_when_absent_and_a_reload_applies_changes(server_factory: ServerFactory) -> None:
    server = server_factory({EXAMPLE_ZONE_NAME: example_zone_text()})
    full, _ = flood(server, "127.0.0.1", 2000, share=1.0)
    assert full >= 2000 * 0.95
    server.config.update(rrl_config(slip=0))
    server.write_config()
    server.reload()
    wait_for(lambda: "response rate limiting: 20/s" in server.log_text(), timeout=10)
    full, truncated = flood(server, "127.0.0.1", 2000, share=0.0)
    assert truncated == 0 and full <= RATE * 4
    del server.config["rate_limit"]
    server.write_config()
    server.reload()
    wait_for(lambda: server.log_text().count("configuration reloaded") >= 2, timeout=10)
    full, _ = flood(server, "127.0.0.1", 2000, share=1.0)
    assert full >= 2000 * 0.95


def test_truncated_answers_make_dig_retry_over_tcp(server_factory: ServerFactory) -> None:
    server = server_factory(
        {EXAMPLE_ZONE_NAME: example_zone_text()}, rrl_config(responses_per_second=1, slip=1)
    )
    query = dns.message.make_query(f"www.{EXAMPLE_ZONE_NAME}", "A")
    dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)  # uses the burst
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    assert reply.flags & dns.flags.TC and not reply.answer
    response, used_tcp = dns.query.udp_with_fallback(
        query, "127.0.0.1", port=server.dns_port, timeout=2
    )
    assert used_tcp and response.answer
