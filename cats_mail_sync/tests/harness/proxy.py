"""Network faults between an IMAP client and a real server, and a scripted fake IMAP server.

FaultProxy: a TCP proxy on 127.0.0.1 in one thread (selectors, stdlib only)
==========================================================================

::

    with FaultProxy(("127.0.0.1", dovecot.ssl_port)) as proxy:
        client = open_imap(Server("localhost", proxy.port, "ssl"), login, password, ca_file=..., ...)

It forwards bytes and never terminates TLS: the client still checks Dovecot's
certificate for the name it connects to ("localhost"). Each accepted connection
gets its own connection to ``upstream``. Faults, switchable at any time, for
open and new connections alike:

- ``blackhole()``: keep reading both sides, forward client data, drop all server
  data (and the server's FIN): the client waits until its own timeout.
- ``stall()``: forward nothing more from the server, without dropping it
  (``pass_through()`` delivers it); the server is throttled by TCP once the
  proxy holds ``BUFFER_LIMIT`` bytes.
- ``trickle(nbytes, interval)``: forward server data ``nbytes`` per ``interval`` seconds.
- ``refuse(reset=False)``: close new connections right after accept (RST if ``reset``).
- ``cut_all(reset=False)``: close both sides of every open connection now.
- ``pass_through()``: back to normal: clears the above (``refuse(False)`` ends
  refusing only), every connection's own mode and every armed one-shot fault.

What went through: ``record()``, ``mark()`` (below), ``stats()`` (byte counts,
``largest_client_write``, ``dropped_server_bytes``, ``refused``...),
``connections``, ``open_connections()`` and ``wait_closed(timeout)``.

One-shot faults: ``shot = proxy.arm(trigger, action, on="new")``
(``proxy.cut_at(trigger)`` for action "cut"); the first connection that meets
``trigger`` gets ``action``, the shot is then used up. ``on`` says which
connections it watches: "new" (the default: those accepted after arming, so
that a connection still closing never takes it), "any", or one connection's
index (``proxy.mark().connection``, to hit an open connection).
``shot.wait(timeout)`` says whether it fired, ``shot.connection`` on which
connection. Actions: "cut" (close both sides, FIN), "reset" (close both
sides, RST); "blackhole", "stall", "trickle" (``nbytes=``, ``interval=``) and
"pass" set that connection's own mode, which wins over the proxy-wide one
until ``pass_through()``. A cut on a byte count sends nothing past byte ``n``;
other cuts first try once, without waiting, to send what the proxy already
holds from before the trigger.

Triggers (``At``), counted per connection from its first byte:

- ``At.accept()``: when the connection is accepted (before any byte).
- ``At.server_bytes(n)`` / ``At.client_bytes(n)``: once exactly ``n`` bytes of
  that side have been forwarded (TLS records included): ``At.server_bytes(1)``
  cuts during the TLS handshake, after the first byte of the ServerHello.
- ``At.client_record(k)`` / ``At.server_record(k)``: on that side's ``k``-th
  *application record* (1-based, see below). For "cut"/"reset" the record is
  not forwarded: the server never gets the command of client record ``k``;
  other actions forward it and apply from there on.
- ``At.client_line(b"X")`` / ``At.server_line(b"X")``: plaintext connections
  only (a server that speaks first, or a client whose first byte is not a TLS
  handshake record, e.g. the clear part of STARTTLS): on the first line
  containing X; for a cut, the line is not forwarded (earlier lines are).

A trigger armed (``on="any"`` or an index) after its count was already passed
on an open connection fires at that side's next record / forwarded byte.

How records are counted (the way to cut "during the header FETCH")
------------------------------------------------------------------

TLS hides the commands, so the proxy cuts the stream into TLS records
(5-byte header: content type, version, length). A connection is TLS when the
client speaks first with a handshake record (0x16 0x03); a side whose bytes do
not parse as records is then forwarded as it comes. Records are forwarded whole.
The version comes from the ServerHello (supported_versions extension). The
handshake ends with the client's Finished: in TLS 1.3 its first
application_data (type 23) record, in TLS 1.2 its first handshake record after
its ChangeCipherSpec. *Application records* are the type-23 records after that:

- client side: one per IMAP command as ``imaplib`` writes it (one ``sendall``,
  one record up to 16 KB; a command with a literal is one more per literal);
- server side: the answers, with TLS 1.3 session tickets first (OpenSSL sends
  two before the greeting) and, in TLS 1.3, encrypted alerts.

With imapclient against Dovecot, open_imap then MailboxReader's status,
open, uids_after, headers, messages and a logout give the client records
1 CAPABILITY (imaplib asks at connect), 2 LOGIN, 3 STATUS, 4 EXAMINE,
5 CAPABILITY (imapclient asks again after login, once), 6-7 UID SEARCH
(its "n:*" goes as a LITERAL+ literal: two records in one turn), 8 UID FETCH
of the header fields, 9 UID FETCH BODY.PEEK[], 10 LOGOUT; the Odoo sync may
send other commands (LIST for the Sent folder...). To find ``k`` for a step,
run the same steps once cleanly through the proxy and either

- call ``proxy.mark()`` just before the step: it returns a :class:`Mark` whose
  ``client_record`` is the ``k`` of the client's next command (and
  ``server_bytes``/``server_record`` for a cut inside the answer), exact
  because imaplib waits for each answer; or
- read ``proxy.record()`` (the connection's application records as
  ``(direction, nbytes)``, direction "client" or "server", in the order the
  proxy got them) and group it with :func:`exchanges` (each exchange: the
  client records of one turn and the server records answering them);
  ``client_record_after(records, n)`` is the ``k`` of the client write that
  follows the ``n``-th exchange. In TLS 1.3 with AES-GCM or ChaCha20,
  ``nbytes`` is the command's length + 22, so a header FETCH (long: it names
  the header fields) and a body FETCH (``BODY.PEEK[]``) can also be told apart
  by size.

Then ``proxy.cut_at(At.client_record(k))`` before the real run. The same steps
give the same counts (same commands, same records), whatever the timing.

FakeImapServer: an IMAP server over TLS that answers what it is told
=====================================================================

Refusals a server sends in clear inside TLS (``NO [UNAVAILABLE]``, ``* BYE``)
cannot be injected by a byte proxy, so::

    with FakeImapServer(script={"LOGIN": "NO [UNAVAILABLE] Maintenance"}) as fake:
        open_imap(Server("localhost", fake.port, "ssl"), "u", "p", ca_file=fake.ca_file, allow_private=True)

It serves the run's test CA certificate (``harness.tls.authority()``), greets,
and answers CAPABILITY, LOGIN, LOGOUT, NOOP, ID, ENABLE, NAMESPACE, LIST/LSUB,
STATUS, SELECT/EXAMINE, CLOSE/UNSELECT, SEARCH and FETCH (UID or not: UIDs are
1..n) from ``messages`` (raw mails in INBOX, or ``{folder: [raw, ...]}``; the
folders are INBOX and a ``\\Sent`` "Sent" at least). ``sections``, a callable
``(folder, uid, label, content)``, gives the bytes of each ``BODY[...]`` item of a
FETCH answer (``label`` such as ``b"BODY[HEADER.FIELDS (FROM TO)]"``, ``content``
the section's bytes): the answers other servers give (quoted field names, NIL, no
section at all: ``b""``; None leaves the mail out of the answer); by default the
label and the content as a literal.
``script`` maps a command
name ("LOGIN", "EXAMINE", "FETCH" for UID FETCH too...) or "GREETING" to one
step or a tuple of steps, for every connection (change it at any time):

- ``"normal"``: the usual answer;
- ``"OK ..."``, ``"NO ..."``, ``"BAD ..."``: the tagged completion, nothing else;
- ``"* ..."``: that untagged line as is; after ``"* BYE ..."`` the server hangs up;
- ``"close"``: hang up without a word; ``"hang"``: never answer (reads on).

E.g. ``{"GREETING": "* BYE [UNAVAILABLE] Too many connections"}``,
``{"LOGIN": ("normal", "* BYE Shutting down")}`` (BYE right after login),
``{"EXAMINE": "* BYE Shutting down"}``, ``{"FETCH": "* BYE Gone"}``.
``commands`` lists the command names received, in order.

Every wait in this module has a timeout; ``stop()`` returns within about a
second and leaves no thread behind.
"""

