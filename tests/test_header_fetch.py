"""fetch_headers against IMAPClient.fetch: the same answer, on Dovecot's answers (the hostile corpus,
mail of several arrival times and zones) and on those answers altered the ways a server might
answer otherwise; the patterns read the usual answers themselves."""

import datetime
import re

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError
from imapclient.fixed_offset import FixedOffset
from imapclient.imapclient import join_message_ids, seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response

from harness import corpus
from harness.dovecot import Dovecot
from harness.proxy import FakeImapServer
from mailbox_client import connection, header_fetch, reader

PASSWORD = "Tr0ub4dor&3-horse"
LOGIN = "fetch@example.test"
SENDER, RECIPIENT = "candidate@example.org", "anna.recruiter@example.test"
CORPUS = corpus.hostile_corpus(SENDER, RECIPIENT, token="fetch")
ZONES = [0, 60, -300, 330, -690, 840]  # minutes from UTC
KEY = header_fetch.HEADER_KEY
# What the answers are altered with: (the usual text, what a server might send instead).
ALTERED = [
    (b"UID ", b"uid "),
    (b"UID ", b"UID 0"),
    (b"RFC822.SIZE ", b"RFC822.SIZE 0"),
    (b"INTERNALDATE ", b"FLAGS (\\Seen) INTERNALDATE "),
    (b'INTERNALDATE "', b'INTERNALDATE " '),
    (b" RFC822.SIZE ", b"  RFC822.SIZE "),
    (b"(UID", b"(RFC822.SIZE 1 UID"),
    (b"+0000", b"-0000"),
    (b"+0000", b"+0530"),
    (b"+0000", b"-2359"),
    (b"+0000", b"+2400"),
    (b"+0000", b"+0060"),
    (b"+0000", b"+000"),
    (b"+0000", b"UT"),
    (b"-", b"/"),
    (b"-", b"-"),
]
DATES = [
    b"05-Dec-2026 21:45:26 +0000",
    b" 5-Dec-2026 21:45:26 -0500",
    b"5-Dec-2026 21:45:26 +0530",
    b"05-Dec-2026 21:45:26 -0000",
    b"05-Dec-2026 21:45:26 +2399",
    b"29-Feb-2024 00:00:00 +0100",
    b"29-Feb-2025 00:00:00 +0100",
    b"31-Apr-2026 10:00:00 +0000",
    b"05-Dec-2026 24:00:00 +0000",
    b"05-Dec-2026 23:59:60 +0000",
    b"00-Dec-2026 10:00:00 +0000",
    b"05-Dec-0099 10:00:00 +0000",
    b"05-Dec-99 10:00:00 +0000",
    b"05-dec-2026 10:00:00 +0000",
    b"05-Dez-2026 10:00:00 +0000",
    b"01-Jan-1000 00:00:00 +2359",
    b"31-Dec-9999 23:59:59 -2359",
    b"05-Dec-2026 21.45.26 +0000",
    b"Sat, 5 Dec 2026 21:45:26 +0000",
    b"05-Dec-2026\\ 21:45:26 +0000",
    b"05-Dec-2026 21:45:26 +0000\\",
    b"",
    b"garbage",
]
# The server's local time: minutes from UTC (imapclient reads the system's at every mail).
SYSTEMS = [0, 330, -210]


@pytest.fixture(scope="module")
def dovecot():
    with Dovecot({LOGIN: PASSWORD}) as server:
        with server.client(LOGIN) as client:
            for _name, raw, _expectation in CORPUS:
                client.append(reader.INBOX, raw)
            for number, zone in enumerate(ZONES):
                when = datetime.datetime(
                    2025, 3, 30, 1, 59, 30, tzinfo=datetime.timezone(datetime.timedelta(minutes=zone))
                )
                message = (
                    b"From: Ann <ann@example.com>\r\nTo: bob@example.org\r\nMessage-ID: <z%d@x>\r\n\r\nHi\r\n"
                )
                client.append(reader.INBOX, message % number, msg_time=when)
        yield server


@pytest.fixture
def client(dovecot):
    with dovecot.client(LOGIN) as session:
        session.select_folder(reader.INBOX, readonly=True)
        yield session


def raw_answer(client, uids):
    """imaplib's answer to the header FETCH, as fetch_headers and IMAPClient.fetch read it."""
    typ, data = client._imap.uid("FETCH", join_message_ids(uids), seq_to_parenstr_upper(header_fetch.ITEMS))
    assert typ == "OK"
    return data


