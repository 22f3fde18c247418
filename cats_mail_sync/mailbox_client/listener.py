"""Say within seconds that new mail reached a recruiter's Inbox or Sent folder (IMAP IDLE).

Why: the cycle looks at each mailbox every 10 minutes, so a candidate's reply waits 5 minutes on
average before it is on the record. The mail server knows the moment a mail arrives, and tells a
client that holds an IDLE connection (RFC 2177) within about a second. This module only *signals*:
``on_new_mail(key)`` asks the caller to sync that mailbox now, through the one engine that logs
mail; the cycle stays the safety net for whatever the listener misses while it is down, slow or
cut off.

How:

- One thread (the loop) holds every connection in a :mod:`selectors` loop: thousands of mailboxes
  cost one thread, not one each. It reads the server's words without blocking, renews IDLE
  (DONE, then IDLE again) before ``reidle_interval`` and waits for the server's answer to that
  at most ``answer_timeout`` seconds: a server gone without a word is found then.
- Logins take round trips and may hang on a slow server, so they run in a small pool of worker
  threads, through :func:`connection.open_imap` like every other connection (same TLS checks,
  private-address guard, error texts). A worker examines the folder and hands the socket to the
  loop, which sends IDLE.
- Each new connection asks the watch's ``credential()`` for a password or a fresh OAuth token.
- Sent: where the server offers NOTIFY (RFC 5465), the Inbox's connection also hears of new mail
  in Sent (``NOTIFY SET STATUS (SELECTED ...) (MAILBOXES Sent ...)``: an untagged STATUS with a
  higher UIDNEXT); elsewhere (Gmail, Microsoft: no NOTIFY) a second connection IDLEs on Sent.
- A burst is one call: the first new mail of a mailbox signals at once, more mail within
  ``coalesce`` seconds gives one more call at the end of that window. A mail that was only
  removed (EXPUNGE, a STATUS with fewer messages) signals nothing.
- A connection that drops after it listened ``steady_after`` seconds is opened again after a
  random delay of up to ``reconnect_spread`` seconds, and logins to one server are paced at
  ``logins_per_second``: 10,000 connections cut at once do not log in again in the same second.
  A refused login or any other failure waits ``retry_delay(failures)``: by default the cycle's
  back-off (9 minutes while failures < 6, then hourly), so that a server under Dovecot's auth
  penalty never sees the listener insist. A server without IDLE is not held: "unsupported", left
  to the cycle (looked at again every ``unsupported_recheck`` seconds).

NOTIFY or a second IDLE, measured (bench/listener.py --compare 60 and --compare 200; Debian 12's
Dovecot 2.3.19 with its default process model, one imap and one imap-login process per
connection; loopback, TLS 1.3, 2 cores):

=================================  =================  =================
per mailbox                        NOTIFY             two IDLE
=================================  =================  =================
connections (server and listener)  1                  2
Dovecot processes                  2                  4
Dovecot memory (PSS)               2.4 MiB            3.9 MiB
Dovecot inotify instances          1                  2
Sent: APPEND to signal, 60         0.53 s (p95 0.56)  0.51 s (p95 0.52)
Sent: APPEND to signal, 200        0.57 s (p95 20 s)  21 s (p95 23 s)
listener memory (hold runs)        15-24 KiB          twice that
=================================  =================  =================

Dovecot gives each IDLE connection an inotify instance, and Linux allows 128 per user by default:
past them it looks for changes every 30 s only, which the second connection reaches twice as
soon (200 mailboxes above). NOTIFY is as quick, halves what a mailbox costs on both sides and
keeps it further from a provider's connection limit (Gmail: 15 per account, the sync's own
connections included): it is used wherever the server offers it (``use_notify=True``).

Nothing here writes a password, a token or a login name in a log line or a status text.
"""

import contextlib
import dataclasses
import heapq
import itertools
import logging
import queue
import random
import re
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

from imapclient.exceptions import IMAPClientAbortError, IMAPClientError
from imapclient.imap_utf7 import encode as encode_utf7
from imapclient.response_parser import parse_response

from . import connection, errors

_logger = logging.getLogger(__name__)

LISTENING = "listening"
CONNECTING = "connecting"
WAITING = "waiting"
UNSUPPORTED = "unsupported"

INBOX = "inbox"
SENT = "sent"

# The cycle's back-off (models/cats_mail_sync_sync.py, _retry_later): 9 minutes while fewer than
# RETRIES_AT_EVERY_RUN runs failed in a row, then hourly.
CYCLE_RETRIES = 6
CYCLE_RETRY = 9 * 60
CYCLE_RETRY_LATER = 3600

# Longest sleep of the loop: commands wake it at once, timers are kept to the second.
MAX_WAIT = 5.0
# What one server may send the listener before an answer is complete: nothing it asks for is
# larger than a STATUS line; a server that sends more is not the server it seems to be.
MAX_RESPONSE = 1 << 20
LOGOUT_TAG = b"L0"
_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}$")