import contextlib
import dataclasses
import errno
import functools
import re
import selectors
import socket
import ssl
import struct
import threading
import time
from typing import NamedTuple

from . import tls

HOST = "127.0.0.1"
# Bytes the proxy holds for one direction before it stops reading that side.
BUFFER_LIMIT = 1 << 20
# Longest wait of the proxy's loop: how soon it notices stop() without the wake-up.
TICK = 0.05
STOP_TIMEOUT = 1.0
MAX_RECORD = 16384 + 2048
APPLICATION_DATA = 23
CHANGE_CIPHER_SPEC = 20
HANDSHAKE = 22
SIDES = ("client", "server")


def _other(side):
    return "server" if side == "client" else "client"


# ----------------------------------------------------------------------
# Triggers, shots, records
# ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class At:
    """When a one-shot fault fires; build it with the class methods."""

    direction: str  # the side whose data is counted: "client" or "server"
    unit: str  # "accept", "bytes", "record" or "line"
    value: object = None

    @classmethod
    def accept(cls):
        return cls("client", "accept")

    @classmethod
    def client_bytes(cls, n):
        return cls("client", "bytes", int(n))

    @classmethod
    def server_bytes(cls, n):
        return cls("server", "bytes", int(n))

    @classmethod
    def client_record(cls, k):
        return cls("client", "record", int(k))

    @classmethod
    def server_record(cls, k):
        return cls("server", "record", int(k))

    @classmethod
    def client_line(cls, text):
        return cls("client", "line", text.encode() if isinstance(text, str) else bytes(text))

    @classmethod
    def server_line(cls, text):
        return cls("server", "line", text.encode() if isinstance(text, str) else bytes(text))


ACTIONS = ("cut", "reset", "blackhole", "stall", "trickle", "pass")


class Shot:
    """An armed one-shot fault. ``fired`` is set once it acted; ``connection`` is where."""

    def __init__(self, trigger, action, params, on, first_new):
        self.trigger = trigger
        self.action = action
        self.params = params
        self.on = on
        self.first_new = first_new  # the index the next accepted connection gets
        self.fired = threading.Event()
        self.connection = None

    def wait(self, timeout=5.0):
        """True once the shot has fired (waits at most ``timeout`` seconds)."""
        return self.fired.wait(timeout)

    def __repr__(self):
        return f"Shot({self.trigger!r}, {self.action!r}, fired={self.fired.is_set()})"


