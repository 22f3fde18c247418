"""The fault tools of the harness (proxy.FaultProxy, proxy.FakeImapServer, corpus) against a real Dovecot.

No Odoo, no database: open_imap and MailboxReader go through the proxy to
Dovecot, and each fault shows up as the error a sync would see. Every wait is
bounded; nothing here measures time.
"""

import email
import re
import threading
import time

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError

from harness import corpus
from harness.dovecot import Dovecot
from harness.proxy import At, FakeImapServer, FaultProxy, client_record_after, exchanges
from mailbox_client import connection, errors, reader
from mailbox_client.header_fetch import HEADER_FIELDS

PASSWORD = "Tr0ub4dor&3-horse"
TIMEOUT = imapclient.SocketTimeout(5, 5)
SHORT = imapclient.SocketTimeout(0.5, 0.5)
POOL = 40
SENDER, RECIPIENT = "candidate@example.org", "anna.recruiter@example.test"
# Three mails in the reading user's INBOX; the last one spans many TLS records.
MAILS = [
    (
        f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nCc: Other <other@example.test>\r\n"
        f"Message-ID: <fault-{n}@example.test>\r\nDate: Mon, 02 Jun 2025 09:3{n}:00 +0200\r\n"
        f"Subject: Mail {n}\r\n\r\n"
    ).encode()
    + body
    for n, body in enumerate([b"Short.\r\n", b"Also short.\r\n", b"0123456789abcdef\r\n" * 6000])
]
# The corpus, built once with a fixed token so that parametrized ids are stable.
CORPUS = corpus.hostile_corpus(SENDER, RECIPIENT, token="faults")
MESSAGE_ID = re.compile(rb"(?im)^Message-ID:[ \t]*(\S.*?)\r?$")
# Corpus mails on which MailboxReader.headers raises today: a raw 8-bit Message-ID comes out of
# the compat32 parser as an email.header.Header, which has no strip(). Fixing the reader empties it.
KNOWN_HEADER_CRASHES = set()  # 8-bit Message-IDs crashed MailboxReader.headers once
# Steps of a sync, in order: (name, what it does with a MailboxReader).
STEPS = [
    ("status", lambda mailbox, uids: mailbox.status("INBOX")),
    ("open", lambda mailbox, uids: mailbox.open("INBOX")),
    ("search", lambda mailbox, uids: uids.extend(mailbox.uids_after(0)) or list(uids)),
    ("headers", lambda mailbox, uids: mailbox.headers(uids)),
    ("messages", lambda mailbox, uids: mailbox.messages(uids)),
]


@pytest.fixture(scope="module")
def dovecot():
    users = {f"user{n}@example.test": PASSWORD for n in range(POOL)}
    users["reader@example.test"] = PASSWORD
    with Dovecot(users) as server:
        for raw in MAILS:
            server.append("reader@example.test", "INBOX", raw)
        yield server


@pytest.fixture(scope="module")
def fresh_logins(dovecot):
    return iter(login for login in dovecot.users if login.startswith("user"))


@pytest.fixture
def login(fresh_logins):
    return next(fresh_logins)


@pytest.fixture
def proxy(dovecot):
    before = set(threading.enumerate())
    with FaultProxy(("127.0.0.1", dovecot.ssl_port)) as running:
        yield running
    assert not [thread for thread in threading.enumerate() if thread not in before and thread.is_alive()]


def connect(port, ca_file, login="reader@example.test", password=PASSWORD, timeout=TIMEOUT):
    """open_imap to localhost:``port`` (the proxy's or a fake's), checking the certificate."""
    return connection.open_imap(
        connection.Server("localhost", port, "ssl"),
        login,
        password,
        ca_file=ca_file,
        timeout=timeout,
        allow_private=True,
    )


def run_steps(client, upto=None, marks=None, proxy=None):
    """The sync's steps on ``client``; ``marks`` gets proxy.mark() taken before each step."""
    mailbox, uids, results = reader.MailboxReader(client), [], {}
    for name, step in STEPS:
        if name == upto:
            break
        if marks is not None:
            marks[name] = proxy.mark(name)
        results[name] = step(mailbox, uids)
    return results


def close(client):
    try:
        client.logout()
    except (IMAPClientError, OSError):
        client.shutdown()


def learn_marks(proxy, dovecot):
    """A clean session through ``proxy``: the Mark of each step, plus "after_login"."""
    marks = {}
    client = connect(proxy.port, dovecot.ca_file)
    marks["after_login"] = proxy.mark("after_login")
    run_steps(client, marks=marks, proxy=proxy)
    close(client)
    return marks


