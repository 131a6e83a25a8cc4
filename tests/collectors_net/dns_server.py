"""A tiny authoritative DNS responder (dnspython) on loopback UDP and TCP, in threads.

Names under gx.example:
  portal.gx.example      A 192.0.2.10, 192.0.2.11; AAAA 2001:db8::10
  www.gx.example         CNAME portal.gx.example (the A query gets the chain)
  mail.gx.example        MX 10 mx1.gx.example.
  big.gx.example         60 A records: over UDP the answer is sent truncated (TC), over TCP whole
  broken.gx.example      SERVFAIL
  slow.gx.example        never answered
  anything else          NXDOMAIN
The addresses are documentation ranges (RFC 5737/3849): answers are data, never contacted.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

RECORDS: dict[tuple[str, str], list[str]] = {
    ("portal.gx.example.", "A"): ["192.0.2.10", "192.0.2.11"],
    ("portal.gx.example.", "AAAA"): ["2001:db8::10"],
    ("www.gx.example.", "CNAME"): ["portal.gx.example."],
    ("mail.gx.example.", "MX"): ["10 mx1.gx.example."],
    ("big.gx.example.", "A"): [f"192.0.2.{i}" for i in range(1, 61)],
}


class DnsResponder:
    def __init__(self) -> None:
        self.udp, self.tcp = self._bind_pair()
        self.port = int(self.udp.getsockname()[1])
        self.tcp.listen(16)
        self.address = f"127.0.0.1:{self.port}"
        self.queries: list[tuple[str, str, str]] = []  # (transport, name, type)
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=self._serve_tcp, daemon=True)]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _bind_pair() -> tuple[socket.socket, socket.socket]:
        """A UDP and a TCP socket on one port: the kernel picks a free UDP port, and that number
        may be taken for TCP on a busy machine, so try again with another one."""
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                continue
            return udp, tcp
        raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1 after 50 tries")

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name, rdtype = question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)
        self.queries.append((transport, name, rdtype))
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name == "slow.gx.example.":
            return None
        if name == "broken.gx.example.":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        owner = name
        cname = RECORDS.get((owner, "CNAME"))
        if cname and rdtype != "CNAME":
            response.answer.append(dns.rrset.from_text_list(owner, 300, "IN", "CNAME", cname))
            owner = cname[0]
        values = RECORDS.get((owner, rdtype))
        if values:
            response.answer.append(dns.rrset.from_text_list(owner, 300, "IN", rdtype, values))
        elif not any(key[0] == owner for key in RECORDS):
            response.set_rcode(dns.rcode.NXDOMAIN)
        if transport == "udp" and len(values or []) > 20:
            response.answer = []
            response.flags |= dns.flags.TC
        return response.to_wire()

    def _serve_udp(self) -> None:
        while True:
            try:
                wire, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            reply = self.answer(wire, "udp")
            if reply is not None:
                self.udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with contextlib.suppress(OSError), conn:
                conn.settimeout(5)
                size = struct.unpack("!H", conn.recv(2))[0]
                wire = b""
                while len(wire) < size:
                    wire += conn.recv(size - len(wire))
                reply = self.answer(wire, "tcp")
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)

    def close(self) -> None:
        self.udp.close()
        with contextlib.suppress(OSError):
            self.tcp.shutdown(socket.SHUT_RDWR)
        self.tcp.close()


@contextlib.contextmanager
def dns_responder() -> Iterator[DnsResponder]:
    server = DnsResponder()
    try:
        yield server
    finally:
        server.close()