class Record(NamedTuple):
    """One TLS record as the proxy got it: who sent it and its size on the wire (header included)."""

    direction: str
    nbytes: int


@dataclasses.dataclass(frozen=True)
class Mark:
    """Where a connection stood when :meth:`FaultProxy.mark` was called.

    ``client_record``/``server_record``: the number the next application
    record of that side will get; ``*_bytes``: bytes of that side forwarded so far.
    """

    label: str
    connection: int
    client_record: int
    server_record: int
    client_bytes: int
    server_bytes: int


class Exchange(NamedTuple):
    """A client turn (sizes of its records) and the server records that answered it."""

    client: tuple
    server: tuple


def exchanges(records):
    """Group application ``records`` (``proxy.record()``) into :class:`Exchange` s.

    Server records before the first client record (TLS 1.3 session tickets,
    the greeting) belong to no exchange.
    """
    found = []
    client, server = [], []
    for direction, nbytes in records:
        if direction == "client":
            if server and client:
                found.append(Exchange(tuple(client), tuple(server)))
                client, server = [], []
            elif server:  # the server's opening
                server = []
            client.append(nbytes)
        else:
            server.append(nbytes)
    if client:
        found.append(Exchange(tuple(client), tuple(server)))
    return found


def client_record_after(records, n):
    """The ``k`` of the first client record after the first ``n`` exchanges of ``records``."""
    return sum(len(exchange.client) for exchange in exchanges(records)[:n]) + 1


def _server_hello_is_tls13(record):
    """True if this handshake record starts with a ServerHello choosing TLS 1.3."""
    body = record[9:]  # record header (5), handshake type (1) and length (3)
    with contextlib.suppress(IndexError):
        pos = 2 + 32  # legacy_version, random
        pos += 1 + body[pos]  # session id
        pos += 2 + 1  # cipher suite, compression method
        end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= min(end, len(body)):
            kind = int.from_bytes(body[pos : pos + 2], "big")
            size = int.from_bytes(body[pos + 2 : pos + 4], "big")
            if kind == 43 and size == 2:  # supported_versions
                return body[pos + 4 : pos + 6] == b"\x03\x04"
            pos += 4 + size
    return False


# ----------------------------------------------------------------------
# The proxy
# ----------------------------------------------------------------------


class _Flow:
    """The bytes one side sends, on their way to the other side."""

    def __init__(self):
        self.inbox = bytearray()  # received, not yet cut into records
        self.outbox = bytearray()  # to forward
        self.plain = False  # forwarded as it comes, not as TLS records
        self.line = b""  # the current, unfinished line (plaintext only)
        self.eof = False
        self.shut = False  # its EOF was passed on
        self.received = 0
        self.forwarded = 0
        self.dropped = 0
        self.records = 0  # application records


class _Connection:
    def __init__(self, index, client, server):
        self.index = index
        self.socks = {"client": client, "server": server}
        self.flows = {"client": _Flow(), "server": _Flow()}  # by sender
        self.connected = False
        self.dead = set()  # sides whose socket failed while black-holed
        self.mode = None  # this connection's own mode, over the proxy's
        self.tls = None
        self.tls13 = None
        self.client_ccs = False
        self.handshake_done = False
        self.records = []  # (direction, nbytes, content type, application?)
        self.next_send = 0.0
        self.closed = False