# ----------------------------------------------------------------------
# Clean proxying
# ----------------------------------------------------------------------


def test_clean_proxying_gives_what_a_direct_connection_gives(dovecot, proxy):
    direct = connect(dovecot.ssl_port, dovecot.ca_file)
    expected = run_steps(direct)
    close(direct)
    proxied = connect(proxy.port, dovecot.ca_file)
    assert proxied.socket().getpeercert()["subjectAltName"]  # Dovecot's certificate, checked for localhost
    got = run_steps(proxied)
    close(proxied)
    assert got == expected
    assert [len(raw) for raw in got["messages"].values()] == [len(raw) for raw in MAILS]
    assert proxy.stats()["accepted"] == 1
    assert proxy.wait_closed(5)


def test_records_marks_and_exchanges_name_the_commands(dovecot, proxy):
    marks = learn_marks(proxy, dovecot)
    records = proxy.record()
    client_sizes = [nbytes for direction, nbytes in records if direction == "client"]
    # CAPABILITY then LOGIN, one record each; TLS 1.3 adds 22 bytes to a command's length.
    assert marks["after_login"].client_record == 3
    assert client_sizes[0] == len(b"ABCD1 CAPABILITY\r\n") + 5 + 17  # imaplib tags: 4 letters, a number
    # Marks count what imaplib sent before each step: one record per command...
    assert marks["open"].client_record == marks["status"].client_record + 1
    assert marks["messages"].client_record == marks["headers"].client_record + 1
    # ...and the header FETCH is the long one.
    header_fetch = client_sizes[marks["headers"].client_record - 1]
    body_fetch = client_sizes[marks["messages"].client_record - 1]
    header_items = len(HEADER_FIELDS) + len(b" INTERNALDATE RFC822.SIZE")
    assert header_fetch - body_fetch == header_items - len(b"BODY.PEEK[]")
    # Exchanges: one per client turn; the k after n exchanges is the (n+1)-th turn's first record.
    turns = exchanges(records)
    assert sum(len(turn.client) for turn in turns) == len(client_sizes)
    assert client_record_after(records, 0) == 1
    assert client_record_after(records, 2) == marks["after_login"].client_record
    # Handshake records are kept apart: the ClientHello comes first.
    assert proxy.record(handshake=True)[0].direction == "client"
    assert len(proxy.record(handshake=True)) > len(records)


# ----------------------------------------------------------------------
# Cuts
# ----------------------------------------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_cut_during_tls_handshake(dovecot, proxy, reset):
    shot = proxy.cut_at(At.server_bytes(1), reset=reset)
    with pytest.raises(errors.ServerUnreachable):
        connect(proxy.port, dovecot.ca_file)
    assert shot.wait(5)
    assert proxy.stats()["server_bytes"] == 1


def test_cut_during_login(dovecot, proxy):
    login_record = learn_marks(proxy, dovecot)["after_login"].client_record - 1
    shot = proxy.cut_at(At.client_record(login_record))
    # Not a wrong password (which would stop the mailbox): trouble that is retried.
    with pytest.raises(errors.ServerUnreachable) as info:
        connect(proxy.port, dovecot.ca_file)
    assert info.value.definitive is False
    assert shot.wait(5)
    assert shot.connection == 1


@pytest.mark.parametrize("step", ["headers", "messages"], ids=["header_fetch", "body_fetch"])
def test_cut_when_the_client_sends_a_fetch(dovecot, proxy, step):
    k = learn_marks(proxy, dovecot)[step].client_record
    shot = proxy.cut_at(At.client_record(k))
    client = connect(proxy.port, dovecot.ca_file)
    mailbox, uids = reader.MailboxReader(client), []
    try:
        for name, action in STEPS:
            if name == step:
                break
            action(mailbox, uids)  # every step before this one works
        assert not shot.fired.is_set()
        with pytest.raises((IMAPClientError, OSError)):
            dict(STEPS)[step](mailbox, uids)
    finally:
        client.shutdown()
    assert shot.wait(5)


def test_cut_inside_the_body_answer(dovecot, proxy):
    """A cut 20 KB into the server's answer to the body FETCH (the big mail spans many records)."""
    mark = learn_marks(proxy, dovecot)["messages"]
    shot = proxy.cut_at(At.server_bytes(mark.server_bytes + 20_000))
    client = connect(proxy.port, dovecot.ca_file)
    try:
        results = run_steps(client, upto="messages")
        with pytest.raises((IMAPClientError, OSError)):
            reader.MailboxReader(client).messages(results["search"])
    finally:
        client.shutdown()
    assert shot.wait(5)