def cycle_retry_delay(failures):
    """Seconds to wait after ``failures`` failures in a row: the cycle's own back-off."""
    return CYCLE_RETRY if failures < CYCLE_RETRIES else CYCLE_RETRY_LATER


@dataclasses.dataclass(frozen=True)
class Watch:
    """A mailbox to listen to.

    ``key`` is the caller's name for it (the Odoo user id), given back to ``on_new_mail``.
    ``server`` (a :class:`connection.Server`), ``login``, ``ca_file`` and ``allow_private`` are
    as :func:`connection.open_imap` takes them. ``credential()`` is called in a worker thread for
    each new connection and returns ``{"password": ...}`` or ``{"access_token": ...}``: a held
    XOAUTH2 connection outlives its token, a new one needs a fresh token. It may raise a
    :class:`errors.MailboxError` (a sign-in that expired): waited on like a refused login.
    ``inbox`` and ``sent`` are the folders' names (``sent=None``: the Inbox only).

    Watches are compared without ``credential`` (a caller that re-reads the same settings every
    few seconds makes a new callable each time, and must not reconnect every mailbox for it):
    change ``revision`` (e.g. the date the password was saved) when the credential changes.
    """

    key: Hashable
    server: connection.Server
    login: str
    credential: Callable[[], dict] = dataclasses.field(compare=False, repr=False)
    inbox: str = "INBOX"
    sent: str | None = "Sent"
    ca_file: str | None = None
    allow_private: bool = False
    revision: object = None


@dataclasses.dataclass(frozen=True)
class MailboxStatus:
    """What the listener does for one mailbox, to show on the recruiter's profile.

    ``state``: "listening" (``since``: a :func:`time.time`), "connecting" (``since``),
    "waiting" to retry (``until``, and ``error``: the :class:`errors.MailboxError` sentence) or
    "unsupported" (the server has no IDLE: the cycle alone looks at the mailbox).
    ``connections``: how many the listener holds now; ``notify``: whether Sent is heard of on
    the Inbox's connection (None until known).
    """

    state: str
    since: float | None = None
    until: float | None = None
    error: str | None = None
    connections: int = 0
    notify: bool | None = None


@dataclasses.dataclass
class _Opened:
    """What a worker hands the loop: a logged-in connection with its folder examined."""

    sock: object = None
    leftover: bytes = b""
    unsupported: bool = False
    notify: bool = False
    folder: dict = dataclasses.field(default_factory=dict)  # EXAMINE: EXISTS, UIDNEXT, UIDVALIDITY
    exists_after: int | None = None
    statuses: list = dataclasses.field(default_factory=list)  # (name, {item: value}) from NOTIFY


class _Mailbox:
    """The loop's state of one watched mailbox (touched by the loop thread only)."""

    __slots__ = (
        "again",
        "connections",
        "failures",
        "notify",
        "quiet_until",
        "removed",
        "seen",
        "unsupported",
        "watch",
    )

    def __init__(self, watch):
        self.watch = watch
        self.connections = {}  # INBOX / SENT -> _Connection
        self.failures = 0
        self.notify = None  # True: the Inbox's connection also tells of Sent (NOTIFY)
        self.unsupported = False
        self.seen = {}  # INBOX / SENT -> [uidvalidity, uidnext, messages]: the last the listener knew
        self.quiet_until = 0.0
        self.again = False
        self.removed = False


class _Connection:
    """One connection of a mailbox: on its Inbox (with Sent by NOTIFY) or on its Sent folder."""

    __slots__ = (
        "count",
        "error",
        "generation",
        "idle_tag",
        "inbuf",
        "listening_at",
        "mailbox",
        "outbuf",
        "phase",
        "role",
        "since",
        "sock",
        "state",
        "tags",
        "until",
        "watched",
    )

    def __init__(self, mailbox, role):
        self.mailbox = mailbox
        self.role = role
        self.generation = 0
        self.state = CONNECTING
        self.since = time.time()
        self.until = None
        self.error = None
        self.sock = None
        self.inbuf = b""
        self.outbuf = b""
        self.tags = itertools.count(1)
        self.idle_tag = None
        self.phase = None  # "starting" (IDLE sent), "idling", "renewing" (DONE + IDLE sent)
        self.listening_at = None  # monotonic
        self.count = 0  # EXISTS of the examined folder
        self.watched = {}  # a folder heard of by NOTIFY, as the server names it -> role


class _Closing:
    """A socket being logged out: read until the server hangs up, or the deadline."""

    def __init__(self, sock):
        self.sock = sock


