"""Service wiring: several DNS listeners, and SIGHUP reloads that are all or nothing."""

from __future__ import annotations

from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.update
import pytest
from harness import EXAMPLE_ZONE_NAME, TsigKey, example_zone_text, free_port, wait_for


def test_two_dns_listeners_both_answer(server_factory: Any) -> None:
    server = server_factory({EXAMPLE_ZONE_NAME: example_zone_text()})
    second = free_port("both", host="127.0.0.2")
    server.config["listen"]["dns"].append(f"127.0.0.2:{second}")
    server.write_config()
    server.restart()
    for host, port in (("127.0.0.1", server.dns_port), ("127.0.0.2", second)):
        query = dns.message.make_query(EXAMPLE_ZONE_NAME, "SOA")
        for send in (dns.query.udp, dns.query.tcp):
            response = send(query, host, port=port, timeout=2)
            assert response.rcode() == dns.rcode.NOERROR
            assert response.answer


def _update(server: Any, key: TsigKey) -> int:
    update = dns.update.UpdateMessage(EXAMPLE_ZONE_NAME, keyring=key.keyring(), keyname=key.name)
    update.add("reload-test", 60, "A", "192.0.2.77")
    response = dns.query.udp(update, "127.0.0.1", port=server.dns_port, timeout=2)
    return int(response.rcode())


def test_a_refused_reload_changes_nothing(server_factory: Any) -> None:
    old_key = TsigKey.generate("old-key")
    server = server_factory(
        {EXAMPLE_ZONE_NAME: example_zone_text()},
        {"keys": [old_key.config()]},
        zone_extra={
            EXAMPLE_ZONE_NAME: {"update_policy": [{"grant": "old-key", "match": "zonesub"}]}
        },
    )
    serial = server.soa_serial()
    new_key = TsigKey.generate("new-key")
    broken = server.directory / "zones" / "broken.zone"
    broken.write_text("$ORIGIN broken.test.\n@ 300 IN SOA ns1 h ( 1 2 3 4 5 )\n@ IN NS\n")
    server.config["keys"] = [new_key.config()]
    server.config["zones"][0]["update_policy"] = [{"grant": "new-key", "match": "zonesub"}]
    server.config["zones"].append({"name": "broken.test", "file": str(broken)})
    server.write_config()
    server.reload()
    wait_for(lambda: "reload refused" in server.log_text(), timeout=10)
    # The new key was not taken: an update signed with it gets BADKEY.
    with pytest.raises(dns.tsig.PeerBadKey):
        _update(server, new_key)
    assert server.soa_serial() == serial
    # The old configuration still holds in full.
    assert _update(server, old_key) == dns.rcode.NOERROR
    assert server.soa_serial() == serial + 1


def test_a_burst_of_updates_is_group_committed_and_durable(server_factory: Any) -> None:
    import socket

    key = TsigKey.generate("burst-key")
    server = server_factory(
        {EXAMPLE_ZONE_NAME: example_zone_text()},
        {"keys": [key.config()]},
        zone_extra={
            EXAMPLE_ZONE_NAME: {"update_policy": [{"grant": "burst-key", "match": "zonesub"}]}
        },
    )
    serial = server.soa_serial()
    count = 40
    sent: dict[int, dns.update.UpdateMessage] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for i in range(count):
            update = dns.update.UpdateMessage(
                EXAMPLE_ZONE_NAME, keyring=key.keyring(), keyname=key.name
            )
            update.replace(f"burst{i}", 60, "A", f"192.0.2.{i + 1}")
            sent[update.id] = update
            sock.sendto(update.to_wire(), ("127.0.0.1", server.dns_port))
        answered = 0
        while answered < count:
            data, _ = sock.recvfrom(65535)
            update = sent.pop(dns.message.from_wire(data, keyring=False).id)
            response = dns.message.from_wire(data, keyring=update.keyring, request_mac=update.mac)
            assert response.rcode() == dns.rcode.NOERROR
            answered += 1
    assert server.soa_serial() == serial + count
    server.kill()
    server.start()
    assert server.soa_serial() == serial + count
    answer = server.query(f"burst{count - 1}.{EXAMPLE_ZONE_NAME}", "A")
    assert answer.answer and answer.answer[0][0].address == f"192.0.2.{count}"


def test_an_update_with_an_unknown_edns_version_gets_badvers(server_factory: Any) -> None:
    key = TsigKey.generate("edns-key")
    server = server_factory(
        {EXAMPLE_ZONE_NAME: example_zone_text()},
        {"keys": [key.config()]},
        zone_extra={
            EXAMPLE_ZONE_NAME: {"update_policy": [{"grant": "edns-key", "match": "zonesub"}]}
        },
    )
    serial = server.soa_serial()
    update = dns.update.UpdateMessage(EXAMPLE_ZONE_NAME, keyring=key.keyring(), keyname=key.name)
    update.add("edns1", 60, "A", "192.0.2.66")
    update.use_edns(1)
    response = dns.query.udp(update, "127.0.0.1", port=server.dns_port, timeout=2)
    assert response.rcode() == dns.rcode.BADVERS
    assert server.soa_serial() == serial
    assert not server.query(f"edns1.{EXAMPLE_ZONE_NAME}", "A").answer