def test_one_shot_armed_on_an_open_connection(dovecot, proxy):
    client = connect(proxy.port, dovecot.ca_file)
    mailbox = reader.MailboxReader(client)
    assert mailbox.status("INBOX").uidnext == len(MAILS) + 1
    mark = proxy.mark()
    shot = proxy.cut_at(At.client_record(mark.client_record), on=mark.connection)  # the next command
    with pytest.raises((IMAPClientError, OSError)):
        mailbox.status("INBOX")
    client.shutdown()
    assert shot.wait(5)
    # Used up: the next connection goes through.
    again = connect(proxy.port, dovecot.ca_file)
    assert reader.MailboxReader(again).status("INBOX").uidnext == len(MAILS) + 1
    close(again)


def test_cut_all_while_connections_are_open(dovecot, proxy, login):
    clients = [connect(proxy.port, dovecot.ca_file), connect(proxy.port, dovecot.ca_file, login)]
    assert proxy.open_connections() == 2
    proxy.cut_all()
    assert proxy.open_connections() == 0
    for client in clients:
        with pytest.raises((IMAPClientError, OSError)):
            reader.MailboxReader(client).status("INBOX")
        client.shutdown()
    fresh = connect(proxy.port, dovecot.ca_file)
    close(fresh)


def test_cut_on_a_plaintext_line(dovecot):
    """Before STARTTLS the commands are in clear: a line trigger finds them."""
    with FaultProxy(("127.0.0.1", dovecot.starttls_port)) as proxy:
        shot = proxy.cut_at(At.client_line(b"STARTTLS"))
        with pytest.raises(errors.ServerUnreachable):
            connection.open_imap(
                connection.Server("localhost", proxy.port, "starttls"),
                "reader@example.test",
                PASSWORD,
                ca_file=dovecot.ca_file,
                timeout=TIMEOUT,
                allow_private=True,
            )
        assert shot.wait(5)
        assert proxy.record() == []  # no TLS record: the connection never got that far


# ----------------------------------------------------------------------
# Black hole, stall, trickle, refusal
# ----------------------------------------------------------------------


def test_black_hole_times_out_the_connection(dovecot, proxy):
    proxy.blackhole()
    with pytest.raises(errors.ServerUnreachable):
        connect(proxy.port, dovecot.ca_file, timeout=SHORT)
    assert proxy.stats()["dropped_server_bytes"] > 0


def test_black_hole_on_an_open_connection(dovecot, proxy):
    client = connect(proxy.port, dovecot.ca_file, timeout=SHORT)
    mailbox = reader.MailboxReader(client)
    mailbox.status("INBOX")
    proxy.blackhole()
    with pytest.raises((IMAPClientError, OSError)):
        mailbox.status("INBOX")
    client.shutdown()
    proxy.pass_through()
    fresh = connect(proxy.port, dovecot.ca_file)
    close(fresh)


def test_one_shot_black_hole_at_the_header_fetch(dovecot, proxy):
    k = learn_marks(proxy, dovecot)["headers"].client_record
    shot = proxy.arm(At.client_record(k), "blackhole")
    client = connect(proxy.port, dovecot.ca_file, timeout=SHORT)
    try:
        results = run_steps(client, upto="headers")
        with pytest.raises((IMAPClientError, OSError)):
            reader.MailboxReader(client).headers(results["search"])
    finally:
        client.shutdown()
    assert shot.wait(5)


def test_trickle_is_slow_but_complete(dovecot, proxy):
    direct = connect(dovecot.ssl_port, dovecot.ca_file)
    expected = run_steps(direct)
    close(direct)
    proxy.trickle(nbytes=1024, interval=0.001)
    client = connect(proxy.port, dovecot.ca_file)
    got = run_steps(client)
    close(client)
    assert got == expected
    stats = proxy.stats()
    assert stats["largest_client_write"] <= 1024
    assert stats["server_bytes"] > 100_000


