"""A tiny authoritative DNS server on 127.0.0.1 for tests (dnslib, UDP and TCP).

    records = {
        "example.test": [("MX", "10 mx.example.test")],
        "autoconfig.example.test": [("A", "127.0.0.1")],
        "_imaps._tcp.example.test": [("SRV", "0 1 993 mail.example.test")],
    }
    with DnsServer(records, silent={"slow.example.test"}) as dns_server:
        resolver = dns_server.resolver()

Values are written as in a zone file. A name that is not listed gets NXDOMAIN,
a listed name without records of the asked type an empty answer, and a name in
``silent`` no answer at all (the client times out).
"""

import threading

import dns.resolver
from dnslib import QTYPE, RCODE, RR, DNSError
from dnslib.server import BaseResolver, DNSLogger, DNSServer

QUIET = DNSLogger("-request,-reply,-truncated,-error")


class _Zone(BaseResolver):
    def __init__(self, records, silent):
        self.records = {
            name.lower().rstrip("."): [
                RR.fromZone(f"{name}. 60 IN {rtype} {value}")[0] for rtype, value in rows
            ]
            for name, rows in records.items()
        }
        self.silent = {name.lower().rstrip(".") for name in silent}

    def resolve(self, request, handler):
        name = str(request.q.qname).lower().rstrip(".")
        if name in self.silent:
            # dnslib's handler sends nothing back when resolving raises DNSError.
            raise DNSError(f"{name} is silent")
        reply = request.reply()
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
        for record in self.records.get(name, []):
            if request.q.qtype in (record.rtype, QTYPE.ANY):
                reply.add_answer(record)
        return reply


class DnsServer:
    """Serves ``records`` ({name: [(type, value), ...]}) on ``127.0.0.1:port``."""

    def __init__(self, records, *, silent=()):
        self.zone = _Zone(records, silent)
        # One port for both: a free TCP port first (some kernels refuse to bind one that an
        # earlier connection holds in TIME_WAIT), then UDP on it, which is rarely taken.
        for attempt in range(10):
            self.tcp = DNSServer(self.zone, address="127.0.0.1", port=0, tcp=True, logger=QUIET)
            self.port = self.tcp.server.server_address[1]
            try:
                self.udp = DNSServer(self.zone, address="127.0.0.1", port=self.port, logger=QUIET)
                break
            except OSError:
                self.tcp.server.server_close()
                if attempt == 9:
                    raise

    def __enter__(self):
        for server in (self.udp, self.tcp):
            # A short poll interval makes stop() quick (the default waits up to 0.5 s).
            threading.Thread(target=server.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        for server in (self.udp, self.tcp):
            server.stop()
            server.server.server_close()

    def resolver(self, lifetime=2.0):
        """A dnspython resolver that asks this server only."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.lifetime = lifetime
        return resolver