class Listener:
    """Holds IDLE connections for many mailboxes in one thread; calls ``on_new_mail(key)``.

    ``on_new_mail`` runs in the loop thread: it must return at once (queue a job, trigger a
    cron); an exception it raises is logged and forgotten. See the module's docstring for the
    other parameters; times are in seconds.
    """

    def __init__(
        self,
        on_new_mail,
        *,
        retry_delay=cycle_retry_delay,
        coalesce=2.0,
        reidle_interval=9 * 60,
        answer_timeout=30.0,
        reconnect_spread=60.0,
        steady_after=60.0,
        logins_per_second=50.0,
        workers=16,
        use_notify=True,
        unsupported_recheck=6 * 3600,
        logout_timeout=2.0,
        timeout=None,
    ):
        self.on_new_mail = on_new_mail
        self.retry_delay = retry_delay
        self.coalesce = coalesce
        self.reidle_interval = reidle_interval
        self.answer_timeout = answer_timeout
        self.reconnect_spread = reconnect_spread
        self.steady_after = steady_after
        self.logins_per_second = logins_per_second
        self.workers = workers
        self.use_notify = use_notify
        self.unsupported_recheck = unsupported_recheck
        self.logout_timeout = logout_timeout
        self.timeout = timeout  # for open_imap (imapclient.SocketTimeout); its default if None
        self._lock = threading.Lock()
        self._statuses = {}
        self._commands = queue.SimpleQueue()
        self._opened = queue.SimpleQueue()
        self._thread = None
        self._pool = None
        self._stopping = threading.Event()
        self._loop_done = False
        self._mailboxes = {}
        self._timers = []
        self._timer_seq = itertools.count()
        self._next_login = {}  # host -> monotonic time of its next login slot
        self._held = 0
        self._closing = set()  # sockets logged out, waiting for the server's goodbye
        self._selector = None
        self._wake_r = self._wake_w = None

    # ------------------------------------------------------------------
    # The caller's side (any thread)
    # ------------------------------------------------------------------

    def start(self):
        """Start the loop thread and the login workers; returns at once."""
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mail-listener-login")
        self._thread = threading.Thread(target=self._run, name="mail-listener", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=10.0):
        """Log out of every connection (waiting ``logout_timeout`` at most) and end the thread."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake()
        self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def add(self, watch):
        """Listen to ``watch``'s mailbox; a mailbox already watched with other settings is
        connected again, with the same ones nothing happens. Takes effect within a second."""
        with self._lock:
            current = self._statuses.get(watch.key)
            if current is None:
                self._statuses[watch.key] = MailboxStatus(CONNECTING, since=time.time())
        self._commands.put(("add", watch))
        self._wake()

    update = add

    def remove(self, watch_or_key):
        """Stop listening to a mailbox: its connections are logged out."""
        key = watch_or_key.key if isinstance(watch_or_key, Watch) else watch_or_key
        with self._lock:
            self._statuses.pop(key, None)
        self._commands.put(("remove", key))
        self._wake()

    def status(self, key):
        """The :class:`MailboxStatus` of a watched mailbox, None if it is not watched."""
        with self._lock:
            return self._statuses.get(key)

    def statuses(self):
        """``{key: MailboxStatus}`` of every watched mailbox."""
        with self._lock:
            return dict(self._statuses)

    def held(self):
        """How many connections the listener holds open now (all mailboxes)."""
        return self._held

    def _wake(self):
        with contextlib.suppress(OSError, AttributeError):
            self._wake_w.send(b"\0")

    # ------------------------------------------------------------------
    # The loop
    # ------------------------------------------------------------------

    def _run(self):
        try:
            while not self._stopping.is_set():
                self._turn()
            self._shut_down()
        except Exception:
            _logger.exception("The mail listener's loop stopped on an unexpected error")
            raise
        finally:
            self._finish()

    def _turn(self):
        wait = MAX_WAIT
        if self._timers:
            wait = min(max(self._timers[0][0] - time.monotonic(), 0.0), MAX_WAIT)
        for key, mask in self._selector.select(wait):
            self._dispatch(key.data, mask)
        self._take_commands()
        self._take_opened()
        self._run_timers()

    def _dispatch(self, target, mask):
        if target is None:
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
        elif isinstance(target, _Closing):
            self._read_closing(target)
        else:
            try:
                if mask & selectors.EVENT_WRITE:
                    self._flush(target)
                if target.sock is not None:
                    self._read(target)
            except Exception:
                _logger.exception("Mail listener: unexpected error on mailbox %r", target.mailbox.watch.key)
                self._lose(target, errors.UnexpectedError(kind="listener"))

    def _at(self, delay, action, *args):
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_seq), action, args))

    def _run_timers(self):
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _when, _seq, action, args = heapq.heappop(self._timers)
            try:
                action(*args)
            except Exception:
                _logger.exception("Mail listener: unexpected error in %s", action.__name__)

    def _shut_down(self):
        """Log out of everything, then wait for the servers' goodbyes up to ``logout_timeout``."""
        for mailbox in list(self._mailboxes.values()):
            self._drop_mailbox(mailbox)
        self._mailboxes.clear()
        deadline = time.monotonic() + self.logout_timeout
        while self._closing and time.monotonic() < deadline:
            for key, _mask in self._selector.select(max(deadline - time.monotonic(), 0)):
                if isinstance(key.data, _Closing):
                    self._read_closing(key.data)

    def _finish(self):
        """Close what is left; a login that ends after this is logged out by its worker."""
        with self._lock:
            self._loop_done = True
        for key in list(self._selector.get_map().values()):
            sock = key.fileobj
            self._selector.unregister(sock)
            with contextlib.suppress(OSError):
                sock.close()
        while True:
            try:
                _connection, _generation, result = self._opened.get_nowait()
            except queue.Empty:
                break
            if isinstance(result, _Opened) and result.sock is not None:
                _logout_now(result.sock)
        self._selector.close()
        self._wake_w.close()
        self._held = 0

    # ------------------------------------------------------------------
    # Mailboxes added, changed, removed
    # ------------------------------------------------------------------

    def _take_commands(self):
        while True:
            try:
                command, argument = self._commands.get_nowait()
            except queue.Empty:
                return
            if command == "add":
                self._watch(argument)
            else:
                mailbox = self._mailboxes.pop(argument, None)
                if mailbox is not None:
                    self._drop_mailbox(mailbox)
                with self._lock:  # a status published before the command was read
                    self._statuses.pop(argument, None)

    def _watch(self, watch):
        current = self._mailboxes.get(watch.key)
        if current is not None and current.watch == watch:
            current.watch = watch  # the same settings: only the newest credential callable
            self._publish(current)
            return
        if current is not None:
            self._drop_mailbox(current)
        mailbox = self._mailboxes[watch.key] = _Mailbox(watch)
        self._new_connection(mailbox, INBOX)

    def _drop_mailbox(self, mailbox):
        mailbox.removed = True
        for conn in mailbox.connections.values():
            self._abandon(conn, logout=True)
        mailbox.connections.clear()

    def _new_connection(self, mailbox, role, delay=0.0):
        conn = mailbox.connections[role] = _Connection(mailbox, role)
        self._schedule(conn, delay)
        return conn

    def _abandon(self, conn, logout):
        """Forget ``conn``'s socket and everything planned for it (timers, a login under way)."""
        conn.generation += 1
        sock, conn.sock = conn.sock, None
        if sock is None:
            return
        self._selector.unregister(sock)
        self._held -= 1
        if logout:
            self._log_out(sock, idling=conn.phase in ("idling", "renewing", "starting"))
        else:
            _close(sock)
        conn.phase = conn.idle_tag = None
        conn.inbuf = conn.outbuf = b""

    # ------------------------------------------------------------------
    # Connecting: paced logins in the worker pool
    # ------------------------------------------------------------------

    def _schedule(self, conn, delay, state=CONNECTING, error=None):
        conn.state = state
        conn.error = str(error) if error is not None else None
        conn.until = time.time() + delay if state != CONNECTING else None
        if state == CONNECTING:
            conn.since = time.time()
        self._at(delay, self._connect_due, conn, conn.generation, False)
        self._publish(conn.mailbox)

    def _connect_due(self, conn, generation, paced):
        if generation != conn.generation or conn.mailbox.removed:
            return
        if not paced:
            slot = self._login_slot(conn.mailbox.watch.server.host)
            if slot > 0:
                self._at(slot, self._connect_due, conn, generation, True)
                return
        conn.state = CONNECTING
        conn.since = time.time()
        conn.until = conn.error = None
        self._publish(conn.mailbox)
        want_notify = self.use_notify and conn.role == INBOX and conn.mailbox.notify is not False
        self._pool.submit(self._work, conn, generation, conn.mailbox.watch, conn.role, want_notify)

    def _login_slot(self, host):
        """Seconds until ``host`` may see another login (reserving it): logins are paced."""
        now = time.monotonic()
        slot = max(now, self._next_login.get(host, now))
        self._next_login[host] = slot + 1.0 / self.logins_per_second
        return slot - now

    def _work(self, conn, generation, watch, role, want_notify):
        """In a worker: log in and examine; hand the result (or the error) to the loop."""
        if generation != conn.generation:  # removed or changed while waiting for a worker
            return
        try:
            result = _open(watch, role, want_notify, self.timeout)
        except errors.MailboxError as exc:
            result = exc
        except Exception as exc:
            _logger.exception("Mail listener: unexpected error while connecting mailbox %r", watch.key)
            result = errors.UnexpectedError(kind=type(exc).__name__)
        with self._lock:
            done = self._loop_done
            if not done:
                self._opened.put((conn, generation, result))
        if done and isinstance(result, _Opened) and result.sock is not None:
            _logout_now(result.sock)
        self._wake()

    def _take_opened(self):
        while True:
            try:
                conn, generation, result = self._opened.get_nowait()
            except queue.Empty:
                return
            if generation != conn.generation or conn.mailbox.removed or self._stopping.is_set():
                if isinstance(result, _Opened) and result.sock is not None:
                    self._log_out(result.sock, idling=False)
                continue
            if isinstance(result, errors.MailboxError):
                self._fail(conn, result)
            elif result.unsupported:
                self._unsupported(conn)
            else:
                self._hold(conn, result)

    def _fail(self, conn, error):
        """A login or the server failed: wait with the cycle's back-off."""
        self._abandon(conn, logout=False)
        mailbox = conn.mailbox
        mailbox.failures += 1
        delay = self.retry_delay(mailbox.failures)
        _logger.warning(
            "Mail listener: mailbox %r on %s: %s Tried again in %d s.",
            mailbox.watch.key,
            mailbox.watch.server.host,
            error,
            delay,
        )
        self._schedule(conn, delay, WAITING, error)

    def _unsupported(self, conn):
        mailbox = conn.mailbox
        mailbox.unsupported = True
        _logger.info(
            "Mail listener: the server %s of mailbox %r has no IDLE; left to the cycle",
            mailbox.watch.server.host,
            mailbox.watch.key,
        )
        for other in list(mailbox.connections.values()):
            if other is not conn:
                self._abandon(other, logout=True)
                del mailbox.connections[other.role]
        self._schedule(conn, self.unsupported_recheck, UNSUPPORTED)

    def _hold(self, conn, opened):
        """A worker logged in: the loop holds the socket from now on and sends IDLE."""
        mailbox = conn.mailbox
        mailbox.unsupported = False
        conn.sock = opened.sock
        self._held += 1
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        conn.count = opened.folder.get(b"EXISTS", 0)
        self._seen(conn, conn.role, opened.folder.get(b"UIDVALIDITY"), opened.folder.get(b"UIDNEXT"), None)
        if conn.role == INBOX:
            self._sent_by_notify(mailbox, opened)
        if opened.exists_after is not None:
            self._exists(conn, opened.exists_after)
        for name, items in opened.statuses:
            self._status(conn, name, items)
        self._idle(conn)
        conn.inbuf = bytes(opened.leftover)
        self._read(conn)

    def _sent_by_notify(self, mailbox, opened):
        """Whether Sent is heard of on the Inbox's connection; else it gets one of its own."""
        watch = mailbox.watch
        inbox = mailbox.connections[INBOX]
        mailbox.notify = opened.notify if watch.sent else None
        if opened.notify:
            inbox.watched = {_folder_name(watch.sent): SENT}
            sent = mailbox.connections.pop(SENT, None)
            if sent is not None:
                self._abandon(sent, logout=True)
        else:
            inbox.watched = {}
            if watch.sent and SENT not in mailbox.connections:
                self._new_connection(mailbox, SENT)

    # ------------------------------------------------------------------
    # IDLE on a held connection
    # ------------------------------------------------------------------

    def _idle(self, conn):
        conn.idle_tag = b"L%d" % next(conn.tags)
        conn.phase = "starting"
        self._send(conn, conn.idle_tag + b" IDLE\r\n")
        self._at(self.answer_timeout, self._answer_due, conn, conn.generation, conn.idle_tag)

    def _renew(self, conn, generation):
        """DONE then IDLE again, before servers drop an IDLE they think forgotten."""
        if generation != conn.generation or conn.phase != "idling":
            return
        conn.idle_tag = b"L%d" % next(conn.tags)
        conn.phase = "renewing"
        self._send(conn, b"DONE\r\n" + conn.idle_tag + b" IDLE\r\n")
        self._at(self.answer_timeout, self._answer_due, conn, generation, conn.idle_tag)

    def _answer_due(self, conn, generation, tag):
        if generation == conn.generation and conn.idle_tag == tag and conn.phase in ("starting", "renewing"):
            _logger.info("Mail listener: mailbox %r: the server stopped answering", conn.mailbox.watch.key)
            server = conn.mailbox.watch.server
            self._lose(conn, errors.ServerUnreachable(host=server.host, port=server.port))

    def _idling(self, conn):
        """The server said "+": IDLE is on (again)."""
        if conn.phase == "starting" and conn.state != LISTENING:
            conn.state = LISTENING
            conn.since = time.time()
            conn.listening_at = time.monotonic()
            conn.until = conn.error = None
            self._publish(conn.mailbox)
        conn.phase = "idling"
        interval = self.reidle_interval * random.uniform(0.9, 1.0)
        self._at(interval, self._renew, conn, conn.generation)

    # ------------------------------------------------------------------
    # Reading and writing without blocking
    # ------------------------------------------------------------------

    def _send(self, conn, data):
        conn.outbuf += data
        self._flush(conn)

    def _flush(self, conn):
        while conn.outbuf and conn.sock is not None:
            try:
                sent = conn.sock.send(conn.outbuf)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                self._selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
                return
            except OSError:
                self._lose(conn, None)
                return
            conn.outbuf = conn.outbuf[sent:]
        if conn.sock is not None and not conn.outbuf:
            self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _read(self, conn):
        """Read all that is there, the TLS layer's own buffer included (it does not make the
        socket readable again), acting on each complete answer as it comes."""
        while conn.sock is not None:
            try:
                data = conn.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                break
            except ssl.SSLWantWriteError:
                self._selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
                break
            except OSError:
                data = b""
            if not data:
                self._lose(conn, None)
                return
            conn.inbuf += data
            self._answers(conn)
        if conn.sock is not None and conn.inbuf:
            self._answers(conn)

    def _answers(self, conn):
        buffer, position = conn.inbuf, 0
        while conn.sock is not None:
            response, position = _split_response(buffer, position)
            if response is None:
                break
            self._answer(conn, response)
        conn.inbuf = buffer[position:]
        if len(conn.inbuf) > MAX_RESPONSE:
            self._lose(conn, None)

    def _answer(self, conn, parts):
        head = parts[0]
        if head.startswith(b"+"):
            if conn.phase in ("starting", "renewing"):
                self._idling(conn)
            return
        words = head.split(None, 3)
        if len(words) < 2:
            return
        if words[0] != b"*":
            self._tagged(conn, words[0], words[1].upper())
        elif words[1].isdigit() and len(words) >= 3:
            self._numbered(conn, int(words[1]), words[2].upper())
        elif words[1].upper() == b"STATUS":
            parsed = _parse_status(parts)
            if parsed is not None:
                self._status(conn, *parsed)
        elif words[1].upper() == b"BYE":
            _logger.info("Mail listener: mailbox %r: the server said goodbye", conn.mailbox.watch.key)
            self._lose(conn, None)

    def _tagged(self, conn, tag, result):
        if result == b"OK" or tag != conn.idle_tag:
            return  # the previous IDLE's end, or an answer to nothing the listener waits for
        _logger.warning("Mail listener: mailbox %r: the server refused IDLE", conn.mailbox.watch.key)
        server = conn.mailbox.watch.server
        self._lose(conn, errors.ServerUnreachable(host=server.host, port=server.port))

    def _numbered(self, conn, number, what):
        if what == b"EXISTS":
            self._exists(conn, number)
        elif what == b"EXPUNGE":
            conn.count = max(conn.count - 1, 0)

    def _exists(self, conn, count):
        """EXISTS above the count the listener knows: that many new mails."""
        arrived = count - conn.count
        conn.count = count
        if arrived > 0:
            seen = conn.mailbox.seen.get(conn.role)
            if seen is not None and seen[1] is not None:
                seen[1] += arrived
            self._new_mail(conn.mailbox)

    def _status(self, conn, name, items):
        """An untagged STATUS (NOTIFY): new mail if UIDNEXT (else MESSAGES) grew."""
        role = conn.watched.get(name)
        if role is not None:
            self._seen(conn, role, items.get(b"UIDVALIDITY"), items.get(b"UIDNEXT"), items.get(b"MESSAGES"))

    def _seen(self, conn, role, uidvalidity, uidnext, messages):
        """What a folder holds now; new mail if it grew since the listener last knew (a mail that
        came while a connection was down included)."""
        mailbox = conn.mailbox
        before = mailbox.seen.get(role)
        now = [uidvalidity, uidnext, messages]
        if before is not None:
            if uidvalidity is None:
                now[0] = before[0]
            if uidnext is None:
                now[1] = before[1]
            if messages is None:
                now[2] = before[2]
        mailbox.seen[role] = now
        if before is None or (before[0] is not None and now[0] != before[0]):
            return  # the first look, or a folder made anew: nothing to compare with
        if uidnext is not None and before[1] is not None:
            grew = uidnext > before[1]
        else:
            grew = messages is not None and before[2] is not None and messages > before[2]
        if grew:
            self._new_mail(mailbox)

    # ------------------------------------------------------------------
    # Signals, coalesced
    # ------------------------------------------------------------------

    def _new_mail(self, mailbox):
        if mailbox.removed:
            return
        now = time.monotonic()
        if now < mailbox.quiet_until:
            mailbox.again = True
            return
        self._signal(mailbox)

    def _signal(self, mailbox):
        mailbox.quiet_until = time.monotonic() + self.coalesce
        mailbox.again = False
        self._at(self.coalesce, self._window_end, mailbox)
        try:
            self.on_new_mail(mailbox.watch.key)
        except Exception:
            _logger.exception("Mail listener: on_new_mail failed for mailbox %r", mailbox.watch.key)

    def _window_end(self, mailbox):
        if mailbox.again and not mailbox.removed:
            self._signal(mailbox)

    # ------------------------------------------------------------------
    # Losing a connection, logging out
    # ------------------------------------------------------------------

    def _lose(self, conn, error):
        """The connection is gone (or given up): reconnect, spread out or after the back-off."""
        if conn.sock is None and error is None:
            return
        was_steady = (
            conn.state == LISTENING
            and conn.listening_at is not None
            and time.monotonic() - conn.listening_at >= self.steady_after
        )
        self._abandon(conn, logout=False)
        mailbox = conn.mailbox
        if mailbox.removed or self._stopping.is_set():
            return
        if was_steady and error is None:
            mailbox.failures = 0
            self._schedule(conn, random.uniform(0, self.reconnect_spread))
            return
        server = mailbox.watch.server
        self._fail(conn, error or errors.ServerUnreachable(host=server.host, port=server.port))

    def _log_out(self, sock, idling):
        """LOGOUT (after DONE if idling) without waiting here: the loop reads the goodbye."""
        try:
            sock.send((b"DONE\r\n" if idling else b"") + LOGOUT_TAG + b" LOGOUT\r\n")
        except OSError:
            _close(sock)
            return
        closing = _Closing(sock)
        self._closing.add(closing)
        self._selector.register(sock, selectors.EVENT_READ, closing)
        self._at(self.logout_timeout, self._close_closing, closing)

    def _read_closing(self, closing):
        while True:
            try:
                data = closing.sock.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return
            except OSError:
                data = b""
            if not data:
                self._close_closing(closing)
                return

    def _close_closing(self, closing):
        if closing.sock is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(closing.sock)
        _close(closing.sock)
        closing.sock = None
        self._closing.discard(closing)

    # ------------------------------------------------------------------
    # Status
    # ------------------------------------------------------------------

    def _publish(self, mailbox):
        if mailbox.removed:
            return
        status = _mailbox_status(mailbox)
        with self._lock:
            self._statuses[mailbox.watch.key] = status


