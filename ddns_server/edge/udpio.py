"""Batched UDP reads and writes for the query loop (edge/dns.py DnsUdpPort).

On loopback a query's two system calls (recvfrom, sendto) cost several times
what answering it costs in Python; Linux's recvmmsg/sendmmsg move up to
SLOTS datagrams per call. Python's socket module has neither, so on Linux
they are called through ctypes (standard library) on buffers allocated once;
elsewhere, or for a socket that is not a real one (tests wrap the port's
socket), `PlainUdpIO` does the same job with recvfrom/sendto.

Both give the read loop the same two calls: `recv()`, the datagrams waiting
(at most SLOTS, each with its sender as a (host, port) pair), and
`send(replies)`. A datagram is never truncated: every receive slot holds
65,536 octets, more than any UDP payload (65,507 over IPv4, 65,527 over
IPv6), and one the kernel still flags as truncated is dropped, never answered.
A reply that cannot be sent (the client is gone, the buffer is full) is lost
without a word, as with sendto: UDP has nobody to tell.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import socket
import struct
import sys
from array import array
from itertools import accumulate
from typing import Any

Address = tuple[str, int]

# Datagrams per system call; the read loop reads at most a few calls' worth per pass.
SLOTS = 64
RECV_SIZE = 65536  # > any UDP payload: nothing is ever cut
SEND_SIZE = 4096  # a larger reply goes out alone, through sendto
# Fewer replies than this go out through sendto, one system call each (measured:
# below about five, that costs less than the ctypes call and the bulk layout).
FEW = 5
# Senders remembered (their sockaddr <-> (host, port)); forgotten all at once beyond this.
MAX_ADDRESSES = 4096

_NAME = 32  # octets per remembered sockaddr: a sockaddr_in6 (28), aligned
_MSG_DONTWAIT = 0x40
_MSG_TRUNC = 0x20


class PlainUdpIO:
    """recvfrom/sendto, one datagram per system call (any platform, any socket-like object)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def recv(self) -> list[tuple[bytes, Address]]:
        """The datagrams waiting, at most SLOTS; [] when there are none (or on an error)."""
        out: list[tuple[bytes, Address]] = []
        recvfrom = self.sock.recvfrom
        for _ in range(SLOTS):
            try:
                data, addr = recvfrom(65535)
            except OSError:
                break  # nothing waiting, or e.g. ECONNREFUSED from an earlier send
            out.append((data, addr[:2]))  # IPv6 adds flow info and scope id
        return out

    def send(self, replies: list[tuple[bytes, Address]]) -> None:
        _send_each(self.sock, replies)


def _send_each(sock: Any, replies: list[tuple[bytes, Address]]) -> None:
    """One sendto per reply; a reply that cannot be sent is lost without a word."""
    sendto = sock.sendto
    for data, addr in replies:
        try:
            sendto(data, addr)
        except OSError:
            pass  # the client is gone; UDP has nobody to tell


class _Iovec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint))