def test_stall_holds_the_answer_until_released(dovecot, proxy):
    client = connect(proxy.port, dovecot.ca_file)
    mailbox = reader.MailboxReader(client)
    expected = mailbox.status("INBOX")
    proxy.stall()
    sent = proxy.mark().client_record
    answers = []
    worker = threading.Thread(target=lambda: answers.append(mailbox.status("INBOX")))
    worker.start()
    deadline = time.monotonic() + 5
    while proxy.mark().client_record == sent and time.monotonic() < deadline:
        time.sleep(0.01)  # until the command went through the proxy
    assert proxy.mark().client_record == sent + 1
    assert not answers
    proxy.pass_through()
    worker.join(5)
    assert answers == [expected]
    close(client)


@pytest.mark.parametrize("reset", [False, True], ids=["close", "rst"])
def test_refused_connections(dovecot, proxy, reset):
    proxy.refuse(reset=reset)
    with pytest.raises(errors.ServerUnreachable):
        connect(proxy.port, dovecot.ca_file)
    assert proxy.stats()["refused"] == 1
    proxy.refuse(False)
    client = connect(proxy.port, dovecot.ca_file)
    close(client)


def test_cut_at_accept_refuses_one_connection(dovecot, proxy):
    shot = proxy.cut_at(At.accept())
    with pytest.raises(errors.ServerUnreachable):
        connect(proxy.port, dovecot.ca_file)
    assert shot.wait(5)
    client = connect(proxy.port, dovecot.ca_file)
    close(client)


def test_stop_returns_with_connections_open_and_leaves_no_thread(dovecot):
    before = set(threading.enumerate())
    proxy = FaultProxy(("127.0.0.1", dovecot.ssl_port)).start()
    client = connect(proxy.port, dovecot.ca_file, timeout=SHORT)
    proxy.stall()
    proxy.stop()
    assert not [thread for thread in threading.enumerate() if thread not in before and thread.is_alive()]
    with pytest.raises((IMAPClientError, OSError)):
        reader.MailboxReader(client).status("INBOX")
    client.shutdown()
    proxy.stop()  # twice is fine


# ----------------------------------------------------------------------
# FakeImapServer: what only a server can say
# ----------------------------------------------------------------------


@pytest.fixture
def fake():
    before = set(threading.enumerate())
    server = FakeImapServer(messages=MAILS, users={"reader@example.test": PASSWORD}).start()
    yield server
    server.stop()
    assert not [thread for thread in threading.enumerate() if thread not in before and thread.is_alive()]


def test_fake_server_serves_a_whole_sync(dovecot, fake):
    direct = connect(dovecot.ssl_port, dovecot.ca_file)
    expected = run_steps(direct)
    close(direct)
    client = connect(fake.port, fake.ca_file)
    got = run_steps(client)
    close(client)
    assert got["status"].uidnext == expected["status"].uidnext
    assert got["search"] == expected["search"]
    assert [(h.uid, h.message_id, h.senders, h.recipients) for h in got["headers"].headers] == [
        (h.uid, h.message_id, h.senders, h.recipients) for h in expected["headers"].headers
    ]
    assert got["headers"].unread == expected["headers"].unread == []
    assert got["messages"] == expected["messages"]
    assert fake.commands[:2] == ["CAPABILITY", "LOGIN"]
    assert fake.commands[-3:] == ["UID FETCH", "UID FETCH", "LOGOUT"]


def test_fake_server_checks_passwords(fake):
    with pytest.raises(errors.AuthenticationFailed):
        connect(fake.port, fake.ca_file, password="wrong")


def test_fake_server_bye_greeting(fake):
    fake.script = {"GREETING": "* BYE [UNAVAILABLE] Too many connections"}
    with pytest.raises(errors.ServerUnreachable):
        connect(fake.port, fake.ca_file)


def test_fake_server_login_unavailable(fake):
    fake.script = {"LOGIN": "NO [UNAVAILABLE] Maintenance, try again later"}
    # UNAVAILABLE is temporary: retried, never taken for a wrong password.
    with pytest.raises(errors.ServerUnreachable) as info:
        connect(fake.port, fake.ca_file)
    assert info.value.definitive is False
    assert fake.commands == ["CAPABILITY", "LOGIN"]


def test_fake_server_login_that_never_answers(fake):
    fake.script = {"LOGIN": "hang"}
    with pytest.raises(errors.ServerUnreachable):
        connect(fake.port, fake.ca_file, timeout=SHORT)


