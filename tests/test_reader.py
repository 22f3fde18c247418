"""open_imap, MailboxReader and addresses against a real Dovecot (harness.dovecot), no Odoo."""

import datetime
import email
import email.policy
import queue
import socket
import ssl
import threading
import time
import traceback
from email.message import EmailMessage

import imapclient
import pytest

from harness import tls
from harness.cyrus import Cyrus
from harness.dovecot import Dovecot
from harness.proxy import FakeImapServer
from mailbox_client import addresses, connection, errors, reader

LOGIN = "anna.recruiter@example.test"
PASSWORD = "Tr0ub4dor&3-horse"
WRONG_PASSWORD = "wr0ng-Pa55word-7731"
MODES = ("ssl", "starttls")
TIMEOUT = imapclient.SocketTimeout(5, 5)
SHORT = imapclient.SocketTimeout(0.5, 0.5)
UTC = datetime.timezone.utc
# One fresh mailbox per test on the shared server. Users are all written at start:
# Dovecot re-reads its passwd file at most once a second.
POOL = 40


@pytest.fixture(scope="module")
def dovecot():
    """The module's server: no folder but INBOX, so each test makes the folders it needs.

    No test here fails a login on it: Dovecot delays every login from an address
    (by seconds) after a failed one. Wrong-password tests start their own server.
    """
    with Dovecot({f"user{n}@example.test": PASSWORD for n in range(POOL)}, folders={}) as server:
        yield server


@pytest.fixture(scope="module")
def fresh_logins(dovecot):
    return iter(dovecot.users)


@pytest.fixture
def login(fresh_logins):
    """A user of the module's server whose mailbox no other test touched."""
    return next(fresh_logins)


def port_of(server, security):
    return server.starttls_port if security == "starttls" else server.ssl_port


def connect(server, login, security="ssl", **options):
    options.setdefault("ca_file", server.ca_file)
    options.setdefault("timeout", TIMEOUT)
    options.setdefault("allow_private", True)  # the test server is on loopback
    where = connection.Server(server.host, port_of(server, security), security)
    return connection.open_imap(where, login, PASSWORD, **options)


@pytest.fixture
def mailbox(dovecot, login):
    """A MailboxReader on ``login``'s mailbox, over implicit TLS."""
    client = connect(dovecot, login)
    try:
        yield reader.MailboxReader(client)
    finally:
        client.logout()


def log_lines(server, needle, wait=5):
    """Lines of Dovecot's log containing ``needle``, waiting a little for them to be written."""
    deadline = time.monotonic() + wait
    while True:
        lines = [line for line in (server.root / "dovecot.log").read_text().splitlines() if needle in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def message(number, **headers):
    """A small raw mail, CRLF line ends, with a Message-ID unless told otherwise."""
    headers.setdefault("From", "anna.recruiter@example.test")
    headers.setdefault("To", "candidate@example.org")
    headers.setdefault("Message_ID", f"<mail-{number}@example.test>")
    lines = [f"{name.replace('_', '-')}: {value}" for name, value in headers.items() if value is not None]
    return ("\r\n".join([*lines, f"Subject: Mail {number}", "", f"Body {number}", ""])).encode()


def visible_flags(server, login, uids):
    """Flags of ``uids`` in INBOX seen by another client, without \\Recent (a session detail)."""
    with server.client(login) as other:
        other.select_folder(reader.INBOX, readonly=True)
        return {uid: set(flags) - {b"\\Recent"} for uid, flags in other.get_flags(uids).items()}


# ----------------------------------------------------------------------
# open_imap: secure connections and what goes wrong with them
# ----------------------------------------------------------------------


@pytest.mark.parametrize("security", MODES)
def test_login_over_tls(dovecot, login, security):
    client = connect(dovecot, login, security)
    try:
        sock = client.socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert sock.server_hostname == "localhost"
        # Logged in: the mailbox can be opened, and it is this user's empty INBOX.
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
    finally:
        client.logout()
    # The server saw a password login over TLS from this user.
    (line,) = log_lines(dovecot, f"Login: user=<{login}>")
    assert "method=PLAIN" in line
    assert ", TLS," in line


def test_starttls_against_the_implicit_tls_port_times_out(dovecot, login):
    # The client waits for a greeting, the server for a TLS ClientHello: only the timeout ends it.
    server = connection.Server("localhost", dovecot.ssl_port, "starttls")
    with pytest.raises(errors.ServerUnreachable) as info:
        connection.open_imap(
            server, login, PASSWORD, ca_file=dovecot.ca_file, timeout=SHORT, allow_private=True
        )
    assert isinstance(info.value, errors.MailboxError)
    assert info.value.params == {"host": "localhost", "port": dovecot.ssl_port}


def test_implicit_tls_against_the_starttls_port_fails(dovecot, login):
    # The plain-text greeting is not a TLS record: told like any port without a mail server.
    server = connection.Server("localhost", dovecot.starttls_port, "ssl")
    with pytest.raises(errors.ServerUnreachable) as info:
        connection.open_imap(
            server, login, PASSWORD, ca_file=dovecot.ca_file, timeout=SHORT, allow_private=True
        )
    assert info.value.params == {"host": "localhost", "port": dovecot.starttls_port}
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("security", "login"),
    [("ssl", LOGIN), ("starttls", LOGIN), ("ssl", "nobody@example.test")],
)
def test_wrong_password(security, login):
    # A server of its own: a failed login slows down every later login to the server.
    with Dovecot({LOGIN: PASSWORD}, folders={}) as server:
        where = connection.Server(server.host, port_of(server, security), security)
        with pytest.raises(errors.AuthenticationFailed) as info:
            connection.open_imap(
                where, login, WRONG_PASSWORD, ca_file=server.ca_file, timeout=TIMEOUT, allow_private=True
            )
        # The password did reach the server, which refused it.
        assert log_lines(server, "auth failed")
    exc = info.value
    assert exc.definitive is True
    assert str(exc).startswith("The mail server refused the login name or password.")
    shown = str(exc) + repr(exc) + "".join(traceback.format_exception(exc)) + repr(exc.params)
    assert WRONG_PASSWORD not in shown
    assert PASSWORD not in shown
    assert exc.__cause__ is None
    assert exc.__suppress_context__ is True


