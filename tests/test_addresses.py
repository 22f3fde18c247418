"""The pattern for plain header values against Python's address parser: whenever the pattern reads
a value, it finds the same addresses; on the hostile corpus's every header value, and on values
generated from the pieces address parsing trips over."""

import email
import email.policy
import random

import pytest

from harness import corpus
from mailbox_client import addresses

SENDER, RECIPIENT = "candidate@example.org", "anna.recruiter@example.test"
CORPUS = corpus.hostile_corpus(SENDER, RECIPIENT, token="addresses")
ORDINARY = [
    "ann@example.com",
    "Ann <Ann@Example.com>",
    "Ann Smith <ann.smith@example.com>, bob@example.org",
    "anna.recruiter@example.test,\r\n Bob Jones <bob@example.org>,\r\n\tcarl@example.net",
    "<noreply@mailer.example.com>",
    "bounce+srs=abc=example.com@lists.example.org",
    "J. O'Brien-Smith <j_obrien@sub.example.co.uk>",
]
# Values the pattern leaves to the parser: quotes, a comment, 8-bit.
OTHER = ['"Doe, John" <john@example.com>', "Ann (Recruiting) <a@example.com>", "Zoë <z@example.org>"]
# Pieces of generated values: addresses and names, plain or not, and everything around them that
# the parser reads in its own way (quotes, comments, groups, routes, domain literals, encoded
# words, 8-bit); values are entries of those, then maybe one character changed.
PLAIN_ADDRESSES = ["ann@example.com", "Bob.Jones@Example.ORG", "x+tag=1@sub.example.net", "o'hara@example.ie"]
OTHER_ADDRESSES = [
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "a@b",
    "a@-b.example",
    "a@b..example",
    "a@b.example.",
    "a@@b.example",
    "a@b@c.example",
    "@example.com",
    "ann@",
    "ann",
    '"a b"@example.com',
    "e@[1.2.3.4]",
    "@route.example:d@example.com",
    "jörg@example.de",
    "=?utf-8?b?YUBiLmV4YW1wbGU=?=",
    "a@b(comment).example",
]
PLAIN_NAMES = ["", "Ann", "Ann Smith", "J. O'Brien-Smith", "Ann\r\n Smith", "a.b", "J."]
OTHER_NAMES = [
    "-x",
    "_y",
    ".dot",
    '"Doe, John"',
    "Doe, John",
    "Ann (Recruiting)",
    "Team:",
    "=?utf-8?q?J=C3=BCrgen?=",
    "Jörg",
    "\\",
    "Ann;",
]
FORMS = ["{address}", "{name} <{address}>", "{name}<{address}>", " <{address}> ", "{name}  <{address}>\t"]
SEPARATORS = [", ", ",", ",\r\n ", ",\r\n\t", " , ", ",,", ";", " "]
# Characters a value is changed with, one at a time.
SPECIAL = ' \t\r\n"\\()<>[]:;@,.=?!#$%&*+/^_`{|}~\x00\x0b\xe9'


def parser(value):
    """What the sync read before: Python's parser alone."""
    return frozenset(addresses._addresses([value]))


def either(plain, other, rng):
    """Mostly a plain piece, so that whole values of several entries are plain often enough."""
    return rng.choice(other if rng.random() < 0.15 else plain)


def changed(value, rng):
    position = rng.randint(0, len(value))
    if rng.random() < 0.2:
        return value[:position] + value[position + 1 :]
    return value[:position] + rng.choice(SPECIAL) + value[position:]


def generated(count, seed=18):
    rng = random.Random(seed)
    for _ in range(count):
        entries = [
            rng.choice(FORMS).format(
                name=either(PLAIN_NAMES, OTHER_NAMES, rng),
                address=either(PLAIN_ADDRESSES, OTHER_ADDRESSES, rng),
            )
            for _ in range(rng.randint(1, 4))
        ]
        value = entries[0]
        for entry in entries[1:]:
            value += rng.choice(SEPARATORS) + entry
        yield changed(value, rng) if rng.random() < 0.5 else value
    for value in ORDINARY:
        for position in range(len(value) + 1):
            for char in SPECIAL:
                yield value[:position] + char + value[position:]
            yield value[:position] + value[position + 1 :]


def corpus_values():
    for _name, raw, _expectation in CORPUS:
        parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
        for _field, value in parsed.items():
            yield str(value)


def checked(values):
    """Compare both readings on ``values``; the number the pattern read."""
    plain = 0
    for value in values:
        found = addresses.plain_addresses(value)
        if found is not None:
            assert found == parser(value), repr(value)
            plain += 1
    return plain


def test_corpus_header_values():
    values = list(corpus_values())
    assert checked(values) > len(CORPUS)  # From, To and Message-ID of most mails, at least
    assert addresses.plain_addresses(f"Recruiting: {RECIPIENT};") is None  # a group


def test_corpus_addresses_as_before():
    """addresses_in, on each corpus mail's address fields as the reader gives them, finds what
    Python's parser alone found."""
    for _name, raw, _expectation in CORPUS:
        parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
        for field in ("From", "To", "Cc", "Bcc"):
            values = parsed.get_all(field, [])
            before = set().union(*(parser(str(value)) for value in values if value))
            assert addresses.addresses_in(values) == before, (field, values)


def test_generated_values():
    values = list(generated(30000))
    plain = checked(values)
    # Both sides of the line are well represented: many values read by the pattern, many not.
    assert 5000 < plain < len(values) - 5000


@pytest.mark.parametrize("value", ORDINARY)
def test_ordinary_values_skip_the_parser(value, monkeypatch):
    expected = parser(value)
    assert expected
    addresses._parsed.cache_clear()

    def refusing(values):
        raise AssertionError(f"the parser read {values!r}")

    monkeypatch.setattr(addresses, "getaddresses", refusing)
    assert addresses.addresses_in([value]) == expected
    assert addresses.plain_addresses(value) == expected
    addresses._parsed.cache_clear()


def test_other_values_go_to_the_parser():
    for value in OTHER:
        assert addresses.plain_addresses(value) is None
        assert addresses.addresses_in([value]) == parser(value)


def test_a_list_of_addresses_and_domains_names_what_is_neither():
    typed = "doctor@clinic.com\nFamily.org\n@bank.de, Jürgen@bücher.de\n\nbücher.de\n@@@\ngeen adres!!\n"
    typed += "ann@x\nx@y@z.com"
    assert addresses.list_entries(typed) == {
        "doctor@clinic.com",
        "family.org",
        "bank.de",
        "jürgen@bücher.de",
        "bücher.de",
        "@@",
        "geen adres!!",
        "ann@x",
        "x@y@z.com",
    }
    assert addresses.not_listable(typed) == ["@@", "ann@x", "geen adres!!", "x@y@z.com"]
    assert addresses.not_listable("") == addresses.not_listable(None) == []
