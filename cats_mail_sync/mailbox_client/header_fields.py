"""The fields of a mail's header, read as Python's compat32 header parser reads them.

A FETCH of HEADER.FIELDS returns a few short fields per mail; tens of thousands of them are
read on a first scan. A plain header, what servers almost always send (ASCII, well-formed
fields, CRLF line ends), is read here by a pattern (:func:`_plain`); anything else (8-bit
bytes, a bare CR or LF, a line that is no field) goes through ``BytesHeaderParser`` itself.
Both give the same values: tests/test_header_fields.py holds them side by side on hostile and
generated headers.
"""

import re
from email import policy
from email.parser import BytesHeaderParser

# A plain header: fields, each a name (printable ASCII but the colon), a colon and its value, maybe
# folded onto lines that start with a space or a tab, every line ending in CRLF; then an empty
# line (the body follows) or nothing.
FIELD = re.compile(r"([\041-\071\073-\176]+):[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)\r\n")
PLAIN_HEADER = re.compile(rf"(?:{FIELD.pattern})*(?:\r\n|\Z)")
_PARSER = BytesHeaderParser(policy=policy.compat32)


def header_fields(raw):
    """``{lower-case field name: [values]}`` of a header (bytes), in the order they come.

    Values are as ``email.message.Message.get_all`` gives them: folded lines kept, CRLF
    included; a value with 8-bit bytes is an ``email.header.Header`` (``str()`` it).
    """
    found = _plain(raw)
    if found is None:
        found = {}
        for name, value in _PARSER.parsebytes(raw).items():
            found.setdefault(name.lower(), []).append(value)
    return found


def _plain(raw):
    """:func:`header_fields` of a plain ASCII header (see PLAIN_HEADER); None for any other.

    The parser reads it as this does (``email.feedparser.FeedParser._parse_headers`` and
    ``email._policybase.Compat32.header_source_parse``): the name is what comes before the
    colon, the value what follows it without its leading blanks and its last line end.
    """
    if not raw.isascii():
        return None
    text = raw.decode("ascii")
    plain = PLAIN_HEADER.match(text)
    if plain is None:
        return None
    found = {}
    for name, value in FIELD.findall(text, 0, plain.end()):
        found.setdefault(name.lower(), []).append(value)
    return found