@pytest.mark.parametrize("security", MODES)
def test_untrusted_ca_with_system_store_only(dovecot, login, security):
    with pytest.raises(errors.CertificateNotTrusted) as info:
        connect(dovecot, login, security, ca_file=None)
    assert info.value.params == {"host": "localhost", "reason": "unable to get local issuer certificate"}
    assert info.value.definitive is True, "a certificate that changed needs a person: no more logins"
    assert PASSWORD not in str(info.value)


@pytest.fixture(scope="module")
def stranger_dovecot():
    """A server whose certificate comes from a CA the client was not given."""
    with Dovecot({LOGIN: PASSWORD}, folders={}, tls=tls.TestAuthority()) as server:
        yield server


@pytest.mark.parametrize("security", MODES)
def test_certificate_of_another_ca(stranger_dovecot, security):
    with pytest.raises(errors.CertificateNotTrusted) as info:
        connect(stranger_dovecot, LOGIN, security, ca_file=tls.authority().ca_file)
    assert info.value.params == {"host": "localhost", "reason": "unable to get local issuer certificate"}


@pytest.fixture(scope="module")
def mismatched_dovecot():
    """A server with a certificate of the trusted CA, but for another host name."""
    with Dovecot(
        {LOGIN: PASSWORD}, folders={}, cert=tls.authority().leaf("imap.other.example.net")
    ) as server:
        yield server


@pytest.mark.parametrize("security", MODES)
def test_certificate_for_another_host_name(mismatched_dovecot, security):
    with pytest.raises(errors.CertificateNotTrusted) as info:
        connect(mismatched_dovecot, LOGIN, security)
    assert info.value.params["host"] == "localhost"
    assert "Hostname mismatch" in str(info.value)
    assert "'localhost'" in info.value.params["reason"]
    assert PASSWORD not in str(info.value)


class PlaintextIMAP:
    """A plain-text IMAP server on loopback that never offers STARTTLS.

    It records the command lines of each connection; ``sessions`` gets one list
    of lines per connection once the client is gone.
    """

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.sessions = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            lines = []
            with conn, conn.makefile("rb") as incoming:
                conn.settimeout(5)
                conn.sendall(b"* OK IMAP4rev1 Service Ready\r\n")
                try:
                    for line in incoming:
                        lines.append(line.rstrip(b"\r\n"))
                        if not self.answer(conn, line):
                            break
                except OSError:
                    pass
            self.sessions.put(lines)

    @staticmethod
    def answer(conn, line):
        tag, _, rest = line.strip().partition(b" ")
        command = rest.split(b" ", 1)[0].upper()
        if command == b"CAPABILITY":
            conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK CAPABILITY completed\r\n")
        elif command == b"LOGIN":
            conn.sendall(tag + b" OK LOGIN completed\r\n")
        elif command == b"LOGOUT":
            conn.sendall(b"* BYE Logging out\r\n" + tag + b" OK LOGOUT completed\r\n")
            return False
        else:
            conn.sendall(tag + b" BAD Unknown command\r\n")
        return True

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def plaintext_imap():
    server = PlaintextIMAP()
    yield server
    server.close()


