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
import sys
from typing import Any

Address = tuple[str, int]

# Datagrams per system call; the read loop reads at most a few calls' worth per pass.
SLOTS = 64
RECV_SIZE = 65536  # > any UDP payload: nothing is ever cut
SEND_SIZE = 4096  # a larger reply goes out alone, through sendto
# Senders remembered (their sockaddr <-> (host, port)); forgotten all at once beyond this.
MAX_ADDRESSES = 4096

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
        sendto = self.sock.sendto
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
    queries). Headers and iovecs are ctypes arrays, read and written through
    memoryviews (a ctypes attribute access per datagram would cost more than
    the system call saves).
    """

    def __init__(self, sock: socket.socket) -> None:
        assert _CALLS is not None
        self._recvmmsg, self._sendmmsg = _CALLS
        self.sock = sock
        self.fd = sock.fileno()
        self.family = sock.family
        self.namelen = 28 if sock.family == socket.AF_INET6 else 16
        name_slot = 32  # room for a sockaddr_in6 (28), aligned
        self._name_slot = name_slot
        hsize = ctypes.sizeof(_Mmsghdr)
        self._stride = hsize // 4  # in uint32 units
        self._len_at = _Mmsghdr.msg_len.offset // 4
        self._flags_at = (_Mmsghdr.msg_hdr.offset + _Msghdr.msg_flags.offset) // 4

        # receive side
        self._rmap = mmap.mmap(-1, SLOTS * RECV_SIZE)
        rbase = ctypes.addressof(ctypes.c_char.from_buffer(self._rmap))
        self._rnames = (ctypes.c_char * (SLOTS * name_slot))()
        self._riov = (_Iovec * SLOTS)()
        self._rhdr = (_Mmsghdr * SLOTS)()
        nbase = ctypes.addressof(self._rnames)
        for i in range(SLOTS):
            self._riov[i].iov_base = rbase + i * RECV_SIZE
            self._riov[i].iov_len = RECV_SIZE
            hdr = self._rhdr[i].msg_hdr
            hdr.msg_name = nbase + i * name_slot
            hdr.msg_namelen = name_slot
            hdr.msg_iov = ctypes.addressof(self._riov[i])
            hdr.msg_iovlen = 1
        # the kernel writes lengths and flags back: restored from this copy before each call
        self._rhdr_clean = bytes(memoryview(self._rhdr).cast("B"))
        self._rdata = memoryview(self._rmap)
        self._rname_view = memoryview(self._rnames).cast("B")
        self._rhdr_words = memoryview(self._rhdr).cast("B").cast("I")

        # send side: header j always names slot j's address and data
        self._sdata = (ctypes.c_char * (SLOTS * SEND_SIZE))()
        self._snames = (ctypes.c_char * (SLOTS * name_slot))()
        self._siov = (_Iovec * SLOTS)()
        self._shdr = (_Mmsghdr * SLOTS)()
        sbase = ctypes.addressof(self._sdata)
        snbase = ctypes.addressof(self._snames)
        for i in range(SLOTS):
            self._siov[i].iov_base = sbase + i * SEND_SIZE
            hdr = self._shdr[i].msg_hdr
            hdr.msg_name = snbase + i * name_slot
            hdr.msg_namelen = self.namelen
            hdr.msg_iov = ctypes.addressof(self._siov[i])
            hdr.msg_iovlen = 1
        self._sdata_view = memoryview(self._sdata).cast("B")
        self._sname_view = memoryview(self._snames).cast("B")
        self._siov_words = memoryview(self._siov).cast("B").cast("Q")
        self._shdr_base = ctypes.addressof(self._shdr)
        self._shdr_size = hsize

        # sockaddr octets -> (host, port), and back
        self._addr_of: dict[bytes, Address] = {}
        self._raw_of: dict[Address, bytes] = {}

    def recv(self) -> list[tuple[bytes, Address]]:
        """The datagrams waiting, at most SLOTS; [] when there are none (or on an error)."""
        ctypes.memmove(self._rhdr, self._rhdr_clean, len(self._rhdr_clean))
        n = self._recvmmsg(self.fd, self._rhdr, SLOTS, _MSG_DONTWAIT, None)
        if n <= 0:
            return []  # EAGAIN, or an error this read reports and clears (as recvfrom)
        out: list[tuple[bytes, Address]] = []
        words = self._rhdr_words
        stride = self._stride
        len_at = self._len_at
        flags_at = self._flags_at
        data = self._rdata
        names = self._rname_view
        name_slot = self._name_slot
        namelen = self.namelen
        addr_of = self._addr_of
        for i in range(n):
            if words[i * stride + flags_at] & _MSG_TRUNC:
                continue  # cannot happen (a slot holds any UDP payload): never answer a cut message
            start = i * RECV_SIZE
            raw = names[i * name_slot : i * name_slot + namelen].tobytes()
            addr = addr_of.get(raw)
            if addr is None:
                addr = self._remember(raw)
            out.append((data[start : start + words[i * stride + len_at]].tobytes(), addr))
        return out

    def _remember(self, raw: bytes) -> Address:
        if len(self._addr_of) >= MAX_ADDRESSES:
            self._addr_of.clear()
            self._raw_of.clear()
        addr = address_of(raw, self.family)
        self._addr_of[raw] = addr
        self._raw_of[addr] = raw
        return addr

    def send(self, replies: list[tuple[bytes, Address]]) -> None:
        count = 0
        sdata = self._sdata_view
        snames = self._sname_view
        iov = self._siov_words
        name_slot = self._name_slot
        raw_of = self._raw_of
        for data, addr in replies:
            raw = raw_of.get(addr)
            size = len(data)
            if raw is None or size > SEND_SIZE:
                # not an address we read from (none on the query path), or too big
                # for a slot: alone, after those before it (replies leave in order)
                if count:
                    self._flush(count)
                    count = 0
                try:
                    self.sock.sendto(data, addr)
                except OSError:
                    pass
                continue
            at = count * SEND_SIZE
            sdata[at : at + size] = data
            iov[count * 2 + 1] = size
            snames[count * name_slot : count * name_slot + len(raw)] = raw
            count += 1
            if count == SLOTS:
                self._flush(count)
                count = 0
        if count:
            self._flush(count)

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