def comparable(answer):
    """An answer whose times compare by their fields and zone offset (imapclient's zones of a day or
    more cannot be compared as times); with each value's type."""
    if answer is None:
        return None

    def plain(value):
        if isinstance(value, datetime.datetime) and value.tzinfo:
            return (value.replace(tzinfo=None), value.tzinfo.utcoffset(None))
        return value

    return {uid: {k: (type(v), plain(v)) for k, v in values.items()} for uid, values in answer.items()}


def same_reading(data, normalise=True):
    """_read gives parse_fetch_response's answer (the header section under KEY), or leaves the answer
    to it; whether it read it."""
    expected = header_fetch._labelled(parse_fetch_response(data, normalise, True))
    got = header_fetch._read(data, normalise)
    if got is not None:
        assert comparable(got) == comparable(expected)
    return got is not None


def test_dovecot_answers(client):
    uids = client.search(["ALL"])
    assert len(uids) == len(CORPUS) + len(ZONES)
    expected = client.fetch(uids, header_fetch.ITEMS)
    assert header_fetch.fetch_headers(client, uids) == expected
    assert header_fetch.fetch_headers(client, uids[::7]) == client.fetch(uids[::7], header_fetch.ITEMS)
    assert header_fetch.fetch_headers(client, []) == {}
    # Mail that is no longer there is left out, as IMAPClient leaves it out.
    assert header_fetch.fetch_headers(client, [uids[-1], uids[-1] + 100]) == {uids[-1]: expected[uids[-1]]}
    data = raw_answer(client, uids)
    assert same_reading(data)
    assert same_reading(data, normalise=False)


def test_usual_answers_skip_imapclients_parser(client, monkeypatch):
    uids = client.search(["ALL"])
    expected = client.fetch(uids, header_fetch.ITEMS)

    def refusing(*args):
        raise AssertionError("imapclient's parser read a usual answer")

    monkeypatch.setattr(header_fetch, "parse_fetch_response", refusing)
    assert header_fetch.fetch_headers(client, uids) == expected


def test_altered_answers(client):
    uids = client.search(["ALL"])[-len(ZONES) :]
    data = raw_answer(client, uids)
    read = 0
    for usual, other in ALTERED:
        for position in range(0, len(data), 2):
            head, tail = data[position], data[position + 1]
            for changed in (
                [*data[:position], (head[0].replace(usual, other, 1), head[1]), tail, *data[position + 2 :]],
                [*data[:position], head, tail.replace(usual, other, 1), *data[position + 2 :]],
            ):
                read += same_reading(changed)
                same_reading(changed, normalise=False)
    # NIL or quoted header fields, an unsolicited FETCH, a mail twice, a second literal, no answer.
    literal = b"{%d}" % len(data[0][1])
    for changed in (
        [data[0][0].replace(literal, b"NIL)")],
        [data[0][0].replace(literal, b'"From: a@b.example")')],
        [*data, b"99 (FLAGS (\\Seen))"],
        [*data[:2], *data[:2]],
        [(re.sub(rb"RFC822\.SIZE [0-9]+ ", b"", data[0][0]), data[0][1]), data[1]],
        [(data[0][0].replace(b"(UID", b"(UID 5 UID"), data[0][1]), data[1]],
        [*data, (b"1 (UID 7 " + KEY + b" {3}", b"abc"), (b" X {1}", b"x"), b")"],
        [None],
        [],
    ):
        same_reading(changed)
    assert read > len(ALTERED)  # plenty of the altered answers were still read by the patterns


@pytest.mark.parametrize("date", DATES)
@pytest.mark.parametrize("normalise", [True, False], ids=["local", "zoned"])
@pytest.mark.parametrize("system", SYSTEMS)
def test_internaldates(client, date, normalise, system, monkeypatch):
    monkeypatch.setattr(FixedOffset, "for_system", classmethod(lambda cls: cls(system)))
    uid = client.search(["ALL"])[-1]
    data = raw_answer(client, [uid])
    head = data[0][0].split(b'INTERNALDATE "')
    changed = [(head[0] + b'INTERNALDATE "' + date + b'"' + head[1].split(b'"', 1)[1], data[0][1]), data[1]]
    try:
        parse_fetch_response(changed, normalise, True)
    except Exception as failure:  # noqa: BLE001 - the same failure is expected of fetch_headers
        # A year past 9999 in local time, or an escape before the closing quote: imapclient
        # fails the whole FETCH, and so does fetch_headers, whichever reads the answer.
        with pytest.raises(type(failure)):
            header_fetch._read(changed, normalise) or parse_fetch_response(changed, normalise, True)
        return
    # Read by the patterns unless the quoted date has a backslash (an escape imapclient reads).
    assert same_reading(changed, normalise) is (b"\\" not in date)