def _libc_calls() -> tuple[Any, Any] | None:
    """libc's recvmmsg and sendmmsg, or None where there are none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        recvmmsg = libc.recvmmsg
        sendmmsg = libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = (
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    )
    recvmmsg.restype = ctypes.c_int
    sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    sendmmsg.restype = ctypes.c_int
    return recvmmsg, sendmmsg


_CALLS = _libc_calls()


class MmsgUdpIO:
    """recvmmsg/sendmmsg on a real socket (Linux): up to SLOTS datagrams per system call.

    Buffers are allocated once. The receive area is an anonymous mapping, so
    only the pages datagrams land in are ever touched (a page per slot for
    queries). Headers and iovecs are ctypes arrays, read and written in bulk
    through memoryviews (lengths, flags and senders of a whole batch with one
    slice each; a ctypes attribute access per datagram would cost more than
    the system call saves).

    Senders are remembered by their sockaddr: its octets as the cache key for
    the (host, port) pair, and a copy in `_names` that a reply's header
    points at.
    """

    def __init__(self, sock: socket.socket) -> None:
        assert _CALLS is not None
        self._recvmmsg, self._sendmmsg = _CALLS
        self.sock = sock
        self.fd = sock.fileno()
        self.family = sock.family
        self.v6 = sock.family == socket.AF_INET6
        namelen = 28 if self.v6 else 16
        hsize = ctypes.sizeof(_Mmsghdr)
        assert hsize % 8 == 0 and _Msghdr.msg_name.offset == 0
        self._stride = hsize // 4  # uint32 words per header
        self._len_at = _Mmsghdr.msg_len.offset // 4
        self._flags_at = (_Mmsghdr.msg_hdr.offset + _Msghdr.msg_flags.offset) // 4

        # receive side: slot i's data at i * RECV_SIZE, its sender at i * _NAME
        self._rmap = mmap.mmap(-1, SLOTS * RECV_SIZE)
        rbase = ctypes.addressof(ctypes.c_char.from_buffer(self._rmap))
        self._rnames = (ctypes.c_char * (SLOTS * _NAME))()
        self._riov = (_Iovec * SLOTS)()
        self._rhdr = (_Mmsghdr * SLOTS)()
        nbase = ctypes.addressof(self._rnames)
        for i in range(SLOTS):
            self._riov[i].iov_base = rbase + i * RECV_SIZE
            self._riov[i].iov_len = RECV_SIZE
            hdr = self._rhdr[i].msg_hdr
            hdr.msg_name = nbase + i * _NAME
            hdr.msg_namelen = namelen
            hdr.msg_iov = ctypes.addressof(self._riov[i])
            hdr.msg_iovlen = 1
        # The kernel writes back only msg_len, msg_flags (outputs) and msg_namelen,
        # which for a socket of one family is always the length set here: the
        # headers need no resetting between calls.
        self._rhdr_words = memoryview(self._rhdr).cast("B").cast("I")
        self._rname_q = memoryview(self._rnames).cast("B").cast("Q")

        # send side: replies copied one after another into one area
        self._sdata = (ctypes.c_char * (SLOTS * SEND_SIZE))()
        self._sbase = ctypes.addressof(self._sdata)
        self._siov = (_Iovec * SLOTS)()
        self._shdr = (_Mmsghdr * SLOTS)()
        for i in range(SLOTS):
            hdr = self._shdr[i].msg_hdr
            hdr.msg_namelen = namelen
            hdr.msg_iov = ctypes.addressof(self._siov[i])
            hdr.msg_iovlen = 1
        self._sdata_view = memoryview(self._sdata).cast("B")
        self._siov_q = memoryview(self._siov).cast("B").cast("Q")
        self._shdr_q = memoryview(self._shdr).cast("B").cast("Q")
        self._shdr_base = ctypes.addressof(self._shdr)
        self._shdr_size = hsize

        # remembered senders: key -> (host, port) -> address of its sockaddr in _names
        self._names = (ctypes.c_char * (MAX_ADDRESSES * _NAME))()
        self._names_base = ctypes.addressof(self._names)
        self._addr_of: dict[Any, Address] = {}
        self._name_of: dict[Address, int] = {}

    def recv(self) -> list[tuple[bytes, Address]]:
        """The datagrams waiting, at most SLOTS; [] when there are none (or on an error)."""
        n = self._recvmmsg(self.fd, self._rhdr, SLOTS, _MSG_DONTWAIT, None)
        if n <= 0:
            return []  # EAGAIN, or an error this read reports and clears (as recvfrom)
        words = self._rhdr_words
        if n == 1 and not self.v6:
            # one datagram (a quiet server): the same, without the bulk machinery
            if words[self._flags_at] & _MSG_TRUNC:
                return []
            key = self._rname_q[0]
            addr = self._addr_of.get(key) or self._remember(key)
            return [(self._rmap[0 : words[self._len_at]], addr)]
        end = n * self._stride
        lengths = words[self._len_at : end : self._stride].tolist()
        flags = words[self._flags_at : end : self._stride].tolist()
        names = self._rname_q
        if self.v6:  # sockaddr_in6: 28 octets in four words (the last half never written)
            keys: list[Any] = list(
                zip(
                    names[0 : 4 * n : 4],
                    names[1 : 4 * n : 4],
                    names[2 : 4 * n : 4],
                    names[3 : 4 * n : 4],
                    strict=True,
                )
            )
        else:  # sockaddr_in: family, port and address in the first word
            keys = names[0 : 4 * n : 4].tolist()
        get = self._addr_of.get
        remember = self._remember
        rmap = self._rmap
        out = [
            (rmap[at : at + size], get(key) or remember(key))
            for at, size, key in zip(range(0, n * RECV_SIZE, RECV_SIZE), lengths, keys, strict=True)
        ]
        if any(flags):
            # cannot happen (a slot holds any UDP payload): never answer a cut message
            out = [d for d, f in zip(out, flags, strict=True) if not f & _MSG_TRUNC]
        return out

    def _remember(self, key: Any) -> Address:
        if len(self._addr_of) >= MAX_ADDRESSES:
            self._addr_of.clear()
            self._name_of.clear()
        if self.v6:
            raw = struct.pack("=4Q", *key)[:28]
        else:
            raw = key.to_bytes(8, sys.byteorder) + bytes(8)
        addr = address_of(raw, self.family)
        at = len(self._addr_of) * _NAME
        ctypes.memmove(self._names_base + at, raw, len(raw))
        self._addr_of[key] = addr
        self._name_of[addr] = self._names_base + at
        return addr

    def send(self, replies: list[tuple[bytes, Address]]) -> None:
        """Send `replies` in order: SLOTS per system call, laid out in bulk."""
        if len(replies) < FEW:
            # a ctypes call and the bulk layout cost more than a few sendto calls
            _send_each(self.sock, replies)
            return
        for first in range(0, len(replies), SLOTS):
            chunk = replies[first : first + SLOTS]
            datas, addrs = zip(*chunk, strict=True)
            names: list[Any] = list(map(self._name_of.get, addrs))
            sizes = list(map(len, datas))
            if None in names or max(sizes) > SEND_SIZE:
                self._send_one_by_one(chunk)
                continue
            count = len(chunk)
            blob = b"".join(datas)
            self._sdata_view[: len(blob)] = blob
            starts = accumulate(sizes[:-1], initial=self._sbase)
            self._siov_q[0 : 2 * count : 2] = array("Q", starts)
            self._siov_q[1 : 2 * count : 2] = array("Q", sizes)
            self._shdr_q[0 : count * self._shdr_size // 8 : self._shdr_size // 8] = array(
                "Q", names
            )
            self._flush(count)

    def _send_one_by_one(self, replies: list[tuple[bytes, Address]]) -> None:
        """A chunk with a reply too big for its share, or to a sender not remembered."""
        for data, addr in replies:
            name = self._name_of.get(addr)
            if name is None or len(data) > SEND_SIZE:
                try:
                    self.sock.sendto(data, addr)
                except OSError:
                    pass  # the client is gone; UDP has nobody to tell
                continue
            self._sdata_view[: len(data)] = data
            self._siov_q[0] = self._sbase
            self._siov_q[1] = len(data)
            self._shdr_q[0] = name
            self._flush(1)

    def _flush(self, count: int) -> None:
        """sendmmsg the first `count` slots; a reply the kernel refuses is skipped (lost)."""
        first = 0
        for _ in range(2 * count):  # bounded: a round sends some, or skips or retries one
            if first >= count:
                return
            sent = self._sendmmsg(
                self.fd, self._shdr_base + first * self._shdr_size, count - first, 0
            )
            if sent > 0:
                first += sent
            elif ctypes.get_errno() != errno.EINTR:
                first += 1  # refused (the client is gone, the buffer is full): lost, as with sendto


def address_of(raw: bytes, family: int) -> Address:
    """(host, port) of a sockaddr as the kernel wrote it, in socket.recvfrom's text form."""
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET6:
        scope = int.from_bytes(raw[24:28], sys.byteorder)
        if scope:
            # link-local: the text with its zone ("fe80::1%eth0"), as recvfrom gives it
            host, _ = socket.getnameinfo(
                (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, 0, scope),
                socket.NI_NUMERICHOST | socket.NI_NUMERICSERV,
            )
            return host, port
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
    return socket.inet_ntop(socket.AF_INET, raw[4:8]), port


def udp_io(sock: Any) -> PlainUdpIO | MmsgUdpIO:
    """The batched I/O for a real socket on Linux, the plain one otherwise."""
    if _CALLS is not None and type(sock) is socket.socket:
        return MmsgUdpIO(sock)
    return PlainUdpIO(sock)
