"""Searching a folder for several addresses on the server (MailboxReader.search_addresses), against a
real Dovecot and a server that refuses CHARSET UTF-8 as Exchange does; no Odoo."""

from email.message import EmailMessage

import pytest
from imapclient.exceptions import IMAPClientError

from harness.dovecot import Dovecot
from mailbox_client.reader import ADDRESSES_PER_SEARCH, MailboxReader, any_address, ascii_tail

LOGIN = "anna@agency.example.test"
PASSWORD = "Search-Pa55word-99"


def mail(sender, to, bcc=None):
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if bcc:
        message["Bcc"] = bcc
    message["Subject"] = "Hello"
    message.set_content("Hello")
    return message.as_bytes()


@pytest.fixture(scope="module")
def dovecot():
    with Dovecot({LOGIN: PASSWORD}) as server:
        uids = {}
        for name, raw in (
            ("ann", mail("ann@x.example.nl", LOGIN)),
            ("joann", mail("Jo <JoAnn@X.example.nl>", LOGIN)),
            ("to-bob", mail(LOGIN, "bob@y.example.nl")),
            ("bcc-cleo", mail(LOGIN, "someone@z.example.nl", bcc="cleo@z.example.nl")),
            # A UTF-8 header (RFC 6532), as a mail client of today writes a non-ASCII address.
            (
                "jurgen",
                f"From: jürgen@bank.example.de\r\nTo: {LOGIN}\r\nSubject: Hallo\r\n\r\nHallo\r\n".encode(),
            ),
            ("quoted", mail('"d.k"@quoted.example.nl', LOGIN)),
        ):
            uids[name] = server.append(LOGIN, "INBOX", raw)
        server.uids = uids
        yield server


@pytest.fixture
def reader(dovecot):
    with dovecot.client(LOGIN) as client:
        reader = MailboxReader(client)
        reader.open("INBOX")
        yield reader


def test_nested_ors_are_prefix_and_balanced():
    keys = any_address(["a@x.nl", "b@y.nl"], with_bcc=True)
    assert keys.count("OR") == 7  # 8 keys: 7 ORs
    assert keys[:3] == ["OR", "OR", "OR"]  # balanced: depth 3, not 7
    assert any_address(["a@x.nl"]) == ["OR", "FROM", "a@x.nl", "OR", "TO", "a@x.nl", "CC", "a@x.nl"]


def test_ascii_tail():
    assert ascii_tail("jürgen@bank.example.de") == "rgen@bank.example.de"
    assert ascii_tail("ann@müller.de") == "ller.de"
    assert ascii_tail("ö@x.ü") is None
    assert ascii_tail('"d k"@x.nl') == "@x.nl"


def test_substrings_match_so_headers_must_be_checked(dovecot, reader):
    found = reader.search_addresses(["ann@x.example.nl"], ["UID", "1:*"])
    # The server finds Jo Ann too: the sync checks every hit's headers with its own parser.
    assert found.uids == {dovecot.uids["ann"], dovecot.uids["joann"]}
    assert found.commands == 1


def test_bcc_only_where_asked_and_within_the_uid_range(dovecot, reader):
    assert not reader.search_addresses(["cleo@z.example.nl"], ["UID", "1:*"]).uids
    bcc = reader.search_addresses(["cleo@z.example.nl"], ["UID", "1:*"], with_bcc=True)
    assert bcc.uids == {dovecot.uids["bcc-cleo"]}
    after = dovecot.uids["bcc-cleo"] + 1
    assert not reader.search_addresses(["cleo@z.example.nl"], ["UID", f"{after}:*"], with_bcc=True).uids


def test_many_addresses_few_commands(dovecot, reader):
    addresses = [f"nobody-{n}@pool.example.nl" for n in range(2 * ADDRESSES_PER_SEARCH + 1)] + [
        "bob@y.example.nl"
    ]
    found = reader.search_addresses(addresses, ["UID", "1:*"])
    assert found.uids == {dovecot.uids["to-bob"]}
    assert found.commands == 3


def test_non_ascii_and_quoted_addresses_on_dovecot(dovecot, reader):
    found = reader.search_addresses(["jürgen@bank.example.de", '"d.k"@quoted.example.nl'], ["UID", "1:*"])
    assert found.uids == {dovecot.uids["jurgen"], dovecot.uids["quoted"]}
    assert reader.utf8_search is True
    assert not found.by_tail


class ExchangeLike:
    """A client whose server answers SEARCH as Exchange does: US-ASCII only."""

    def __init__(self, client):
        self.client = client
        self.sent = []

    def search(self, criteria, charset=None):
        self.sent.append((list(criteria), charset))
        if charset:
            raise IMAPClientError(
                "SEARCH command error: NO [BADCHARSET (US-ASCII)] The specified charset is not supported."
            )
        return self.client.search(criteria)


def test_a_server_without_utf8_is_asked_for_the_ascii_end(dovecot):
    with dovecot.client(LOGIN) as client:
        exchange = ExchangeLike(client)
        reader = MailboxReader(exchange)
        client.select_folder("INBOX", readonly=True)
        found = reader.search_addresses(["jürgen@bank.example.de", "ö@x.ü"], ["UID", "1:*"])
        assert found.uids == {dovecot.uids["jurgen"]}
        assert found.by_tail == ["jürgen@bank.example.de"]
        assert found.unsearchable == ["ö@x.ü"]
        assert reader.utf8_search is False
        again = reader.search_addresses(["jürgen@bank.example.de"], ["UID", "1:*"])
        assert again.commands == 1  # UTF-8 is not tried again in this session
        assert [charset for _criteria, charset in exchange.sent] == ["UTF-8", None, None]