def test_a_refused_fetch_raises_as_imapclient_does():
    with FakeImapServer(
        script={"FETCH": "NO [SERVERBUG] Internal error"}, messages=[b"From: a@b.example\r\n\r\n"]
    ) as fake:
        server = connection.Server("localhost", fake.port, "ssl")
        session = connection.open_imap(
            server, "u", "p", ca_file=fake.ca_file, allow_private=True, timeout=imapclient.SocketTimeout(5, 5)
        )
        session.select_folder(reader.INBOX, readonly=True)
        with pytest.raises(IMAPClientError) as imapclients:
            session.fetch([1], header_fetch.ITEMS)
        with pytest.raises(IMAPClientError) as ours:
            header_fetch.fetch_headers(session, [1])
        assert str(ours.value) == str(imapclients.value)
        session.logout()


def test_mail_named_unasked_is_left_out():
    raws = [b"From: Ann <ann@example.com>\r\n\r\nHi\r\n"] * 3
    with FakeImapServer(
        script={"FETCH": ("* 3 FETCH (UID 3 FLAGS (\\Seen))", "normal")}, messages=raws
    ) as fake:
        server = connection.Server("localhost", fake.port, "ssl")
        session = connection.open_imap(
            server, "u", "p", ca_file=fake.ca_file, allow_private=True, timeout=imapclient.SocketTimeout(5, 5)
        )
        session.select_folder(reader.INBOX, readonly=True)
        expected = session.fetch([1, 2], header_fetch.ITEMS)
        assert list(expected) == [1, 2]
        assert header_fetch.fetch_headers(session, [1, 2]) == expected
        session.logout()


def test_fake_server_answers_in_the_order_asked():
    raws = [
        b"From: Ann <ann@example.com>\r\nTo: bob@example.org\r\nMessage-ID: <f%d@x>\r\n\r\nHi\r\n" % n
        for n in range(3)
    ]
    with FakeImapServer(messages=raws) as fake:
        server = connection.Server("localhost", fake.port, "ssl")
        session = connection.open_imap(
            server, "u", "p", ca_file=fake.ca_file, allow_private=True, timeout=imapclient.SocketTimeout(5, 5)
        )
        session.select_folder(reader.INBOX, readonly=True)
        assert header_fetch.fetch_headers(session, [1, 2, 3]) == session.fetch([1, 2, 3], header_fetch.ITEMS)
        _typ, data = session._imap.uid("FETCH", b"1:3", seq_to_parenstr_upper(header_fetch.ITEMS))
        assert data[1].startswith(b" INTERNALDATE")  # the items after the header fields
        assert same_reading(data)
        session.logout()


# ----------------------------------------------------------------------
# Every server's answer: the labels and shapes RFC 3501 allows
# ----------------------------------------------------------------------
HEADER = b"From: Carla <carla@example.com>\r\nTo: anna@recruit.example.test\r\nMessage-ID: <m7@x>\r\n\r\n"
DATE = b'INTERNALDATE "05-Dec-2026 21:45:26 +0000"'
ASKED = b"BODY[HEADER.FIELDS (FROM TO CC BCC MESSAGE-ID DATE)]"


def answer(before, label=ASKED, after=b")", header=HEADER):
    """One mail's answer as imaplib hands it over: the items before the header, its label, the
    header as a literal, the rest."""
    return [(b"%s %s {%d}" % (before, label, len(header)), header), after]


# (what, imaplib's data, the header read: None where the answer holds none)
SHAPES = [
    ("as asked", answer(b"1 (UID 7 RFC822.SIZE 120 " + DATE), HEADER),
    (
        "quoted field names (Courier)",
        answer(
            b"1 (UID 7 RFC822.SIZE 120 " + DATE,
            label=ASKED.replace(
                b"FROM TO CC BCC MESSAGE-ID DATE", b'"FROM" "TO" "CC" "BCC" "MESSAGE-ID" "DATE"'
            ),
        ),
        HEADER,
    ),
    ("lower case", answer(b"1 (uid 7 rfc822.size 120 " + DATE.lower(), label=ASKED.lower()), HEADER),
    (
        "another list than asked",
        answer(b"1 (UID 7 RFC822.SIZE 120 " + DATE, label=b"BODY[HEADER.FIELDS (FROM TO)]"),
        HEADER,
    ),
    ("the whole header", answer(b"1 (UID 7 RFC822.SIZE 120 " + DATE, label=b"BODY[HEADER]"), HEADER),
    ("RFC822.HEADER", answer(b"1 (UID 7 RFC822.SIZE 120 " + DATE, label=b"RFC822.HEADER"), HEADER),
    ("a partial origin", answer(b"1 (UID 7 RFC822.SIZE 120 " + DATE, label=ASKED + b"<0>"), HEADER),
    ("the header first", answer(b"1 (", after=b" UID 7 RFC822.SIZE 120 " + DATE + b")"), HEADER),
    (
        "items between",
        answer(b"1 (UID 7", after=b" FLAGS (\\Seen) MODSEQ (42) RFC822.SIZE 120 " + DATE + b")"),
        HEADER,
    ),
    ("in two answers", [*answer(b"1 (UID 7"), b"1 (UID 7 RFC822.SIZE 120 " + DATE + b")"], HEADER),
    ("an empty header", answer(b"1 (UID 7 RFC822.SIZE 120 " + DATE, header=b""), b""),
    (
        "a quoted string",
        [b"1 (UID 7 RFC822.SIZE 120 " + DATE + b" " + ASKED + b' "From: carla@example.com")'],
        b"From: carla@example.com",
    ),
    ("NIL", [b"1 (UID 7 RFC822.SIZE 120 " + DATE + b" " + ASKED + b" NIL)"], None),
    ("no header section", [b"1 (UID 7 RFC822.SIZE 120 " + DATE + b")"], None),
    ("only the header's label elsewhere", [b"1 (UID 7 RFC822.SIZE 120 " + DATE + b" BODY[TEXT] NIL)"], None),
]