def commands(lines):
    return [line.split(b" ")[1].upper() for line in lines]


def test_server_without_starttls_gets_no_password(plaintext_imap):
    server = connection.Server("127.0.0.1", plaintext_imap.port, "starttls")
    with pytest.raises(errors.SecureConnectionUnavailable) as info:
        connection.open_imap(server, LOGIN, PASSWORD, timeout=TIMEOUT, allow_private=True)
    assert info.value.params == {"host": "127.0.0.1", "port": plaintext_imap.port}
    lines = plaintext_imap.sessions.get(timeout=5)
    assert commands(lines) == [b"CAPABILITY"]
    assert not any(word in line.upper() for line in lines for word in (b"LOGIN", b"AUTHENTICATE"))
    assert not any(PASSWORD.encode() in line for line in lines)
    # Control: this server takes a password in clear text, and records it.
    with imapclient.IMAPClient("127.0.0.1", port=plaintext_imap.port, ssl=False, timeout=5) as careless:
        careless.login(LOGIN, PASSWORD)
    careless_lines = plaintext_imap.sessions.get(timeout=5)
    assert b"LOGIN" in commands(careless_lines)
    assert any(PASSWORD.encode() in line for line in careless_lines)


# ----------------------------------------------------------------------
# MailboxReader.find_sent_folder
# ----------------------------------------------------------------------


@pytest.mark.parametrize("server_class", [Dovecot, Cyrus], ids=["dovecot", "cyrus"])
def test_special_use_sent_wins_over_a_folder_named_sent(server_class):
    # Cyrus lists the flag of folders it made in lower case ("\\sent"), as RFC 3501 lets it.
    with server_class({LOGIN: PASSWORD}, folders={"Sent": None, "Outbox mail": "\\Sent"}) as server:
        client = connect(server, LOGIN)
        try:
            names = {name for _flags, _delimiter, name in client.list_folders()}
            assert names == {"INBOX", "Sent", "Outbox mail"}
            assert reader.MailboxReader(client).find_sent_folder() == "Outbox mail"
        finally:
            client.logout()


@pytest.mark.parametrize(
    ("folders", "expected"),
    [
        (["Verzonden items"], "Verzonden items"),
        (["Sent Items"], "Sent Items"),
        (["SENT ITEMS"], "SENT ITEMS"),
        (["INBOX/Sent"], "INBOX/Sent"),
        (["Éléments envoyés"], "Éléments envoyés"),
        # Only the last part of the name is a known one.
        (["Archive/Sent Messages"], "Archive/Sent Messages"),
        # Known names are tried in order: "Sent" first.
        (["Drafts", "Gesendet", "Sent"], "Sent"),
    ],
)
def test_sent_folder_by_name_without_special_use(dovecot, login, mailbox, folders, expected):
    with dovecot.client(login) as setup:
        for name in folders:
            setup.create_folder(name)
    names = {name for _flags, _delimiter, name in mailbox.client.list_folders()}
    assert names >= {"INBOX", *folders}
    assert mailbox.find_sent_folder() == expected
    # The name found is one the server knows (Modified UTF-7 round trip included).
    assert mailbox.status(expected).uidnext == 1


def test_no_sent_folder(dovecot, login, mailbox):
    with dovecot.client(login) as setup:
        for name in ("Drafts", "Sentimental", "Archive/Old"):
            setup.create_folder(name)
    with pytest.raises(errors.FolderNotFound) as info:
        mailbox.find_sent_folder()
    assert info.value.definitive is True
    assert str(info.value) == "No Sent folder was found in the mailbox."


# ----------------------------------------------------------------------
# MailboxReader: status, new mail by UID and by date
# ----------------------------------------------------------------------