@pytest.mark.parametrize(
    ("command", "answer", "failing_step"),
    [
        ("LOGIN", ("normal", "* BYE Server shutting down"), "status"),
        ("EXAMINE", "* BYE [UNAVAILABLE] Server shutting down", "open"),
        ("SEARCH", "NO [UNAVAILABLE] Try again", "search"),
        ("FETCH", "* BYE Server shutting down", "headers"),
        ("FETCH", "close", "headers"),
    ],
    ids=["bye_after_login", "bye_on_examine", "no_on_search", "bye_on_fetch", "hang_up_on_fetch"],
)
def test_fake_server_refuses_at_a_step(fake, command, answer, failing_step):
    fake.script = {command: answer}
    client = connect(fake.port, fake.ca_file)
    mailbox, uids = reader.MailboxReader(client), []
    try:
        for name, step in STEPS:
            if name == failing_step:
                with pytest.raises((IMAPClientError, OSError)):
                    step(mailbox, uids)
                break
            step(mailbox, uids)
    finally:
        client.shutdown()


# ----------------------------------------------------------------------
# The hostile corpus
# ----------------------------------------------------------------------


def test_corpus_is_big_and_well_labelled():
    names = [name for name, _raw, _expectation in CORPUS]
    assert len(names) >= 60
    assert len(set(names)) == len(names)
    for name, raw, expectation in CORPUS:
        assert isinstance(raw, bytes), name
        assert expectation.startswith(("logged", "skipped", "refused by Dovecot")), name
        assert SENDER.encode() in raw.lower(), name
    # Message-IDs are unique but for the cases about them.
    seen = {}
    for name, raw, expectation in CORPUS:
        if "Message-ID case" in expectation:
            continue
        found = MESSAGE_ID.search(raw)  # the first is the mail's own, before any attached mail's
        assert found, name
        assert found.group(1) not in seen, (name, seen.get(found.group(1)))
        seen[found.group(1)] = name
    # A fresh token by default: two corpora share no Message-ID.
    again = {
        raw
        for _n, raw, expectation in corpus.hostile_corpus(SENDER, RECIPIENT)
        if "Message-ID case" not in expectation
    }
    assert not again & {raw for _n, raw, _e in CORPUS}


@pytest.mark.parametrize(
    ("raw", "expectation"), [case[1:] for case in CORPUS], ids=[case[0] for case in CORPUS]
)
def test_corpus_mail_parses(raw, expectation):
    message = email.message_from_bytes(raw)
    assert [part.get_content_type() for part in message.walk()]
    message.as_bytes()


def test_corpus_appends_to_dovecot_and_reads_back(dovecot, login):
    refused = set()
    for name, raw, _expectation in CORPUS:
        try:
            dovecot.append(login, "INBOX", raw)
        except IMAPClientError:
            refused.add(name)
    assert refused == corpus.APPEND_REFUSED
    assert all(
        expectation.startswith("refused by Dovecot") for name, _r, expectation in CORPUS if name in refused
    )
    # The reader reads them back: headers one by one (to name any that fails), then whole mails.
    names = [name for name, _raw, _expectation in CORPUS if name not in refused]
    client = connect(dovecot.ssl_port, dovecot.ca_file, login)
    try:
        mailbox = reader.MailboxReader(client)
        mailbox.open("INBOX")
        uids = mailbox.uids_after(0)
        assert len(uids) == len(names)
        crashed = set()
        for uid, name in zip(uids, names, strict=True):
            try:
                mailbox.headers([uid])
            except AttributeError:
                crashed.add(name)
        stored = mailbox.messages(uids)
    finally:
        close(client)
    assert crashed == KNOWN_HEADER_CRASHES
    by_name = dict(zip(names, [stored[uid] for uid in uids], strict=True))
    assert len(by_name) == len(names)
    # Dovecot serves a NUL byte as 0x80.
    assert b"NUL \x80," in by_name["body_nul_and_controls"]


def test_big_mail_goes_through_the_proxy(dovecot, proxy, login):
    raw = corpus.big_mail(SENDER, RECIPIENT)
    assert len(raw) > corpus.BIG_SIZE
    attachment = [part for part in email.message_from_bytes(raw).walk() if part.get_filename()]
    assert len(attachment[0].get_payload(decode=True)) == corpus.BIG_SIZE
    dovecot.append(login, "INBOX", raw)
    client = connect(proxy.port, dovecot.ca_file, login, timeout=imapclient.SocketTimeout(5, 30))
    results = run_steps(client)
    close(client)
    assert list(results["messages"].values()) == [raw]
    assert corpus.hostile_corpus(SENDER, RECIPIENT, big=True)[-1][0] == "attachment_25mb"
