"""The FETCH of the header fields mail is matched on, its answer read quicker than imapclient reads it.

imapclient's general response parser reads an answer byte by byte, in Python: two thirds of the
time of this FETCH, and the largest part of a first scan of many mails, went there. The answer
has the same shape mail after mail (a number, three items, the header fields as a literal); an
answer of that shape is read here by patterns (:func:`_read`). Any other answer (NIL or quoted
header fields, items a server adds or names otherwise, an unusual INTERNALDATE) is read by
imapclient's parser itself.

Servers label the header section as RFC 3501 lets them: Dovecot and Cyrus repeat the request
(``BODY[HEADER.FIELDS (FROM TO ...)]``), Courier quotes the field names (``("FROM" "TO" ...)``),
others change their case or name other fields. Whatever its label, the section is given under
:data:`HEADER_KEY` (:func:`_labelled`); a mail whose answer holds none has no value there.
tests/test_header_fetch.py holds both readers side by side on recorded answers of Dovecot, Courier
and Cyrus and on altered ones.
"""

import re
from datetime import datetime, timedelta

from imapclient.datetime_util import parse_to_datetime
from imapclient.exceptions import IMAPClientError
from imapclient.fixed_offset import FixedOffset
from imapclient.imapclient import join_message_ids, seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response
from imapclient.util import to_ints, to_unicode

HEADER_FIELDS = b"BODY.PEEK[HEADER.FIELDS (FROM TO CC BCC MESSAGE-ID DATE)]"
HEADER_KEY = b"BODY[HEADER.FIELDS (FROM TO CC BCC MESSAGE-ID DATE)]"
ITEMS = [HEADER_FIELDS, b"INTERNALDATE", b"RFC822.SIZE"]
# One mail's answer, as imaplib hands it over: "<number> (<items> <header section> {<length>}" with
# the literal, then "<items>)". Items: UID and RFC822.SIZE as numbers imapclient makes ints of
# (no leading zero), INTERNALDATE as a quoted string with no escapes. The header section: the
# fields asked for, in any case, bare or quoted, or others (no parenthesis nor backslash in them).
_ITEM = rb'UID (?:0|[1-9][0-9]*)|RFC822\.SIZE (?:0|[1-9][0-9]*)|INTERNALDATE "[^"\\\r\n]*"'
_SECTION = rb"(?i:BODY\[HEADER\.FIELDS \([^()\\\r\n]*\)\])"
BEFORE = re.compile(rb"(?P<number>[1-9][0-9]*) \((?P<items>(?:(?:%s) )*)%s \{[0-9]+\}" % (_ITEM, _SECTION))
# How imapclient's parser names a header section (it upper-cases the label, quotes kept): any
# BODY[HEADER...] (HEADER, HEADER.FIELDS, .NOT, with or without a partial <origin>) or RFC822.HEADER.
SECTION_LABELS = (b"BODY[HEADER", b"RFC822.HEADER")
AFTER = re.compile(rb"(?P<items>(?: (?:%s))*)\)" % _ITEM)
ITEM = re.compile(rb'(UID|RFC822\.SIZE|INTERNALDATE) (?:"([^"]*)"|([0-9]+))')
# An INTERNALDATE read here (RFC 3501: "dd-Mon-yyyy hh:mm:ss +zzzz"); two-digit or odd years,
# zones of a day or more, any other form go to imapclient.
MONTHS = {
    month: number
    for number, month in enumerate(b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)
}
INTERNALDATE = re.compile(
    rb" ?([0-9]{1,2})-(%s)-([1-9][0-9]{3}) ([0-9]{2}):([0-9]{2}):([0-9]{2})"
    rb" ([+-])([01][0-9]|2[0-3])([0-5][0-9])" % b"|".join(MONTHS)
)


def fetch_headers(client, uids):
    """``client.fetch(uids, ITEMS)`` (a logged-in ``IMAPClient`` with a folder open, by UID): the
    same command and the same answer, ``{uid: {item: value}}``."""
    if not uids:
        return {}
    # What IMAPClient.fetch does, through imaplib as IMAPClient does it for other UID commands.
    typ, data = client._imap.uid("FETCH", join_message_ids(uids), seq_to_parenstr_upper(ITEMS))
    if typ != "OK":
        raise IMAPClientError(f"fetch failed: {to_unicode(data[0])}")
    answer = read_answer(data, client.normalise_times)
    # As IMAPClient.fetch: mail the server named unasked (an unsolicited FETCH) is left out.
    return {uid: answer[uid] for uid in to_ints(uids) if uid in answer}


def read_answer(data, normalise=True):
    """The answer to the header FETCH as imaplib hands it over (``data``), read: ``{uid: {item:
    value}}``, the header section under HEADER_KEY (None for NIL) where the server sent one."""
    answer = _read(data, normalise)
    return _labelled(parse_fetch_response(data, normalise, True)) if answer is None else answer


def _labelled(answer):
    """imapclient's ``answer`` with each mail's header section under HEADER_KEY, whatever the
    server labelled it (the first one with a value, when it sent more than one)."""
    for values in answer.values():
        labels = [label for label in values if label.startswith(SECTION_LABELS)]
        sections = [values.pop(label) for label in labels]
        if labels:
            values[HEADER_KEY] = next((section for section in sections if section is not None), None)
    return answer


def _read(data, normalise):
    """``_labelled(parse_fetch_response(data, normalise))`` of an answer whose every mail has the
    usual shape (see BEFORE and AFTER); None for any other."""
    if len(data) % 2:
        return None
    # The system's offset from UTC, read once per answer (imapclient reads it for each mail: the
    # same, but at the very moment the clock changes).
    system = FixedOffset.for_system().utcoffset(None)
    answer = {}
    for head, tail in zip(data[::2], data[1::2], strict=True):
        if not isinstance(head, tuple) or not isinstance(tail, bytes):
            return None
        before, after = BEFORE.fullmatch(head[0]), AFTER.fullmatch(tail)
        if before is None or after is None:
            return None
        items = ITEM.findall(before["items"] + after["items"])
        # An item given twice, or a mail answered twice: the last one counts, as with imapclient.
        values = {name: quoted or number for name, quoted, number in items}
        if len(values) != 3:
            return None  # an item missing
        answer[int(values[b"UID"])] = {
            b"SEQ": int(before["number"]),
            b"INTERNALDATE": _internaldate(values[b"INTERNALDATE"], normalise, system),
            b"RFC822.SIZE": int(values[b"RFC822.SIZE"]),
            HEADER_KEY: head[1],
        }
    return answer


def _internaldate(text, normalise, system):
    """The INTERNALDATE as imapclient gives it: a naive local time (``normalise``, ``system``
    being the local offset from UTC), else with its own time zone; None when unreadable."""
    local = _local(INTERNALDATE.fullmatch(text), system) if normalise else None
    if local is not None:
        return local
    try:
        return parse_to_datetime(text, normalise=normalise)
    except ValueError:
        return None


def _local(found, system):
    """The naive local time of an INTERNALDATE that matched; None when there is no match or no
    such time (31 April, 25 o'clock...): imapclient then says what it makes of it."""
    if found is None:
        return None
    day, month, year, hour, minute, second, sign, zone_hours, zone_minutes = found.groups()
    zone = (int(zone_hours) * 60 + int(zone_minutes)) * (-1 if sign == b"-" else 1)
    try:
        at = datetime(int(year), MONTHS[month], int(day), int(hour), int(minute), int(second))
        return at - timedelta(minutes=zone) + system
    except (ValueError, OverflowError):
        return None