def test_status_and_uids_after(dovecot, login, mailbox):
    empty = mailbox.status(reader.INBOX)
    assert empty.uidnext == 1
    assert empty.last_uid == 0
    uids = [dovecot.append(login, reader.INBOX, message(n)) for n in range(3)]
    assert uids == [1, 2, 3]
    status = mailbox.status(reader.INBOX)
    assert status == reader.FolderStatus(empty.uidvalidity, 4)
    assert status.last_uid == 3
    assert mailbox.open(reader.INBOX) == status.uidvalidity
    assert mailbox.uids_after(0) == [1, 2, 3]
    assert mailbox.uids_after(1) == [2, 3]
    # The pitfall: "UID 4:*" means "4 to the highest UID", which is 3 here.
    assert mailbox.client.search(["UID", "4:*"]) == [3]
    assert mailbox.uids_after(3) == []
    assert mailbox.uids_after(100) == []


def test_uids_since_uses_the_internal_date(dovecot, login, mailbox):
    # Appended out of date order: UIDs follow arrival, SINCE follows INTERNALDATE.
    dates = [
        datetime.datetime(2024, 3, 5, 12, 0, tzinfo=UTC),
        datetime.datetime(2024, 2, 28, 12, 0, tzinfo=UTC),
        datetime.datetime(2024, 3, 6, 12, 0, tzinfo=UTC),
        datetime.datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
        datetime.datetime(2024, 3, 5, 8, 0, tzinfo=UTC),
    ]
    uids = [dovecot.append(login, reader.INBOX, message(n), date=date) for n, date in enumerate(dates)]
    assert uids == [1, 2, 3, 4, 5]
    mailbox.open(reader.INBOX)
    assert mailbox.uids_since(datetime.date(2024, 3, 5)) == [1, 3, 5]
    assert mailbox.uids_since(datetime.date(2024, 3, 6)) == [3]
    assert mailbox.uids_since(datetime.date(2024, 3, 7)) == []
    assert mailbox.uids_since(datetime.date(2024, 1, 1)) == [1, 2, 3, 4, 5]


# ----------------------------------------------------------------------
# MailboxReader.headers and messages
# ----------------------------------------------------------------------

PLAIN_MAIL = (
    b'From: "Anna Recruiter" <Anna.Recruiter@Example.TEST>\r\n'
    b"To: Candidate <Cand@Example.ORG>, boss@example.test\r\n"
    b'Cc: "Doe, John" <JOHN.DOE@example.com>\r\n'
    b"Bcc: Secret <Hidden@Example.NET>\r\n"
    b"Message-ID: <interview-1@example.test>\r\n"
    b"Subject: Interview\r\n"
    b"\r\n"
    b"See you on Monday.\r\n"
)
ODD_MAIL = (
    b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <Juergen@Example.DE>\r\n"
    b'To: "\r\n'
    b"Cc: not an address\r\n"
    b"Subject: No Message-ID\r\n"
    b"\r\n"
    b"Body\r\n"
)
ODDER_MAIL = (
    b"From: Zo\xc3\xab <zoe@example.org>\r\n"
    b"To: undisclosed-recipients:;\r\n"
    b"cc: first@example.org,\r\n"
    b"  Second <second@Example.org>\r\n"
    b"Cc: third@example.org\r\n"
    b"Bcc: <>\r\n"
    b"Message-ID:   <x3@example.test>  \r\n"
    b"Subject: Folded, lower-case, 8-bit, two Cc\r\n"
    b"\r\n"
    b"Body\r\n"
)


