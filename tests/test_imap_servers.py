"""Courier-IMAP and Cyrus IMAP as the harness runs them (harness.courier, harness.cyrus), no Odoo.

Each test runs against both, from Debian's packages unpacked by scripts/imap-servers;
without them the harness fails with a RuntimeError that says so (nothing is skipped).
The raw answers to the header FETCH that mailbox_client sends are printed (pytest -s)
and recorded as a property of the test (--junitxml).
"""

import datetime
import os
import re
import socket
import ssl
import time
from email.message import EmailMessage

import imapclient
import pytest

from harness import debian_servers
from harness.courier import Courier
from harness.cyrus import Cyrus

LOGIN = "anna.recruiter@example.test"
PASSWORD = "Tr0ub4dor&3-horse"
# mailbox_client.header_fetch's items, UID named too.
HEADER_FETCH = "(BODY.PEEK[HEADER.FIELDS (FROM TO CC BCC MESSAGE-ID DATE)] INTERNALDATE RFC822.SIZE UID)"
ARRIVAL = datetime.datetime(2026, 12, 5, 21, 45, 26, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))


@pytest.fixture(params=[Courier, Cyrus], ids=["courier", "cyrus"])
def server_class(request):
    return request.param


@pytest.fixture
def server(server_class):
    with server_class({LOGIN: PASSWORD}) as server:
        yield server


def message(subject="Application"):
    mail = EmailMessage()
    mail["From"] = "Carla Candidate <carla@example.org>"
    mail["To"] = "Anna Recruiter <anna.recruiter@example.test>"
    mail["Cc"] = "team@example.test"
    mail["Bcc"] = "archive@example.test"
    mail["Subject"] = subject
    mail["Date"] = "Sat, 05 Dec 2026 21:45:26 +0100"
    mail["Message-ID"] = f"<{subject.lower()}@example.org>"
    mail.set_content("Dear Anna,\n\nplease find my application.\n")
    return mail


def test_starts_within_seconds_and_stops_every_process(server_class):
    started = time.monotonic()
    server = server_class({LOGIN: PASSWORD}).start()
    took = time.monotonic() - started
    print(f"\n{server.name} {server.version} started in {took:.2f} s")
    try:
        client = server.client(LOGIN)  # so that a process serves it too
        pids = debian_servers.process_tree(server.process.pid)
    finally:
        server.stop()
    client.shutdown()
    assert took < 5
    assert len(pids) >= 2  # the daemon, and what serves the client
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert not server.root.exists()


def test_version(server_class):
    server = server_class({LOGIN: PASSWORD})
    server.stop()  # removes its folder; it never started
    package = {Courier: "courier-imap", Cyrus: "cyrus-imapd"}[server_class]
    assert server.version == debian_servers.version(package)
    assert re.fullmatch(r"\d+\.\d+\.\d+", server.version)


def test_tls_with_the_test_certificate(server):
    with server.client(LOGIN) as client:
        # client() checks the certificate against the test CA, for the name "localhost".
        assert client._imap.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert client.folder_exists(server.inbox)
    # The system's CAs do not know the test CA.
    with pytest.raises(ssl.SSLCertVerificationError):
        imapclient.IMAPClient(server.host, port=server.ssl_port, ssl=True)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_older_than_1_2_refused(server):
    context = ssl.create_default_context(cafile=server.ca_file)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError), socket.create_connection((server.host, server.ssl_port)) as sock:
        context.wrap_socket(sock, server_hostname=server.host)


def test_no_login_without_tls(server):
    with socket.create_connection((server.host, server.ssl_port), timeout=5) as sock:
        sock.sendall(f"a1 LOGIN {LOGIN} {PASSWORD}\r\n".encode())
        answer = b""
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    assert b"a1 OK" not in answer


def test_starttls_port(server):
    """starttls_port, as Dovecot's: plain IMAP offering STARTTLS, no sign-in before it."""
    with imapclient.IMAPClient(server.host, port=server.starttls_port, ssl=False, timeout=5) as client:
        assert b"STARTTLS" in client.capabilities()
        with pytest.raises(imapclient.exceptions.LoginError):
            client.login(LOGIN, PASSWORD)
        with pytest.raises(imapclient.exceptions.LoginError):
            client.plain_login(LOGIN, PASSWORD)  # AUTHENTICATE PLAIN
        client.starttls(ssl.create_default_context(cafile=server.ca_file))
        assert client._imap.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.login(LOGIN, PASSWORD)
        assert client.select_folder(server.inbox)[b"EXISTS"] == 0


def test_wrong_password_refused(server):
    server.users[LOGIN] = "not-" + PASSWORD
    with pytest.raises(imapclient.exceptions.LoginError):
        server.client(LOGIN)


