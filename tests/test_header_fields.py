"""header_fields against Python's compat32 header parser: the same fields, values and order, on the
hostile corpus (as written, and as Dovecot returns its header fields) and on generated headers."""

import random

import pytest

from harness import corpus
from harness.dovecot import Dovecot
from mailbox_client import header_fetch, header_fields, reader

SENDER, RECIPIENT = "candidate@example.org", "anna.recruiter@example.test"
PASSWORD = "Tr0ub4dor&3-horse"
CORPUS = corpus.hostile_corpus(SENDER, RECIPIENT, token="fields")
ORDINARY = (
    b"From: Ann Smith <ann@example.com>\r\n"
    b"To: anna.recruiter@example.test,\r\n Bob <bob@example.org>\r\n"
    b"Cc: carl@example.net\r\n"
    b"Message-ID: <m-1@example.com>\r\n"
    b"Date: Mon, 02 Jun 2025 09:30:00 +0200\r\n"
    b"\r\n"
)
# Pieces of generated headers: fields, folds, Unix "From " lines, lines the parser drops or stops
# at, 8-bit bytes; each ends in CRLF mostly, else in a bare LF or CR, or not at all.
LINES = [
    b"From: ann@example.com",
    b"from: Ann <ann@example.com>",
    b"To: a@example.com, B <b@example.org>",
    b"TO:b@example.org",
    b"Cc:",
    b"Cc: \t",
    b"Bcc: hidden@example.net",
    b"Message-ID: <m@example.com>",
    b"Message-Id:   <n@example.com>  ",
    b"Date: Mon, 02 Jun 2025 09:30:00 +0200",
    b" folded@example.com",
    b"\tfolded too",
    b" ",
    b"\t",
    b"From someone@example.com Mon Jun  2 09:30:00 2025",
    b"From : colon@example.com",
    b": no name",
    b":",
    b"Subject   : spaced",
    b"X-Empty:",
    b"X:Y:Z",
    b"!bang: x@example.com",
    b"~Tilde:",
    b"no colon at all",
    b"",
    b"From: J\xf6rg <joerg@example.de>",
    b"To: Z\xc3\xab <zoe@example.org>",
    b"Cc: nul\x00@example.com",
    b"X-Ctl: \x0b\x0c\x1c",
]
ENDS = [b"\r\n"] * 12 + [b"\n", b"\r", b""]


def reference(raw):
    """What the reader read before: compat32's BytesHeaderParser, field by field."""
    parsed = header_fields._PARSER.parsebytes(raw)
    found = {}
    for name, value in parsed.items():
        found.setdefault(name.lower(), []).append(value)
    return found


def same(raw):
    """header_fields(raw) equals the parser's reading: names, order, values and their type."""
    got, expected = header_fields.header_fields(raw), reference(raw)
    assert list(got) == list(expected), raw
    for name, values in expected.items():
        assert [(type(v), str(v)) for v in got[name]] == [(type(v), str(v)) for v in values], raw


def generated(count, seed=18):
    rng = random.Random(seed)
    for _ in range(count):
        lines = rng.choices(LINES, k=rng.randint(0, 7))
        yield b"".join(line + rng.choice(ENDS) for line in lines) + rng.choice([b"", b"\r\n", b"\r\nbody"])


@pytest.mark.parametrize("case", CORPUS, ids=[name for name, _raw, _expectation in CORPUS])
def test_corpus_as_written(case):
    _name, raw, _expectation = case
    same(raw)
    same(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")


def test_corpus_as_dovecot_returns_it():
    login = "fields@example.test"
    with Dovecot({login: PASSWORD}) as dovecot:
        with dovecot.client(login) as client:
            for _name, raw, _expectation in CORPUS:
                client.append(reader.INBOX, raw)
            client.select_folder(reader.INBOX, readonly=True)
            uids = client.search(["ALL"])
            fetched = client.fetch(uids, [header_fetch.HEADER_FIELDS, b"BODY.PEEK[HEADER]"])
    plain = 0
    for uid in uids:
        for key in (header_fetch.HEADER_KEY, b"BODY[HEADER]"):
            raw = fetched[uid][key]
            same(raw)
            plain += header_fields._plain(raw) is not None
    # Most of the corpus is plain ASCII with CRLF: the quick reading was the one tested.
    assert plain > len(uids)


def test_generated_headers():
    plain = 0
    for raw in generated(20000):
        same(raw)
        plain += header_fields._plain(raw) is not None
    assert plain > 5000


def test_ordinary_headers_skip_the_parser(monkeypatch):
    class Refusing:
        def parsebytes(self, raw):
            raise AssertionError("the parser was used for an ordinary header")

    expected = reference(ORDINARY)
    monkeypatch.setattr(header_fields, "_PARSER", Refusing())
    assert header_fields.header_fields(ORDINARY) == expected
    assert expected["to"] == ["anna.recruiter@example.test,\r\n Bob <bob@example.org>"]
    assert header_fields.header_fields(b"") == {}
    with pytest.raises(AssertionError):
        header_fields.header_fields(ORDINARY.replace(b"Ann", b"\xc3\x84nn"))
