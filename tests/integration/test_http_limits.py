"""HTTP limits against abusive clients (issue 14 item 7), on raw sockets.

An absurd chunk size gets 400 at once (it hung); a 1 MB URL 414, a 64 KB
header 431 (both just closed the connection); a request that trickles in
is cut off by `http.header_timeout` (408); one address holds at most
`http.max_connections_per_source` connections.
"""

from __future__ import annotations

import socket
import time

import pytest
from conftest import ServerFactory
from harness import EXAMPLE_ZONE_NAME, ServerProcess, example_zone_text, http_get

HEADER_TIMEOUT = 1.0


@pytest.fixture
def server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(
        {EXAMPLE_ZONE_NAME: example_zone_text()},
        {"http": {"header_timeout": HEADER_TIMEOUT, "max_connections_per_source": 4}},
    )


def exchange(server: ServerProcess, data: bytes, source: str = "127.0.0.1") -> bytes:
    """Send `data` (as far as the server reads it), then read until it closes."""
    with socket.create_connection(
        ("127.0.0.1", server.http_port), timeout=10, source_address=(source, 0)
    ) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed before reading everything
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def status(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    return int(reply.split(b" ", 2)[1])


def test_an_absurd_chunk_size_is_400_at_once(server: ServerProcess) -> None:
    request = (
        b"POST /nic/update HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"FFFFFFFFFFFFFFFF\r\nabc"
    )
    start = time.monotonic()
    assert status(exchange(server, request)) == 400
    assert time.monotonic() - start < HEADER_TIMEOUT  # answered, not timed out


def test_a_huge_url_is_414(server: ServerProcess) -> None:
    request = b"GET /nic/update?hostname=" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status(exchange(server, request)) == 414


def test_a_huge_header_is_431(server: ServerProcess) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 65536 + b"\r\n\r\n"
    assert status(exchange(server, request)) == 431


def test_too_many_headers_are_431(server: ServerProcess) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    assert status(exchange(server, request)) == 431


def test_a_body_beyond_the_cap_is_413(server: ServerProcess) -> None:
    request = b"POST /nic/update HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\nx"
    assert status(exchange(server, request)) == 413
    chunked = (
        b"POST /nic/update HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"8000\r\n"
        + b"x" * 0x8000
        + b"\r\n"
        + b"8001\r\n"
    )
    assert status(exchange(server, chunked)) == 400


def test_a_trickling_request_is_cut_off(server: ServerProcess) -> None:
    """Slowloris: one byte at a time resets the idle timeout, not the request deadline."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.settimeout(0.2)  # the wait between bytes is the wait for an answer
        reply = b""
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"s" * 100:
            try:
                sock.send(bytes([byte]))
                reply = sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            break
        sock.settimeout(5)
        reply += read_all(sock)
    elapsed = time.monotonic() - start
    assert status(reply) == 408
    assert HEADER_TIMEOUT * 0.9 <= elapsed < HEADER_TIMEOUT + 3


def test_a_request_in_time_is_served(server: ServerProcess) -> None:
    reply = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status(reply) == 200 and reply.endswith(b"ok\n")
    assert http_get(f"{server.http_url}/healthz") == (200, "ok\n")


def test_connections_per_source_are_capped(server: ServerProcess) -> None:
    held = [socket.create_connection(("127.0.0.1", server.http_port), timeout=5) for _ in range(4)]
    try:
        # the fifth from the same address is closed at once, unanswered
        assert exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == b""
        # another address is not affected
        reply = exchange(
            server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "127.0.0.2"
        )
        assert status(reply) == 200
    finally:
        for sock in held:
            sock.close()
    # once they are gone, the address is served again (bounded wait for the server to notice)
    deadline = time.monotonic() + 5
    while True:
        reply = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        if reply or time.monotonic() > deadline:
            break
    assert status(reply) == 200