def test_append_select_examine(server):
    assert server.append(LOGIN, server.inbox, message("First")) == 1
    assert server.append(LOGIN, server.inbox, message("Second"), date=ARRIVAL) == 2
    assert server.append(LOGIN, server.sent_folder, message("Reply"), flags=[imapclient.SEEN]) == 1
    with server.client(LOGIN) as client:
        inbox = client.select_folder(server.inbox)
        sent = client.select_folder(server.sent_folder, readonly=True)  # EXAMINE
        status = client.folder_status(server.inbox, [b"UIDVALIDITY", b"UIDNEXT"])
    assert inbox[b"EXISTS"] == 2 and sent[b"EXISTS"] == 1
    assert inbox[b"UIDVALIDITY"] == status[b"UIDVALIDITY"] > 0 and sent[b"UIDVALIDITY"] > 0
    assert status[b"UIDNEXT"] == 3
    if isinstance(server, Courier):
        # Courier-IMAP answers SELECT and EXAMINE without UIDNEXT: only STATUS gives it.
        assert b"UIDNEXT" not in inbox and b"UIDNEXT" not in sent
    else:
        assert inbox[b"UIDNEXT"] == 3 and sent[b"UIDNEXT"] == 2


def test_sent_folder_listed(server):
    with server.client(LOGIN) as client:
        folders = {name: flags for flags, _delimiter, name in client.list_folders()}
    assert server.inbox in folders
    # Courier has no SPECIAL-USE; Cyrus flags the folders it makes in lower case.
    expected = set() if isinstance(server, Courier) else {b"\\sent"}
    assert _special_use(folders[server.sent_folder]) == expected


def test_cyrus_sent_without_special_use():
    with Cyrus({LOGIN: PASSWORD}, folders={"Sent": None}) as server, server.client(LOGIN) as client:
        folders = {name: flags for flags, _delimiter, name in client.list_folders()}
    assert server.sent_folder == "Sent"
    assert _special_use(folders["Sent"]) == set()


def test_cyrus_sent_under_another_name():
    with (
        Cyrus({LOGIN: PASSWORD}, folders={"Sent": None, "Outbox mail": "\\Sent"}) as server,
        server.client(LOGIN) as client,
    ):
        folders = {name: flags for flags, _delimiter, name in client.list_folders()}
    assert server.sent_folder == "Outbox mail"
    assert _special_use(folders["Outbox mail"]) == {b"\\sent"}
    assert _special_use(folders["Sent"]) == set()


def test_courier_folders_in_its_namespace():
    with Courier({LOGIN: PASSWORD}, folders={"Sent": None, "Outbox mail": None}) as server:
        with server.client(LOGIN) as client:
            names = {name for _flags, _delimiter, name in client.list_folders()}
        assert names == {"INBOX", "INBOX.Sent", "INBOX.Outbox mail"}
        assert server.sent_folder == "INBOX.Sent"
    with pytest.raises(ValueError, match="SPECIAL-USE"):
        Courier({LOGIN: PASSWORD}, folders={"Sent": "\\Sent"})


def test_no_oauth(server_class):
    with pytest.raises(ValueError, match="OAuth2"):
        server_class({LOGIN: PASSWORD}, oauth=object())


def test_missing_servers_name_the_script(server_class, monkeypatch, tmp_path):
    monkeypatch.setattr(debian_servers, "SERVERS", tmp_path)
    with pytest.raises(RuntimeError, match="scripts/imap-servers"):
        server_class({LOGIN: PASSWORD})


def test_raw_header_fetch(server, record_property):
    """The exact bytes of the answer to mailbox_client's header FETCH, for each server."""
    uid = server.append(LOGIN, server.inbox, message("Raw"), date=ARRIVAL)
    with server.client(LOGIN) as client:
        client.select_folder(server.inbox, readonly=True)
        typ, data = client._imap.uid("FETCH", str(uid), HEADER_FETCH)
    print(f"\n{server.name} {server.version}: {typ} {data!r}")
    record_property("raw_fetch", repr(data))
    assert typ == "OK"
    # The items come in each server's own order, around the headers' literal.
    items = b"".join(part[0] if isinstance(part, tuple) else part for part in data)
    assert items.startswith(b"1 (") and items.endswith(b")")
    assert re.search(rb"\bUID 1\b", items) and b"INTERNALDATE " in items and b"RFC822.SIZE " in items
    headers = data[0][1]
    assert b"Message-ID: <raw@example.org>" in headers and b"Bcc: archive@example.test" in headers


def _special_use(flags):
    """The SPECIAL-USE flags among ``flags``, in lower case (Cyrus's autocreate writes them so)."""
    return {flag.lower() for flag in flags} & {b"\\sent", b"\\drafts", b"\\trash", b"\\junk", b"\\archive"}