def test_headers(dovecot, login, mailbox):
    date = datetime.datetime(2024, 3, 5, 9, 30, tzinfo=UTC)
    uids = [
        dovecot.append(login, reader.INBOX, PLAIN_MAIL, date=date),
        dovecot.append(login, reader.INBOX, ODD_MAIL),
        dovecot.append(login, reader.INBOX, ODDER_MAIL),
    ]
    mailbox.open(reader.INBOX)
    plain, odd, odder = mailbox.headers(uids).headers

    assert plain.uid == uids[0]
    assert plain.message_id == "<interview-1@example.test>"
    assert plain.senders == {"anna.recruiter@example.test"}
    assert plain.recipients == {"cand@example.org", "boss@example.test", "john.doe@example.com"}
    assert plain.blind_recipients == {"hidden@example.net"}
    assert plain.addresses() == {
        "anna.recruiter@example.test",
        "cand@example.org",
        "boss@example.test",
        "john.doe@example.com",
    }
    assert plain.addresses(with_bcc=False) == plain.addresses()
    assert plain.addresses(with_bcc=True) == plain.addresses() | {"hidden@example.net"}
    # imapclient gives INTERNALDATE as a naive local time.
    assert plain.received == date.astimezone().replace(tzinfo=None)

    assert (odd.uid, odd.message_id) == (uids[1], "")
    assert odd.senders == {"juergen@example.de"}
    assert odd.recipients == set()
    assert odd.blind_recipients == set()
    assert isinstance(odd.received, datetime.datetime)

    assert (odder.uid, odder.message_id) == (uids[2], "<x3@example.test>")
    assert odder.senders == {"zoe@example.org"}
    assert odder.recipients == {"first@example.org", "second@example.org", "third@example.org"}
    assert odder.blind_recipients == set()

    assert mailbox.headers([]) == ([], [])
    assert mailbox.headers(uids[1:2]).headers[0].senders == {"juergen@example.de"}


def test_headers_and_messages_come_in_batches(dovecot, login, mailbox, monkeypatch):
    raws = [message(n) for n in range(7)]
    uids = [dovecot.append(login, reader.INBOX, raw) for raw in raws]
    monkeypatch.setattr(reader, "BATCH_SIZE", 3)
    fetched = []
    fetch, fetch_headers = mailbox.client.fetch, reader.fetch_headers

    def spy(batch, items):
        fetched.append(list(batch))
        return fetch(batch, items)

    def headers_spy(client, batch):
        fetched.append(list(batch))
        return fetch_headers(client, batch)

    monkeypatch.setattr(mailbox.client, "fetch", spy)
    monkeypatch.setattr(reader, "fetch_headers", headers_spy)
    mailbox.open(reader.INBOX)

    headers, unread = mailbox.headers(uids)
    assert fetched == [[1, 2, 3], [4, 5, 6], [7]]
    assert unread == []
    assert [h.uid for h in headers] == [1, 2, 3, 4, 5, 6, 7]
    assert [h.message_id for h in headers] == [f"<mail-{n}@example.test>" for n in range(7)]
    assert [h.size for h in headers] == [len(raw) for raw in raws]

    fetched.clear()
    assert mailbox.messages(uids) == dict(zip(uids, raws, strict=True))
    assert fetched == [[1, 2, 3], [4, 5, 6], [7]]

    fetched.clear()
    assert mailbox.messages([]) == {}
    assert fetched == []


def test_groups_are_capped_by_size():
    def sized(*sizes):
        return [reader.Headers(uid=uid, message_id="", size=size) for uid, size in enumerate(sizes, 1)]

    def uids(found):
        return [[h.uid for h in group] for group in found]

    assert uids(reader.groups(sized(4, 4, 2, 5, 1), 10)) == [[1, 2, 3], [4, 5]]
    # A mail larger than the cap is fetched alone, and the next group starts after it.
    assert uids(reader.groups(sized(3, 25, 3, 3), 10)) == [[1], [2], [3, 4]]
    assert uids(reader.groups(sized(25), 10)) == [[1]]
    assert uids(reader.groups([], 10)) == []
    assert reader.GROUP_BYTES == 10 * 1024 * 1024
    assert uids(reader.groups(sized(*[1024 * 1024] * 25))) == [
        list(range(1, 11)),
        list(range(11, 21)),
        [21, 22, 23, 24, 25],
    ]