class FaultProxy:
    """A fault-injecting TCP proxy to ``upstream`` on ``host`` (see the module's docstring)."""

    def __init__(self, upstream, *, host=HOST):
        self.upstream = (upstream[0], int(upstream[1]))
        self.host = host
        self.port = None
        self._lock = threading.Lock()
        self._mode = ("pass",)
        self._refusing = None
        self._shots = []
        self._connections = []
        self._stats = {
            "accepted": 0,
            "refused": 0,
            "client_bytes": 0,
            "server_bytes": 0,
            "dropped_server_bytes": 0,
            "largest_client_write": 0,
            "shots_fired": 0,
        }
        self._registered = {}
        self._stopping = threading.Event()
        self._thread = None

    # -- life cycle ------------------------------------------------------

    def start(self):
        family, _type, _proto, _name, sockaddr = socket.getaddrinfo(*self.upstream, type=socket.SOCK_STREAM)[
            0
        ]
        self._upstream = (family, sockaddr)
        self._listener = socket.create_server((self.host, 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._waker, self._wake_writer = socket.socketpair()
        self._waker.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "listener")
        self._selector.register(self._waker, selectors.EVENT_READ, "waker")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"FaultProxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Close every connection and the listener; returns within about a second."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._wake()
        thread.join(STOP_TIMEOUT)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        return (self.host, self.port)

    # -- faults ----------------------------------------------------------

    def pass_through(self):
        """Forward everything again; disarm every shot and clear every connection's own mode."""
        with self._lock:
            self._mode = ("pass",)
            self._refusing = None
            self._shots.clear()
            for conn in self._connections:
                conn.mode = None
        self._wake()

    def blackhole(self):
        self._set_mode(("blackhole",))

    def stall(self):
        self._set_mode(("stall",))

    def trickle(self, nbytes=1, interval=0.01):
        if nbytes < 1 or interval < 0:
            raise ValueError("trickle needs nbytes >= 1 and interval >= 0")
        self._set_mode(("trickle", int(nbytes), float(interval)))

    def refuse(self, on=True, *, reset=False):
        """Close new connections right after accept (with RST if ``reset``) while ``on``."""
        with self._lock:
            self._refusing = ("reset" if reset else "close") if on else None
        self._wake()

    def cut_all(self, *, reset=False):
        """Close both sides of every open connection now."""
        with self._lock:
            for conn in self._connections:
                if not conn.closed:
                    self._cut(conn, reset=reset)
        self._wake()

    def arm(self, trigger, action="cut", *, on="new", **params):
        """Arm a one-shot fault: the first connection meeting ``trigger`` gets ``action``.

        ``on``: which connections it watches: "new" (accepted from now on),
        "any" (open ones too) or a connection's index (``Mark.connection``).
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; one of {ACTIONS}")
        if not isinstance(trigger, At):
            raise TypeError("trigger must be an At")
        if on not in ("new", "any") and not isinstance(on, int):
            raise ValueError('on must be "new", "any" or a connection index')
        with self._lock:
            shot = Shot(trigger, action, params, on, len(self._connections))
            self._shots.append(shot)
        self._wake()
        return shot

    def cut_at(self, trigger, *, reset=False, on="new"):
        return self.arm(trigger, "reset" if reset else "cut", on=on)

    # -- what went through ----------------------------------------------

    def record(self, connection=-1, *, handshake=False):
        """The TLS records of a connection (default: the latest) as ``Record(direction, nbytes)``.

        Application records only, unless ``handshake``: then every record.
        """
        with self._lock:
            seen = list(self._connections[connection].records) if self._connections else []
        return [Record(side, nbytes) for side, nbytes, _type, app in seen if handshake or app]

    def mark(self, label="", connection=-1):
        """Where a connection (default: the latest) stands now: see :class:`Mark`."""
        with self._lock:
            conn = self._connections[connection]
            client, server = conn.flows["client"], conn.flows["server"]
            return Mark(
                label,
                conn.index,
                client.records + 1,
                server.records + 1,
                client.forwarded,
                server.forwarded,
            )

    @property
    def connections(self):
        """How many connections were accepted (refused ones included)."""
        with self._lock:
            return self._stats["accepted"]

    def open_connections(self):
        with self._lock:
            return sum(not conn.closed for conn in self._connections)

    def wait_closed(self, timeout=5.0):
        """Wait (at most ``timeout`` seconds) until no connection is open; True if none is."""
        deadline = time.monotonic() + timeout
        while self.open_connections():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stats(self):
        with self._lock:
            return dict(self._stats)

    # -- the loop --------------------------------------------------------

    def _set_mode(self, mode):
        with self._lock:
            self._mode = mode
        self._wake()

    def _wake(self):
        with contextlib.suppress(OSError, AttributeError):
            self._wake_writer.send(b"x")

    def _run(self):
        try:
            while not self._stopping.is_set():
                with self._lock:
                    timeout = self._register()
                events = self._selector.select(timeout)
                with self._lock:
                    for key, mask in events:
                        self._handle(key, mask)
                    for conn in self._connections:
                        if not conn.closed:
                            self._pump(conn)
        finally:
            with self._lock:
                for conn in self._connections:
                    if not conn.closed:
                        self._close(conn)
                for sock in (self._listener, self._waker, self._wake_writer):
                    sock.close()
                self._selector.close()

    def _register(self):
        """Tell the selector what each socket waits for; return the select timeout."""
        wanted = {}
        timeout = TICK
        now = time.monotonic()
        for conn in self._connections:
            if conn.closed:
                continue
            mode = self._mode_of(conn)
            for side in SIDES:
                if side in conn.dead:
                    continue
                sock = conn.socks[side]
                if side == "server" and not conn.connected:
                    wanted[sock] = (selectors.EVENT_WRITE, (conn, side))
                    continue
                events = 0
                flow = conn.flows[side]
                if not flow.eof and len(flow.inbox) + len(flow.outbox) < BUFFER_LIMIT:
                    events |= selectors.EVENT_READ
                incoming = conn.flows[_other(side)].outbox
                if incoming:
                    if side == "client" and mode[0] == "trickle" and conn.next_send > now:
                        timeout = min(timeout, conn.next_send - now)
                    elif not (side == "client" and mode[0] == "stall"):
                        events |= selectors.EVENT_WRITE
                if events:
                    wanted[sock] = (events, (conn, side))
        for sock in list(self._registered):
            if sock not in wanted:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self._selector.unregister(sock)
                del self._registered[sock]
        for sock, (events, data) in wanted.items():
            if sock not in self._registered:
                self._selector.register(sock, events, data)
            elif self._registered[sock] != events:
                self._selector.modify(sock, events, data)
            self._registered[sock] = events
        return max(timeout, 0.0)

    def _handle(self, key, mask):
        if key.data == "listener":
            self._accept_all()
        elif key.data == "waker":
            with contextlib.suppress(OSError):
                while self._waker.recv(4096):
                    pass
        else:
            conn, side = key.data
            if conn.closed:
                return
            if side == "server" and not conn.connected:
                error = conn.socks["server"].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    self._close(conn)
                else:
                    conn.connected = True
                return
            if mask & selectors.EVENT_READ:
                self._read(conn, side)

    def _accept_all(self):
        while True:
            try:
                client, _address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            client.setblocking(False)
            self._stats["accepted"] += 1
            if self._refusing:
                self._stats["refused"] += 1
                _close_socket(client, reset=self._refusing == "reset")
                continue
            family, sockaddr = self._upstream
            server = socket.socket(family, socket.SOCK_STREAM)
            server.setblocking(False)
            error = server.connect_ex(sockaddr)
            if error not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                _close_socket(client)
                _close_socket(server)
                continue
            conn = _Connection(len(self._connections), client, server)
            conn.connected = error == 0
            self._connections.append(conn)
            for shot in self._matching("accept", "client", conn):
                self._fire(shot, conn)
                if conn.closed:
                    break

    def _read(self, conn, side):
        flow = conn.flows[side]
        try:
            data = conn.socks[side].recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._failed(conn, side)
            return
        if not data:
            flow.eof = True
            flow.outbox += flow.inbox  # an unfinished record goes as it is
            flow.inbox.clear()
            return
        flow.received += len(data)
        if conn.tls is None:
            conn.tls = side == "client" and data[:2] in (b"\x16\x03", b"\x16")
            if not conn.tls:
                for each in conn.flows.values():
                    each.plain = True
        if flow.plain:
            self._take_plain(conn, side, data)
        else:
            flow.inbox += data
            self._take_records(conn, side)

    def _take_records(self, conn, side):
        flow = conn.flows[side]
        inbox = flow.inbox
        while len(inbox) >= 5:
            kind, major, length = inbox[0], inbox[1], int.from_bytes(inbox[3:5], "big")
            if not 20 <= kind <= 24 or major != 3 or length > MAX_RECORD:
                flow.plain = True  # not TLS after all: forward as it comes
                data = bytes(inbox)
                inbox.clear()
                self._take_plain(conn, side, data)
                return
            if len(inbox) < 5 + length:
                return
            record = bytes(inbox[: 5 + length])
            del inbox[: 5 + length]
            application = self._classify(conn, side, kind, record)
            conn.records.append((side, len(record), kind, application))
            forward = True
            if application:
                flow.records += 1
                for shot in self._matching("record", side, conn):
                    if flow.records >= shot.trigger.value:
                        forward = self._fire(shot, conn) and forward
                        if conn.closed:
                            return
            if forward:
                flow.outbox += record

    def _classify(self, conn, side, kind, record):
        """True if ``record`` is an application record (see the module's docstring)."""
        if side == "server" and kind == HANDSHAKE and conn.tls13 is None and record[5:6] == b"\x02":
            conn.tls13 = _server_hello_is_tls13(record)
        if conn.handshake_done:
            return kind == APPLICATION_DATA
        if side == "client":
            if kind == CHANGE_CIPHER_SPEC:
                conn.client_ccs = True
            elif kind == APPLICATION_DATA and conn.tls13:
                conn.handshake_done = True  # the client's Finished
            elif kind == HANDSHAKE and conn.client_ccs and conn.tls13 is False:
                conn.handshake_done = True
        return False

    def _take_plain(self, conn, side, data):
        flow = conn.flows[side]
        seen = flow.line + data
        for shot in self._matching("line", side, conn):
            found = seen.find(shot.trigger.value)
            if found < 0:
                continue
            start = seen.rfind(b"\n", 0, found) + 1 - len(flow.line)  # where its line begins in data
            cutting = shot.action in ("cut", "reset")
            if cutting:
                flow.outbox += data[: max(start, 0)]
                self._pump(conn)
            self._fire(shot, conn)
            if conn.closed:
                return
        flow.outbox += data
        flow.line = seen[seen.rfind(b"\n") + 1 :][-65536:]

    def _pump(self, conn):
        """Forward what can be forwarded now, in both directions."""
        for side in SIDES:
            if conn.closed:
                return
            self._forward(conn, side)
        client = conn.flows["client"]
        if not conn.closed and client.eof and client.shut:
            self._close(conn)  # the client is gone: nothing more to deliver

    def _forward(self, conn, side):
        """Send what ``side`` sent on to the other side, as the mode and the byte shots allow."""
        flow = conn.flows[side]
        target = _other(side)
        if target == "server" and not conn.connected:
            return
        mode = self._mode_of(conn) if side == "server" else ("pass",)
        if target in conn.dead:
            flow.outbox.clear()
            return
        if mode[0] == "blackhole":
            flow.dropped += len(flow.outbox)
            self._stats["dropped_server_bytes"] += len(flow.outbox)
            flow.outbox.clear()
            return
        if mode[0] == "stall":
            return
        sock = conn.socks[target]
        while flow.outbox:
            limit = len(flow.outbox)
            if mode[0] == "trickle":
                if time.monotonic() < conn.next_send:
                    break
                limit = min(limit, mode[1])
            shots = self._matching("bytes", side, conn)
            for shot in shots:
                limit = min(limit, max(shot.trigger.value - flow.forwarded, 0))
            if limit == 0:  # a byte shot armed after its count was passed
                self._fire_bytes(conn, side, shots)
                return
            try:
                sent = sock.send(flow.outbox[:limit])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._failed(conn, target)
                return
            del flow.outbox[:sent]
            flow.forwarded += sent
            self._stats[f"{side}_bytes"] += sent
            if target == "client":
                self._stats["largest_client_write"] = max(self._stats["largest_client_write"], sent)
            if shots and self._fire_bytes(conn, side, shots):
                return
            if mode[0] == "trickle":
                conn.next_send = time.monotonic() + mode[2]
                break
        if flow.eof and not flow.outbox and not flow.shut:
            flow.shut = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

    def _fire_bytes(self, conn, side, shots):
        """Fire the byte shots whose count is reached; True if any fired."""
        fired = False
        for shot in shots:
            if conn.flows[side].forwarded >= shot.trigger.value and shot in self._shots:
                self._fire(shot, conn)
                fired = True
                if conn.closed:
                    break
        return fired

    def _matching(self, unit, direction, conn):
        """The armed shots that watch ``conn`` and count this unit of this side."""
        return [
            shot
            for shot in self._shots
            if shot.trigger.unit == unit
            and shot.trigger.direction == direction
            and (
                shot.on == "any"
                or (shot.on == "new" and conn.index >= shot.first_new)
                or shot.on == conn.index
            )
        ]

    def _fire(self, shot, conn):
        """Act; False if the data that triggered it must not be forwarded (a cut)."""
        self._shots.remove(shot)
        shot.connection = conn.index
        self._stats["shots_fired"] += 1
        forward = True
        if shot.action in ("cut", "reset"):
            # A byte count is exact: what came after byte n is lost, as in flight on a real network.
            hold = shot.trigger.direction if shot.trigger.unit == "bytes" else None
            self._cut(conn, reset=shot.action == "reset", hold=hold)
            forward = False
        elif shot.action == "trickle":
            conn.mode = (
                "trickle",
                int(shot.params.get("nbytes", 1)),
                float(shot.params.get("interval", 0.01)),
            )
        else:
            conn.mode = (shot.action,)
        shot.fired.set()
        return forward

    def _mode_of(self, conn):
        return conn.mode or self._mode

    def _failed(self, conn, side):
        """A socket error on ``side``: a black hole keeps the client waiting, otherwise close."""
        if side == "server" and self._mode_of(conn)[0] == "blackhole":
            conn.dead.add("server")
            self._forget(conn.socks["server"])
            _close_socket(conn.socks["server"])
            conn.flows["server"].eof = True
        else:
            self._close(conn)

    def _cut(self, conn, *, reset=False, hold=None):
        """Close both sides now, after a last non-blocking try to send what was let through.

        Nothing more of side ``hold`` is sent.
        """
        for side in SIDES:
            flow, target = conn.flows[side], _other(side)
            if side == hold:
                continue
            if flow.outbox and target not in conn.dead and (target == "client" or conn.connected):
                with contextlib.suppress(OSError):
                    conn.socks[target].send(flow.outbox)
        self._close(conn, reset=reset)

    def _close(self, conn, *, reset=False):
        conn.closed = True
        for side in SIDES:
            self._forget(conn.socks[side])
            _close_socket(conn.socks[side], reset=reset)

    def _forget(self, sock):
        if sock in self._registered:
            del self._registered[sock]
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(sock)


def _close_socket(sock, *, reset=False):
    with contextlib.suppress(OSError):
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


# ----------------------------------------------------------------------
# A fake IMAP server over TLS
# ----------------------------------------------------------------------

CAPABILITIES = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE SPECIAL-USE AUTH=PLAIN"
INTERNALDATE = '"01-Jan-2025 10:00:00 +0000"'
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r?\n?$")
_FETCH_ITEM = re.compile(
    r"(BODY(?:\.PEEK)?)\[([^\]]*)\](?:<\d+\.\d+>)?|RFC822\.SIZE|RFC822\.HEADER|RFC822\.TEXT|RFC822"
    r"|UID|FLAGS|INTERNALDATE",
    re.IGNORECASE,
)
READ_TICK = 0.1
LINE_LIMIT = 1 << 20


class _Closed(Exception):
    """The session ends: the client left, the script hangs up or the server stops."""


class FakeImapServer:
    """An IMAP server over TLS on 127.0.0.1 that answers per ``script`` (see the module's docstring).

    ``users``: ``{login: password}`` checked at LOGIN (any login is accepted when None).
    """

    def __init__(
        self, script=None, messages=(), *, users=None, authority=None, uidvalidity=1, host=HOST, sections=None
    ):
        self.script = dict(script or {})
        self.sections = sections or (lambda folder, uid, label, content: label + b" " + _literal(content))
        folders = dict(messages) if isinstance(messages, dict) else {"INBOX": list(messages)}
        folders.setdefault("INBOX", [])
        folders.setdefault("Sent", [])
        self.folders = {name: [bytes(raw) for raw in mails] for name, mails in folders.items()}
        self.users = users
        self.uidvalidity = uidvalidity
        self.authority = authority or tls.authority()
        self.host = "localhost"
        self.bind = host
        self.port = None
        self.commands = []
        self.connections = 0
        self._closing = threading.Event()
        self._threads = []
        self._lock = threading.Lock()
        self._acceptor = None

    @property
    def ca_file(self):
        return str(self.authority.ca_file)

    def start(self):
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(str(self.authority.cert_file), str(self.authority.key_file))
        self._listener = socket.create_server((self.bind, 0))
        self._listener.settimeout(READ_TICK)
        self.port = self._listener.getsockname()[1]
        self._closing.clear()
        self._acceptor = threading.Thread(target=self._accept, name=f"FakeImap-{self.port}", daemon=True)
        self._acceptor.start()
        return self

    def stop(self):
        """Hang up on everybody; returns within about a second."""
        if self._acceptor is None:
            return
        self._closing.set()
        deadline = time.monotonic() + STOP_TIMEOUT
        self._acceptor.join(STOP_TIMEOUT)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.01))
        self._listener.close()
        self._acceptor = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept(self):
        while not self._closing.is_set():
            try:
                conn, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self.connections += 1
                self._threads = [each for each in self._threads if each.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn):
        conn.settimeout(READ_TICK)
        try:
            sock = self._context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError):
            conn.close()
            return
        with sock:
            with contextlib.suppress(_Closed, OSError, ValueError):
                self._handshake(sock)
                _Session(self, sock).run()

    def _handshake(self, sock):
        deadline = time.monotonic() + 5
        while True:
            if self._closing.is_set() or time.monotonic() > deadline:
                raise _Closed
            try:
                sock.do_handshake()
                return
            except (TimeoutError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue


class _Session:
    """One client of :class:`FakeImapServer`."""

    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.buffer = b""
        self.selected = None

    # -- I/O --

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data if data.endswith(b"\r\n") else data + b"\r\n")

    def _fill(self):
        while True:
            if self.server._closing.is_set():
                raise _Closed
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            if not data:
                raise _Closed
            self.buffer += data
            return

    def readline(self):
        while b"\n" not in self.buffer:
            if len(self.buffer) > LINE_LIMIT:
                raise _Closed
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def read_exactly(self, size):
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_command(self):
        """A command line with its literals inlined as quoted text (latin-1)."""
        line = self.readline()
        parts = []
        while True:
            literal = _LITERAL.search(line)
            if not literal:
                parts.append(line.rstrip(b"\r\n"))
                break
            parts.append(line[: literal.start()])
            if not literal.group(2):
                self.send("+ Ready for literal data")
            data = self.read_exactly(int(literal.group(1)))
            parts.append(b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
            line = self.readline()
        return b"".join(parts).decode("latin-1")

    # -- the script --

    def steps(self, key):
        steps = self.server.script.get(key, "normal")
        return (steps,) if isinstance(steps, str) else tuple(steps)

    def perform(self, steps, tag, normal):
        for step in steps:
            if step == "normal":
                normal()
            elif step == "close":
                raise _Closed
            elif step == "hang":
                while True:
                    self._fill()
                    self.buffer = b""
            elif step.startswith("*"):
                self.send(step)
                if step[1:].split(None, 1)[:1] == ["BYE"]:
                    raise _Closed
            else:
                self.send(f"{tag} {step}")

    def run(self):
        self.perform(
            self.steps("GREETING"), "*", lambda: self.send(f"* OK [CAPABILITY {CAPABILITIES}] ready.")
        )
        while True:
            line = self.read_command()
            tag, _, rest = line.partition(" ")
            name, _, args = rest.partition(" ")
            name = name.upper()
            uid = name == "UID"
            if uid:
                name, _, args = args.partition(" ")
                name = name.upper()
            with self.server._lock:
                self.server.commands.append(f"UID {name}" if uid else name)
            self.perform(self.steps(name), tag, functools.partial(self.answer, tag, name, _tokens(args)))

    # -- normal answers --

    def answer(self, tag, name, args):
        handler = getattr(self, f"do_{name.lower()}", None)
        if handler is None:
            self.send(f"{tag} BAD Unknown command {name}")
            return
        handler(tag, args)

    def do_capability(self, tag, args):
        self.send(f"* CAPABILITY {CAPABILITIES}")
        self.send(f"{tag} OK Capability completed.")

    def do_login(self, tag, args):
        users = self.server.users
        if len(args) < 2:
            self.send(f"{tag} BAD Missing arguments.")
        elif users is not None and users.get(_unquote(args[0])) != _unquote(args[1]):
            self.send(f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.")
        else:
            self.send(f"{tag} OK [CAPABILITY {CAPABILITIES}] Logged in")

    def do_logout(self, tag, args):
        self.send("* BYE Logging out")
        self.send(f"{tag} OK Logout completed.")
        raise _Closed

    def _ok(self, tag, args):
        self.send(f"{tag} OK Completed.")

    do_noop = do_id = do_enable = do_check = _ok

    def do_namespace(self, tag, args):
        self.send('* NAMESPACE (("" "/")) NIL NIL')
        self.send(f"{tag} OK Namespace completed.")

    def do_list(self, tag, args, command="LIST"):
        for name in self.server.folders:
            flags = "\\HasNoChildren \\Sent" if name == "Sent" else "\\HasNoChildren"
            self.send(f'* {command} ({flags}) "/" {_quote(name)}')
        self.send(f"{tag} OK {command} completed.")

    def do_lsub(self, tag, args):
        self.do_list(tag, args, "LSUB")

    def folder(self, tag, args):
        name = _unquote(args[0]) if args else ""
        for known in self.server.folders:
            if known == name or (known == "INBOX" and name.upper() == "INBOX"):
                return known
        self.send(f"{tag} NO [NONEXISTENT] Mailbox doesn't exist: {name}")
        return None

    def do_status(self, tag, args):
        folder = self.folder(tag, args)
        if folder is None:
            return
        mails = self.server.folders[folder]
        values = {
            "MESSAGES": len(mails),
            "RECENT": 0,
            "UIDNEXT": len(mails) + 1,
            "UIDVALIDITY": self.server.uidvalidity,
            "UNSEEN": len(mails),
        }
        asked = [item.upper() for item in (args[1].strip("()").split() if len(args) > 1 else [])]
        items = " ".join(f"{item} {values[item]}" for item in asked if item in values)
        self.send(f"* STATUS {_quote(folder)} ({items})")
        self.send(f"{tag} OK Status completed.")

    def do_select(self, tag, args, readonly=False):
        folder = self.folder(tag, args)
        if folder is None:
            return
        mails = self.server.folders[folder]
        self.selected = folder
        self.send("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)")
        self.send(
            "* OK [PERMANENTFLAGS ()] Read-only mailbox." if readonly else "* OK [PERMANENTFLAGS (\\*)] Ok"
        )
        self.send(f"* {len(mails)} EXISTS")
        self.send("* 0 RECENT")
        self.send(f"* OK [UIDVALIDITY {self.server.uidvalidity}] UIDs valid")
        self.send(f"* OK [UIDNEXT {len(mails) + 1}] Predicted next UID")
        access = "READ-ONLY" if readonly else "READ-WRITE"
        self.send(f"{tag} OK [{access}] {'Examine' if readonly else 'Select'} completed.")

    def do_examine(self, tag, args):
        self.do_select(tag, args, readonly=True)

    def do_close(self, tag, args):
        self.selected = None
        self.send(f"{tag} OK Completed.")

    do_unselect = do_close

    def mails(self, tag):
        if self.selected is None:
            self.send(f"{tag} BAD No mailbox selected.")
            return None
        return self.server.folders[self.selected]

    def do_search(self, tag, args):
        mails = self.mails(tag)
        if mails is None:
            return
        found = set(range(1, len(mails) + 1))
        words = [word.upper() for word in args]
        for position, word in enumerate(words[:-1]):
            if word == "UID":
                found &= _sequence(args[position + 1], len(mails))
        self.send("* SEARCH" + "".join(f" {number}" for number in sorted(found)))
        self.send(f"{tag} OK Search completed.")

    def do_fetch(self, tag, args):
        mails = self.mails(tag)
        if mails is None:
            return
        if len(args) < 2:
            self.send(f"{tag} BAD Missing arguments.")
            return
        items = " ".join(args[1:])
        for number in sorted(_sequence(args[0], len(mails))):
            raw = mails[number - 1]
            parts = [b"UID %d" % number]
            left_out = False
            for match in _FETCH_ITEM.finditer(items):
                word = match.group(0).upper()
                if match.group(1):
                    section = match.group(2).upper()
                    label = b"BODY[%s]" % section.encode()
                    part = self.server.sections(self.selected, number, label, _section(raw, section))
                    left_out = part is None
                    if part:
                        parts.append(part)
                elif word == "RFC822.SIZE":
                    parts.append(b"RFC822.SIZE %d" % len(raw))
                elif word == "RFC822.HEADER":
                    parts.append(b"RFC822.HEADER " + _literal(_section(raw, "HEADER")))
                elif word == "RFC822.TEXT":
                    parts.append(b"RFC822.TEXT " + _literal(_section(raw, "TEXT")))
                elif word == "RFC822":
                    parts.append(b"RFC822 " + _literal(raw))
                elif word == "FLAGS":
                    parts.append(b"FLAGS ()")
                elif word == "INTERNALDATE":
                    parts.append(b"INTERNALDATE " + INTERNALDATE.encode())
            if not left_out:
                self.sock.sendall(b"* %d FETCH (" % number + b" ".join(parts) + b")\r\n")
        self.send(f"{tag} OK Fetch completed.")


def _tokens(text):
    """IMAP arguments: atoms (brackets kept whole), quoted strings (kept quoted), parenthesized lists."""
    tokens, i = [], 0
    while i < len(text):
        if text[i] == " ":
            i += 1
            continue
        start, depth = i, 0
        if text[i] == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        else:
            while i < len(text) and (depth or text[i] != " "):
                if text[i] in "([":
                    depth += 1
                elif text[i] in ")]":
                    depth -= 1
                i += 1
        tokens.append(text[start:i])
    return tokens


def _unquote(token):
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sequence(text, count):
    """The numbers 1..count named by an IMAP sequence set ("1:*", "2,4:6")."""
    found = set()
    if not count:
        return found
    for part in text.split(","):
        low, _, high = part.partition(":")
        try:
            first = count if low == "*" else int(low)
            last = first if not high else (count if high == "*" else int(high))
        except ValueError:
            continue
        first, last = sorted((first, last))
        found.update(range(max(first, 1), min(last, count) + 1))
    return found


def _literal(data):
    return b"{%d}\r\n" % len(data) + data


def _split(raw):
    for separator in (b"\r\n\r\n", b"\n\n"):
        position = raw.find(separator)
        if position >= 0:
            return raw[: position + len(separator)], raw[position + len(separator) :]
    return raw, b""


def _section(raw, section):
    header, body = _split(raw)
    if section == "":
        return raw
    if section == "HEADER":
        return header
    if section == "TEXT":
        return body
    match = re.match(r"HEADER\.FIELDS(\.NOT)?\s*\((.*)\)", section)
    if not match:
        return b""
    names = {name.encode() for name in match.group(2).split()}
    kept, keep = [], False
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        if not line.strip():
            continue
        name = line.split(b":", 1)[0].strip().upper()
        keep = (name in names) != bool(match.group(1))
        if keep:
            kept.append(line)
    return b"".join(kept) + b"\r\n"