# Answers recorded from each server (tests/test_imap_servers.py prints them): UID FETCH 1 of a mail
# appended at 21:45:26 +0100 on 5 December 2026, its header fields as RECORDED_HEADER.
RECORDED_HEADER = (
    b"From: Carla Candidate <carla@example.org>\r\nTo: Anna Recruiter <anna.recruiter@example.test>\r\n"
    b"Cc: team@example.test\r\nBcc: archive@example.test\r\nDate: Sat, 05 Dec 2026 21:45:26 +0100\r\n"
    b"Message-ID: <raw@example.org>\r\n\r\n"
)
RECORDED = {
    "Dovecot 2.3.19": [
        (
            b'1 (UID 1 INTERNALDATE "05-Dec-2026 20:45:26 +0000" RFC822.SIZE 367 '
            b"BODY[HEADER.FIELDS (FROM TO CC BCC MESSAGE-ID DATE)] {215}",
            RECORDED_HEADER,
        ),
        b")",
    ],
    "Courier-IMAP 5.0.13": [
        (b'1 (BODY[HEADER.FIELDS ("FROM" "TO" "CC" "BCC" "MESSAGE-ID" "DATE")] {215}', RECORDED_HEADER),
        b' INTERNALDATE "05-Dec-2026 20:45:26 +0000" RFC822.SIZE 367 UID 1)',
    ],
    "Cyrus IMAP 3.6.1": [
        (
            b'1 (UID 1 INTERNALDATE " 5-Dec-2026 20:45:26 +0000" RFC822.SIZE 367 '
            b"BODY[HEADER.FIELDS (FROM TO CC BCC MESSAGE-ID DATE)] {215}",
            RECORDED_HEADER,
        ),
        b")",
    ],
}


@pytest.mark.parametrize("data", RECORDED.values(), ids=RECORDED)
def test_each_servers_recorded_answer_is_read_by_the_patterns(data):
    assert len(RECORDED_HEADER) == 215
    read = header_fetch._read(data, True)
    assert (
        read
        == header_fetch.read_answer(data)
        == {
            1: {
                b"SEQ": 1,
                b"INTERNALDATE": datetime.datetime(2026, 12, 5, 20, 45, 26, tzinfo=datetime.timezone.utc)
                .astimezone()
                .replace(tzinfo=None),
                b"RFC822.SIZE": 367,
                KEY: RECORDED_HEADER,
            }
        }
    )
    assert same_reading(data)


@pytest.mark.parametrize(
    ("data", "header"), [shape[1:] for shape in SHAPES], ids=[shape[0] for shape in SHAPES]
)
def test_every_label_and_shape_rfc_3501_allows(data, header):
    read = header_fetch.read_answer(data)
    assert list(read) == [7]
    assert read[7].get(KEY) == header
    assert read[7][b"RFC822.SIZE"] == 120
    assert read[7][b"INTERNALDATE"] == datetime.datetime(
        2026, 12, 5, 21, 45, 26, tzinfo=datetime.timezone.utc
    ).astimezone().replace(tzinfo=None)
    same_reading(data)  # where the patterns read it, as imapclient's parser does


def test_courier_quoted_field_names_are_read_by_the_patterns():
    # Courier labels every answer so: the usual answer of a Courier server, not an odd one.
    data = SHAPES[1][1]
    assert header_fetch._read(data, True) is not None
    assert same_reading(data)