def test_batches():
    assert list(reader.batches(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(reader.batches(iter([5, 9]), 3)) == [[5, 9]]
    assert list(reader.batches([], 3)) == []
    assert list(reader.batches(range(reader.BATCH_SIZE + 1))) == [
        list(range(reader.BATCH_SIZE)),
        [reader.BATCH_SIZE],
    ]


RAW_MAIL = (
    b"From: Anna <anna.recruiter@example.test>\r\n"
    b"To: candidate@example.org\r\n"
    b"Message-ID: <raw-1@example.test>\r\n"
    b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Hallo, gr\xc3\xbc\xc3\x9fe!\r\n"
    b".\r\n"
    b"Trailing spaces stay   \r\n"
    b"\r\n"
)


def test_reading_returns_exact_bytes_and_changes_no_flag(dovecot, login, mailbox):
    raws = [RAW_MAIL, message(1), message(2)]
    uids = [
        dovecot.append(login, reader.INBOX, raws[0]),
        dovecot.append(login, reader.INBOX, raws[1], flags=[b"\\Flagged"]),
        dovecot.append(login, reader.INBOX, raws[2], flags=[b"\\Answered"]),
    ]
    before = {uids[0]: set(), uids[1]: {b"\\Flagged"}, uids[2]: {b"\\Answered"}}
    assert visible_flags(dovecot, login, uids) == before

    mailbox.status(reader.INBOX)
    mailbox.open(reader.INBOX)
    mailbox.uids_after(0)
    assert mailbox.headers(uids).headers[0].message_id == "<raw-1@example.test>"
    assert mailbox.messages(uids) == dict(zip(uids, raws, strict=True))
    assert mailbox.messages(uids[:1])[uids[0]] == RAW_MAIL

    # Nothing was marked \Seen (nor anything else), as another client sees it.
    assert visible_flags(dovecot, login, uids) == before
    # Control: a read-write SELECT and a plain BODY[] fetch do mark mail \Seen.
    with dovecot.client(login) as careless:
        careless.select_folder(reader.INBOX)
        careless.fetch(uids[:1], [b"BODY[]"])
    assert visible_flags(dovecot, login, uids)[uids[0]] == {b"\\Seen"}


def test_open_is_read_only(dovecot, login, mailbox):
    uid = dovecot.append(login, reader.INBOX, message(1))
    mailbox.open(reader.INBOX)
    # EXAMINE: the server ignores even an explicit attempt to change a flag.
    mailbox.client.add_flags([uid], [b"\\Seen"])
    assert visible_flags(dovecot, login, [uid]) == {uid: set()}


def test_fetching_peeks_even_in_a_writable_folder(dovecot, login, mailbox):
    uids = [dovecot.append(login, reader.INBOX, message(n)) for n in range(2)]
    mailbox.client.select_folder(reader.INBOX)  # read-write, unlike open()
    assert [h.uid for h in mailbox.headers(uids).headers] == uids
    assert list(mailbox.messages(uids)) == uids
    assert visible_flags(dovecot, login, uids) == {uid: set() for uid in uids}


# ----------------------------------------------------------------------
# addresses
# ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ann@example.com", "ann@example.com"),
        ("Ann <Ann@Example.com>", "ann@example.com"),
        ("<BOB@EXAMPLE.ORG>", "bob@example.org"),
        ('"Doe, John" <John.Doe@Example.COM>', "john.doe@example.com"),
        ("=?utf-8?q?J=C3=BCrgen?= <Juergen@Example.DE>", "juergen@example.de"),
        ("Zoë <Zoe@Example.org>", "zoe@example.org"),
        ("  ann@example.com  ", "ann@example.com"),
        ("ann@example.com (Ann Example)", "ann@example.com"),
        ("", ""),
        ("garbage", ""),
        ('"', ""),
        ("Ann", ""),
        ("<>", ""),
        ('"Ann" <>', ""),
        ("ann@", ""),
        ("undisclosed-recipients:;", ""),
        ("john doe@example.com", ""),
        ("@example.com", ""),
    ],
)
def test_normalize(value, expected):
    assert addresses.normalize(value) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (['a@b.example, "X" <Y@Z.example>'], {"a@b.example", "y@z.example"}),
        (["Team: A@x.example, b@Y.example;"], {"a@x.example", "b@y.example"}),
        (["ann@example.com", "Ann <ANN@example.com>"], {"ann@example.com"}),
        (
            ["first@example.org,\r\n  Second <second@Example.org>"],
            {"first@example.org", "second@example.org"},
        ),
        ([None, "", "bob@example.org"], {"bob@example.org"}),
        (["garbage", "undisclosed-recipients:;", '"'], set()),
        ([], set()),
    ],
)
def test_addresses_in(values, expected):
    assert addresses.addresses_in(values) == expected


def test_headers_addresses_keep_bcc_apart():
    headers = reader.Headers(
        uid=1,
        message_id="<m@example.test>",
        senders={"anna@example.test"},
        recipients={"cand@example.org"},
        blind_recipients={"boss@example.test"},
    )
    assert headers.addresses() == {"anna@example.test", "cand@example.org"}
    assert headers.addresses(with_bcc=True) == {"anna@example.test", "cand@example.org", "boss@example.test"}
    assert reader.Headers(uid=2, message_id="").addresses(with_bcc=True) == set()