def _mailbox_status(mailbox):
    """One status for the mailbox from its connections' states: the worst one wins."""
    connections = list(mailbox.connections.values())
    held = sum(1 for conn in connections if conn.sock is not None)
    if mailbox.unsupported:
        return MailboxStatus(UNSUPPORTED, connections=held, notify=mailbox.notify)
    for conn in connections:
        if conn.state == WAITING:
            return MailboxStatus(
                WAITING, until=conn.until, error=conn.error, connections=held, notify=mailbox.notify
            )
    for conn in connections:
        if conn.state == CONNECTING:
            return MailboxStatus(CONNECTING, since=conn.since, connections=held, notify=mailbox.notify)
    since = max((conn.since for conn in connections), default=None)
    return MailboxStatus(LISTENING, since=since, connections=held, notify=mailbox.notify)


# ----------------------------------------------------------------------
# In a worker thread: log in, examine, hand over
# ----------------------------------------------------------------------


def _open(watch, role, want_notify, timeout):
    """Log in through :func:`connection.open_imap`, examine the folder, set NOTIFY if wanted."""
    credential = _credential(watch)
    client = connection.open_imap(
        watch.server,
        watch.login,
        ca_file=watch.ca_file,
        timeout=timeout,
        allow_private=watch.allow_private,
        **credential,
    )
    try:
        return _prepare(client, watch, role, want_notify)
    except errors.MailboxError:
        _shutdown(client)
        raise
    except (OSError, IMAPClientError) as exc:
        _shutdown(client)
        raise connection.explain(exc, watch.server) from None
    except BaseException:
        _shutdown(client)
        raise


