"""A mail server that only records what it is sent: where a secret must never arrive.

    with Recorder("imap") as server:      # or Recorder("smtp")
        ...  # settings pointing at localhost:server.port (implicit TLS)
        assert server.connections == 0 and server.lines == []

On 127.0.0.1 and a free port (or ``address``, ``port``: another loopback address,
such as 127.0.0.2, on the port of a real server on 127.0.0.1), implicit TLS with a
leaf of the run's test CA for ``localhost``, 127.0.0.1 and ``address``
(:func:`harness.tls.authority`: trusted by clients given its ``ca_file``), so that
a client that would send a password does get as far as sending it. It speaks just
enough IMAP (greeting, CAPABILITY, then NO to everything: LOGIN, AUTHENTICATE...)
or SMTP (greeting, EHLO with AUTH PLAIN LOGIN XOAUTH2, then 535 to any AUTH) to
be sent credentials, and records every line it receives, as sent.
"""

import socket
import ssl
import threading

from . import tls

HOST = "127.0.0.1"


class Recorder:
    """An implicit-TLS IMAP or SMTP listener recording every connection and line."""

    def __init__(self, protocol="imap", address=HOST, port=0):
        if protocol not in ("imap", "smtp"):
            raise ValueError(protocol)
        self.protocol = protocol
        self.address = address
        self._port = port
        self.connections = 0
        self.lines = []
        self._lock = threading.Lock()
        authority = tls.authority()
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if address == HOST:
            self._context.load_cert_chain(authority.cert_file, authority.key_file)
        else:
            self._context.load_cert_chain(*authority.leaf(address, "localhost", HOST))
        self._socket = None
        self._thread = None
        self.port = None

    def received(self):
        """Everything received, decoded, one string."""
        with self._lock:
            return b"\n".join(self.lines).decode("utf-8", "replace")

    def __enter__(self):
        self._socket = socket.create_server((self.address, self._port))
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._running = False
        self._thread.join(timeout=5)
        self._socket.close()

    def _serve(self):
        while self._running:
            try:
                raw, _address = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._talk, args=(raw,), daemon=True).start()

    def _talk(self, raw):
        raw.settimeout(10)
        try:
            with self._context.wrap_socket(raw, server_side=True) as conn, conn.makefile("rwb") as stream:
                answer = _IMAPSession().answer if self.protocol == "imap" else _smtp
                greeting = (
                    b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2] ready\r\n"
                    if self.protocol == "imap"
                    else b"220 recorder.example.test ESMTP\r\n"
                )
                stream.write(greeting)
                stream.flush()
                while line := stream.readline():
                    with self._lock:
                        self.lines.append(line.rstrip(b"\r\n"))
                    reply, done = answer(line.rstrip(b"\r\n"))
                    stream.write(reply)
                    stream.flush()
                    if done:
                        return
        except (OSError, ssl.SSLError, ValueError):
            return


class _IMAPSession:
    """The IMAP side of one connection: CAPABILITY and LOGOUT answered, the rest refused."""

    def __init__(self):
        self.pending = None  # the tag of an AUTHENTICATE waiting for the client's response

    def answer(self, line):
        if self.pending:  # the client's response to AUTHENTICATE's challenge
            tag, self.pending = self.pending, None
            return tag + b" NO recorded\r\n", False
        tag, _, rest = line.partition(b" ")
        words = rest.split(b" ")
        command = words[0].upper()
        if command == b"CAPABILITY":
            return b"* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2\r\n" + tag + b" OK done\r\n", False
        if command == b"LOGOUT":
            return b"* BYE\r\n" + tag + b" OK bye\r\n", True
        if command == b"AUTHENTICATE" and len(words) < 3:
            self.pending = tag
            return b"+ \r\n", False
        return tag + b" NO recorded\r\n", False


def _smtp(line):
    command = line.split(b" ", 1)[0].upper()
    if command in (b"EHLO", b"HELO"):
        return b"250-recorder.example.test\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n", False
    if command == b"AUTH":
        return b"535 5.7.8 recorded\r\n", False
    if command == b"QUIT":
        return b"221 bye\r\n", True
    return b"250 OK\r\n", False