QUOTED = b'"FROM" "TO" "CC" "BCC" "MESSAGE-ID" "DATE"'
# How servers label the header section (Courier quotes the field names): each is read the same.
LABELS = {
    "as asked": lambda label: label,
    "quoted": lambda label: label.replace(b"FROM TO CC BCC MESSAGE-ID DATE", QUOTED),
    "lower case": lambda label: label.lower(),
    "another list": lambda label: b"BODY[HEADER.FIELDS (FROM TO)]",
    "the whole header": lambda label: b"BODY[HEADER]",
}


def fake_reader(raws, sections):
    """A MailboxReader on a FakeImapServer that answers the header FETCH through ``sections``."""
    fake = FakeImapServer(messages=raws, sections=sections).start()
    server = connection.Server("localhost", fake.port, "ssl")
    client = connection.open_imap(
        server, "u", "p", ca_file=fake.ca_file, allow_private=True, timeout=imapclient.SocketTimeout(5, 5)
    )
    mailbox = reader.MailboxReader(client)
    mailbox.open(reader.INBOX)
    return fake, mailbox


@pytest.mark.parametrize("relabel", LABELS.values(), ids=LABELS)
def test_every_label_of_the_header_is_read_the_same(relabel):
    raws = [message(n, To="carla@example.com") for n in range(3)]
    fake, mailbox = fake_reader(
        raws, lambda folder, uid, label, content: relabel(label) + b" {%d}\r\n%s" % (len(content), content)
    )
    try:
        headers, unread = mailbox.headers([1, 2, 3])
    finally:
        mailbox.client.logout()
        fake.stop()
    assert unread == []
    assert [h.message_id for h in headers] == [f"<mail-{n}@example.test>" for n in range(3)]
    assert all(h.recipients == {"carla@example.com"} for h in headers)
    assert all(h.senders == {"anna.recruiter@example.test"} for h in headers)


def test_a_mail_answered_without_its_header_is_unread_not_a_mail_without_addresses():
    raws = [message(n, To="carla@example.com") for n in range(5)]
    answers = {
        2: lambda label, content: label + b" NIL",  # NIL
        3: lambda label, content: b"",  # no header section at all
        4: lambda label, content: None,  # the mail left out of the answer, though still there
    }

    def sections(folder, uid, label, content):
        if uid in answers:
            return answers[uid](label, content)
        return label + b" {%d}\r\n%s" % (len(content), content)

    fake, mailbox = fake_reader(raws, sections)
    try:
        headers, unread = mailbox.headers([1, 2, 3, 4, 5, 9])  # 9: gone (deleted meanwhile)
    finally:
        mailbox.client.logout()
        fake.stop()
    assert [h.uid for h in headers] == [1, 5]
    assert unread == [2, 3, 4]


def test_a_mail_deleted_between_headers_and_bodies_is_left_out(dovecot, login, mailbox):
    uids = [dovecot.append(login, reader.INBOX, message(n)) for n in range(3)]
    mailbox.open(reader.INBOX)
    assert len(mailbox.headers(uids).headers) == 3
    with dovecot.client(login) as other:  # the recruiter deletes one, in their mail program
        other.select_folder(reader.INBOX)
        other.delete_messages(uids[1:2])
        other.expunge()
    assert list(mailbox.messages(uids)) == [uids[0], uids[2]]


# ----------------------------------------------------------------------
# a mail too large to fetch whole: its text only
# ----------------------------------------------------------------------

VIDEO = bytes(range(256)) * 1200  # 300 KB
PDF = b"%PDF-1.4 " + b"p" * 3000


def large_mail():
    """Text and HTML (multipart/alternative) with three attachments, one a forwarded mail."""
    mail = EmailMessage()
    mail["From"] = "Carla <carla@example.org>"
    mail["To"] = "anna.recruiter@example.test"
    mail["Subject"] = "My portfolio"
    mail["Message-ID"] = "<large-1@example.org>"
    mail.set_content("Dear Anna, my portfolio is attached.\n")
    mail.add_alternative("<p>Dear Anna, my <b>portfolio</b> is attached.</p>\n", subtype="html")
    mail.add_attachment(VIDEO, maintype="video", subtype="mp4", filename="Portfolio Carla.mp4")
    mail.add_attachment(PDF, maintype="application", subtype="pdf", filename="cv-ö.pdf")
    forwarded = EmailMessage()
    forwarded["Subject"] = "Reference"
    forwarded.set_content("She is great.\n")
    mail.add_attachment(forwarded)
    return mail.as_bytes(policy=email.policy.SMTP)  # CRLF, as the server counts it