def _credential(watch):
    """``{"password": ...}`` or ``{"access_token": ...}`` from the watch, checked. A failure of
    the caller's callable is logged by its kind only: its text might hold what it was reading."""
    try:
        credential = watch.credential()
    except errors.MailboxError:
        raise
    except Exception as exc:  # noqa: BLE001 - logged below, by kind only
        kind = type(exc).__name__
        _logger.warning("Mail listener: the credential of mailbox %r could not be read (%s)", watch.key, kind)
        raise errors.UnexpectedError(kind=kind) from None
    if not isinstance(credential, dict) or set(credential) not in ({"password"}, {"access_token"}):
        raise errors.InvalidSettings(reason="no password or access token")
    return credential


def _prepare(client, watch, role, want_notify):
    capabilities = client.capabilities()
    if b"IDLE" not in capabilities:
        _logout(client)
        return _Opened(unsupported=True)
    folder = watch.inbox if role == INBOX else watch.sent
    try:
        examined = client.select_folder(folder, readonly=True)
    except IMAPClientAbortError:
        raise
    except IMAPClientError:
        raise errors.FolderGone(folder=folder) from None
    client._imap.untagged_responses.clear()
    opened = _Opened(folder=examined)
    if want_notify and watch.sent and b"NOTIFY" in capabilities:
        opened.notify = _notify(client, watch.sent)
        opened.statuses = _notify_statuses(client)
    exists = client._imap.untagged_responses.get("EXISTS")
    if exists:
        opened.exists_after = int(exists[-1])
    opened.sock, opened.leftover = _take_over(client)
    return opened