def spy_on_fetch(mailbox, monkeypatch):
    """The items of each FETCH the reader sends."""
    fetched = []
    fetch = mailbox.client.fetch

    def spy(uids, items):
        fetched.append([item.decode() if isinstance(item, bytes) else item for item in items])
        return fetch(uids, items)

    monkeypatch.setattr(mailbox.client, "fetch", spy)
    return fetched


def test_text_only_fetches_the_text_and_names_what_is_left_out(dovecot, login, mailbox, monkeypatch):
    raw = large_mail()
    uid = dovecot.append(login, reader.INBOX, raw)
    mailbox.open(reader.INBOX)
    fetched = spy_on_fetch(mailbox, monkeypatch)

    text = mailbox.text_only(uid, 1024 * 1024)

    parsed = email.message_from_bytes(text.raw, policy=email.policy.default)
    assert parsed["Subject"] == "My portfolio"
    assert parsed["Message-ID"] == "<large-1@example.org>"
    assert parsed.get_body(("plain",)).get_content().strip() == "Dear Anna, my portfolio is attached."
    assert "<b>portfolio</b>" in parsed.get_body(("html",)).get_content()
    assert list(parsed.iter_attachments()) == []
    assert [(part.name, part.size) for part in text.left_out] == [
        ("Portfolio Carla.mp4", len(VIDEO)),
        ("cv-ö.pdf", len(PDF)),
        ("message/rfc822", text.left_out[2].size),
    ]
    assert (text.size, text.limit) == (len(raw), 1024 * 1024)
    assert len(text.raw) < 3000
    # Never the whole mail nor an attachment: the structure, MIME headers, then the two texts.
    assert fetched == [
        ["BODYSTRUCTURE", "BODY.PEEK[HEADER]", "RFC822.SIZE"],
        [f"BODY.PEEK[{section}.MIME]" for section in ("1", "1.1", "1.2", "2", "3", "4")],
        ["BODY.PEEK[1.1]", "BODY.PEEK[1.2]"],
    ]
    assert visible_flags(dovecot, login, [uid]) == {uid: set()}


def test_text_only_leaves_out_text_beyond_the_limit(dovecot, login, mailbox):
    uid = dovecot.append(login, reader.INBOX, large_mail())
    mailbox.open(reader.INBOX)
    html = len(b"<p>Dear Anna, my <b>portfolio</b> is attached.</p>\r\n")
    text = mailbox.text_only(uid, html + 10)  # room for the plain text only
    parsed = email.message_from_bytes(text.raw, policy=email.policy.default)
    assert parsed.get_body(("plain", "html")).get_content_type() == "text/plain"
    assert parsed.get_body(("html",)) is None
    assert [part.name for part in text.left_out] == [
        "text/html",
        "Portfolio Carla.mp4",
        "cv-ö.pdf",
        "message/rfc822",
    ]


def test_text_only_of_a_mail_that_is_one_attachment_keeps_its_header_only(dovecot, login, mailbox):
    mail = EmailMessage()
    mail["From"] = "carla@example.org"
    mail["Subject"] = "Scan"
    mail.set_content(VIDEO, maintype="application", subtype="pdf", filename="scan.pdf")
    uid = dovecot.append(login, reader.INBOX, mail.as_bytes())
    mailbox.open(reader.INBOX)
    text = mailbox.text_only(uid, 1000)
    parsed = email.message_from_bytes(text.raw, policy=email.policy.default)
    assert parsed["Subject"] == "Scan"
    # The header no longer announces a PDF: nothing reads the empty body as a file.
    assert parsed.get_content_type() == "text/plain"
    assert "pdf" not in text.raw.decode().lower()
    assert parsed.get_content().strip() == ""
    assert [(part.name, part.size) for part in text.left_out] == [("scan.pdf", len(VIDEO))]


def test_text_only_of_a_mail_deleted_meanwhile_is_none(dovecot, login, mailbox):
    uid = dovecot.append(login, reader.INBOX, large_mail())
    mailbox.open(reader.INBOX)
    with dovecot.client(login) as other:
        other.select_folder(reader.INBOX)
        other.delete_messages([uid])
        other.expunge()
    assert mailbox.text_only(uid, 1000) is None