def _folder_name(folder):
    """A folder's name as the server writes it in STATUS: modified UTF-7 (RFC 3501)."""
    return encode_utf7(folder)


def _notify(client, sent):
    """NOTIFY SET STATUS: new and removed mail of the Inbox (selected) and of Sent.

    imapclient has no NOTIFY: the command goes through its lower layer, the folder's name quoted
    (or sent as a literal) the way imapclient sends every folder name. False if refused.
    """
    args = [
        b"SET",
        b"STATUS",
        b"(SELECTED",
        b"(MessageNew",
        b"MessageExpunge))",
        b"(MAILBOXES",
        client._normalise_folder(sent),
        b"(MessageNew",
        b"MessageExpunge))",
    ]
    try:
        typ, _data = client._raw_command(b"NOTIFY", args, uid=False)
    except IMAPClientAbortError:
        raise
    except IMAPClientError:
        return False
    return typ == "OK"


def _notify_statuses(client):
    """The STATUS answers NOTIFY SET STATUS gave, as ``[(name, {item: value})]``."""
    found = []
    for data in client._imap.untagged_responses.pop("STATUS", []):
        parsed = _status_items(parse_response([data]))
        if parsed is not None:
            found.append(parsed)
    return found


def _take_over(client):
    """The logged-in socket, non-blocking, and whatever imaplib had read past the last answer."""
    imap = client._imap
    sock = imap.sock
    sock.setblocking(False)
    try:
        leftover = imap.file.peek(1)
    except (OSError, ValueError):
        leftover = b""
    imap.file.close()  # the socket stays open: it is closed by the loop
    return sock, bytes(leftover)


def _logout(client):
    with contextlib.suppress(OSError, IMAPClientError):
        client.logout()
    _shutdown(client)


def _shutdown(client):
    with contextlib.suppress(OSError, IMAPClientError, ValueError):
        client.shutdown()


def _logout_now(sock):
    """LOGOUT and close, blocking a little: for a login that ended after the loop did."""
    with contextlib.suppress(OSError, ValueError):
        sock.settimeout(1.0)
        sock.sendall(LOGOUT_TAG + b" LOGOUT\r\n")
        while sock.recv(65536):
            pass
    _close(sock)


def _close(sock):
    with contextlib.suppress(OSError):
        sock.close()


# ----------------------------------------------------------------------
# The server's words
# ----------------------------------------------------------------------


def _split_response(buffer, start=0):
    """The first complete response in ``buffer`` from ``start``, and where the next begins:
    ``([text, literal, text, ...], position)``, or ``(None, start)`` while it is incomplete. A
    line may end in a literal (``{n}``, then n bytes): a folder's name in a STATUS may come so."""
    parts = []
    position = start
    while True:
        end = buffer.find(b"\n", position)
        if end < 0:
            return None, start
        line = buffer[position:end].rstrip(b"\r")
        literal = _LITERAL_AT_END.search(line)
        if literal is None:
            parts.append(line)
            return parts, end + 1
        size = int(literal.group(1))
        if end + 1 + size > len(buffer):
            return None, start
        parts.append(line)
        parts.append(buffer[end + 1 : end + 1 + size])
        position = end + 1 + size


def _parse_status(parts):
    """``(name, {item: value})`` of an untagged STATUS as RFC 5465 lets a server send it: the
    name an atom, a quoted string or a literal, the items in any order, more than asked."""
    first = parts[0].split(None, 2)
    if len(first) < 3:
        return None
    rest = first[2]
    # imapclient's parser takes imaplib's shape: (text ending in {n}, literal), ..., text.
    shaped = []
    texts = [rest, *parts[2::2]]
    literals = parts[1::2]
    for index, text in enumerate(texts):
        if index < len(literals):
            shaped.append((text, literals[index]))
        else:
            shaped.append(text)
    try:
        return _status_items(parse_response(shaped))
    except (ValueError, IMAPClientError):
        return None


def _status_items(parsed):
    if len(parsed) < 2 or not isinstance(parsed[1], tuple):
        return None
    name = parsed[0]
    if isinstance(name, int):
        name = str(name).encode()
    if not isinstance(name, bytes):
        return None
    values = parsed[1]
    items = {}
    for index in range(0, len(values) - 1, 2):
        item, value = values[index], values[index + 1]
        if isinstance(item, bytes) and isinstance(value, int):
            items[item.upper()] = value
    if name.upper() == b"INBOX":
        name = b"INBOX"
    return name, items
