"""Hostile mail, built in code: what a sync must survive without stopping.

    for name, raw, expectation in hostile_corpus("cand@example.org", "anna@agency.test"):
        dovecot.append(login, "INBOX", raw)

:func:`hostile_corpus` returns ``(name, raw_bytes, expectation)`` triples: the
names are unique; each mail involves ``sender`` (From, else To or Cc, as the
case says) and is To ``recipient`` unless the case is about those headers; each
has its own Message-ID unless the case is about Message-IDs (its expectation
then says "Message-ID case"). Message-IDs carry ``token`` (a fresh random one
by default), so two corpora never share one. ``expectation`` is a hint of what
a user should see, not a rule: "logged", "logged as original.eml" (the mail
is kept whole as an attachment), "skipped: <why>". Mails Dovecot's APPEND
refuses are in :data:`APPEND_REFUSED` and their expectation starts with
"refused by Dovecot"; so far Dovecot takes them all (NUL bytes included).

:func:`big_mail` builds the 25 MB attachment case on demand (about 34 MB raw);
``hostile_corpus(..., big=True)`` adds it at the end.
"""

import base64
import random
import uuid

CRLF = b"\r\n"
# Names of corpus mails that Dovecot refuses to APPEND (none, as of Dovecot 2.3).
APPEND_REFUSED = frozenset()
BIG_SIZE = 25 * 1024 * 1024


def _b(text):
    return text if isinstance(text, bytes) else text.encode("utf-8")


class _Builder:
    """Makes raw mails for one corpus: default headers, unique Message-IDs."""

    def __init__(self, sender, recipient, token):
        self.sender = sender
        self.recipient = recipient
        self.token = token
        self.cases = []

    def message_id(self, name):
        return f"<{name}.{self.token}@corpus.example.test>"

    def headers(self, name, **given):
        """Header lines (bytes, no line end): defaults, overridden by ``given`` (None drops one).

        Keys use "_" for "-"; a list value gives the header several times.
        """
        fields = {
            "From": self.sender,
            "To": self.recipient,
            "Subject": f"Corpus case {name}",
            "Date": "Mon, 02 Jun 2025 09:30:00 +0200",
            "Message-ID": self.message_id(name),
            "MIME-Version": "1.0",
            "Content-Type": 'text/plain; charset="utf-8"',
            "Content-Transfer-Encoding": "8bit",
        }
        for key, value in given.items():
            fields[key.replace("_", "-").replace("Message-Id", "Message-ID")] = value
        lines = []
        for key, value in fields.items():
            if value is None:
                continue
            for each in value if isinstance(value, list) else [value]:
                lines.append(_b(key) + b": " + _b(each))
        return lines

    def mail(self, name, body=b"Hello,\r\n\r\nA corpus mail.\r\n", eol=CRLF, **headers):
        lines = self.headers(name, **headers)
        return eol.join(lines) + eol + eol + _b(body).replace(CRLF, eol)

    def add(self, name, raw, expectation):
        self.cases.append((name, raw, expectation))


def _multipart(boundary, parts, subtype="mixed", preamble=b"", epilogue=b"", close=True):
    """A multipart body: ``parts`` are (header lines, body) pairs; returns (content type, body)."""
    out = [preamble] if preamble else []
    for part_headers, body in parts:
        out.append(
            b"--" + _b(boundary) + CRLF + b"".join(_b(h) + CRLF for h in part_headers) + CRLF + _b(body)
        )
    if close:
        out.append(b"--" + _b(boundary) + b"--" + CRLF + epilogue)
    content_type = f'multipart/{subtype}; boundary="{boundary}"'
    return content_type, CRLF.join(out)


def _b64(data, width=76):
    encoded = base64.b64encode(data)
    return CRLF.join(encoded[i : i + width] for i in range(0, len(encoded), width)) + CRLF


def _attachment(filename_params, data=b"attachment data\r\n", content_type="application/octet-stream"):
    """Part headers for an attachment; ``filename_params`` is the raw parameter text (may be empty)."""
    sep = "; " if filename_params else ""
    return (
        [
            f"Content-Type: {content_type}{sep}{filename_params.replace('filename', 'name')}",
            f"Content-Disposition: attachment{sep}{filename_params}",
            "Content-Transfer-Encoding: base64",
        ],
        _b64(data),
    )


TEXT_PART = (['Content-Type: text/plain; charset="utf-8"'], b"See the attachment.\r\n")


def _with_attachment(build, name, filename_params, expectation, data=b"attachment data\r\n"):
    content_type, body = _multipart(f"b-{name}", [TEXT_PART, _attachment(filename_params, data)])
    build.add(
        name, build.mail(name, body, Content_Type=content_type, Content_Transfer_Encoding=None), expectation
    )


def _tnef():
    """A small plausible TNEF stream: signature, key, then attributes (level, id, length, data, checksum)."""

    def attribute(level, attr_id, data):
        checksum = sum(data) & 0xFFFF
        return (
            bytes([level])
            + attr_id.to_bytes(4, "little")
            + len(data).to_bytes(4, "little")
            + data
            + checksum.to_bytes(2, "little")
        )

    stream = (0x223E9F78).to_bytes(4, "little") + (0x1234).to_bytes(2, "little")
    stream += attribute(1, 0x00089006, (0x00010000).to_bytes(4, "little"))  # attTnefVersion
    stream += attribute(1, 0x00069007, b"\xe4\x04\x00\x00\x00\x00")  # attOemCodepage
    stream += attribute(1, 0x00078008, b"IPM.Microsoft Mail.Note\x00")  # attMessageClass
    stream += attribute(2, 0x00069002, b"\x00" * 14)  # attAttachRendData
    stream += attribute(2, 0x00018010, b"notes.txt\x00")  # attAttachTitle
    stream += attribute(2, 0x0006800F, b"Meeting notes from the interview.\r\n")  # attAttachData
    return stream


def _calendar(sender, recipient, token):
    return (
        "BEGIN:VCALENDAR\r\nPRODID:-//Corpus//EN\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{token}-interview@corpus.example.test\r\n"
        "DTSTAMP:20250602T073000Z\r\nDTSTART:20250610T080000Z\r\nDTEND:20250610T090000Z\r\n"
        "SUMMARY:Interview\r\n"
        f"ORGANIZER;CN=Organizer:mailto:{sender}\r\n"
        f"ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{recipient}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def _nested(depth, leaf, boundary_prefix):
    """A multipart nested ``depth`` levels with ``leaf`` (header lines, body) inside."""
    part = leaf
    for level in range(depth, 0, -1):
        content_type, body = _multipart(f"{boundary_prefix}{level}", [part])
        part = ([f"Content-Type: {content_type}"], body)
    return part


def _header_cases(build, rng):
    """8-bit, malformed and wrongly encoded headers."""
    sender = build.sender
    mail = build.mail
    add = build.add
    add(
        "subject_raw_latin1",
        mail("subject_raw_latin1", Subject=b"Caf\xe9 r\xe9sum\xe9 \xfcber alles"),
        "logged (subject shown with replacement characters at worst)",
    )
    add(
        "subject_raw_utf8",
        mail("subject_raw_utf8", Subject="Résumé für Zoë — 日本語".encode()),
        "logged",
    )
    add(
        "from_raw_latin1_display_name",
        mail("from_raw_latin1_display_name", From=b'"J\xf6rg M\xfcller" <' + _b(sender) + b">"),
        "logged (matched on the address)",
    )
    add(
        "from_raw_utf8_display_name",
        mail("from_raw_utf8_display_name", From='"Jörg Müller" <'.encode() + _b(sender) + b">"),
        "logged (matched on the address)",
    )
    add(
        "charset_unknown",
        mail(
            "charset_unknown",
            b"Body in an unknown charset: \xe9\xe8\xff\r\n",
            Content_Type="text/plain; charset=x-unknown",
        ),
        "logged (body decoded with replacement characters)",
    )
    add(
        "charset_wrong_utf8_declared_latin1_body",
        mail("charset_wrong_utf8_declared_latin1_body", b"Na\xefve caf\xe9, d\xe9j\xe0 vu.\r\n"),
        "logged (body decoded with replacement characters)",
    )
    add(
        "subject_encoded_unknown_charset",
        mail("subject_encoded_unknown_charset", Subject="=?x-unknown?q?Caf=E9?="),
        "logged",
    )
    add(
        "encoded_word_invalid_base64",
        mail("encoded_word_invalid_base64", Subject="=?utf-8?b?!!!not*base64###?= tail"),
        "logged (subject left encoded or replaced)",
    )
    add(
        "encoded_word_bad_padding",
        mail("encoded_word_bad_padding", Subject="=?utf-8?b?SGVsbG8gV29ybGQ?="),
        "logged",
    )
    nul_subject = base64.b64encode(b"Hello\x00World\x07\x08\x1b[31m red\x7f end").decode()
    add(
        "encoded_subject_nul_and_controls",
        mail("encoded_subject_nul_and_controls", Subject=f"=?utf-8?b?{nul_subject}?="),
        "logged (NUL and control characters removed from the subject)",
    )
    add(
        "header_raw_nul",
        mail("header_raw_nul", Subject=b"Raw NUL \x00 in a header"),
        "logged (NUL removed)",
    )
    add(
        "body_nul_and_controls",
        mail("body_nul_and_controls", b"Text with NUL \x00, BEL \x07, ESC \x1b[2J, DEL \x7f.\r\n"),
        "logged (Dovecot serves NUL as 0x80; control characters removed from the shown text)",
    )
    add(
        "encoded_word_in_from_display_name",
        mail("encoded_word_in_from_display_name", From=f"=?utf-8?q?Z=C3=B6e_=22Z=22_D=C3=BCrr?= <{sender}>"),
        "logged",
    )
    add(
        "from_address_itself_encoded",
        mail(
            "from_address_itself_encoded",
            From="=?utf-8?b?" + base64.b64encode(_b(sender)).decode() + "?=",
            Cc=sender,
        ),
        "logged (matched through Cc; an encoded address is no address)",
    )
    header_lines = build.headers("header_without_colon")
    header_lines.insert(2, b"This line has no colon at all")
    add(
        "header_without_colon",
        CRLF.join(header_lines) + CRLF + CRLF + b"Body.\r\n",
        "logged (parsers may treat the rest as body: From/To come first)",
    )
    add(
        "header_continuation_first",
        b" folded continuation before any header\r\n"
        + CRLF.join(build.headers("header_continuation_first"))
        + CRLF * 2
        + b"Body.\r\n",
        "logged or skipped: headers may not be found",
    )
    add(
        "header_space_before_colon",
        CRLF.join(
            line.replace(b"Subject:", b"Subject   :") for line in build.headers("header_space_before_colon")
        )
        + CRLF * 2
        + b"Body.\r\n",
        "logged",
    )
    add(
        "many_headers",
        mail("many_headers", X_Corpus_Filler=[f"filler {i}" for i in range(3000)]),
        "logged",
    )


def _message_id_cases(build, rng):
    """Message-IDs."""
    token = build.token
    mail = build.mail
    add = build.add
    add(
        "message_id_missing",
        mail("message_id_missing", Message_ID=None),
        "logged (Message-ID case: none; dedup falls back on folder/UID)",
    )
    add(
        "message_id_duplicated_header",
        mail(
            "message_id_duplicated_header",
            Message_ID=[
                build.message_id("message_id_duplicated_header"),
                f"<second.{token}@corpus.example.test>",
            ],
        ),
        "logged once (Message-ID case: two different Message-ID headers; the first counts)",
    )
    same = build.message_id("message_id_duplicated_same")
    add(
        "message_id_duplicated_same",
        mail("message_id_duplicated_same", Message_ID=[same, same]),
        "logged once (Message-ID case: the same Message-ID twice)",
    )
    add(
        "message_id_5kb",
        mail("message_id_5kb", Message_ID=f"<{'x' * 5120}.{token}@corpus.example.test>"),
        "logged (Message-ID case: 5 KB, stored whole or truncated consistently)",
    )
    add(
        "message_id_with_spaces",
        mail("message_id_with_spaces", Message_ID=f"< with spaces {token} @ corpus.example.test >"),
        "logged (Message-ID case: spaces inside the brackets)",
    )
    add(
        "message_id_without_brackets",
        mail("message_id_without_brackets", Message_ID=f"no-brackets.{token}@corpus.example.test"),
        "logged (Message-ID case: no angle brackets)",
    )
    add(
        "message_id_exchange_brackets",
        mail("message_id_exchange_brackets", Message_ID=f"<[{token}-4A2B-9C3D-1E2F]@exchange.example.test>"),
        "logged (Message-ID case: Exchange style <[...]@host>)",
    )
    add(
        "message_id_exchange_bare_brackets",
        mail("message_id_exchange_bare_brackets", Message_ID=f"<[{token}.AM6PR01MB1234.eurprd01]>"),
        "logged (Message-ID case: <[...]> without a domain)",
    )
    add(
        "message_id_two_in_one_header",
        mail(
            "message_id_two_in_one_header",
            Message_ID=f"<one.{token}@corpus.example.test> <two.{token}@corpus.example.test>",
        ),
        "logged (Message-ID case: two ids in one header)",
    )
    add(
        "message_id_empty",
        mail("message_id_empty", Message_ID=""),
        "logged (Message-ID case: empty, as if missing)",
    )
    add(
        "message_id_non_ascii",
        mail("message_id_non_ascii", Message_ID=f"<müller.{token}@bücher.example.test>".encode()),
        "logged (Message-ID case: raw UTF-8)",
    )
    add(
        "references_5kb",
        mail(
            "references_5kb",
            In_Reply_To=f"<{'r' * 5000}@corpus.example.test>",
            References=" ".join(f"<ref{i}.{token}@corpus.example.test>" for i in range(150)),
        ),
        "logged",
    )


def _subject_cases(build, rng):
    """Subjects and long lines."""
    mail = build.mail
    add = build.add
    add("subject_empty", mail("subject_empty", Subject=""), "logged (no subject)")
    add("subject_missing", mail("subject_missing", Subject=None), "logged (no subject)")
    words = " ".join(f"word{i}" for i in range(1400))
    folded = "\r\n ".join(words[i : i + 70] for i in range(0, len(words), 70))[:10240]
    add(
        "subject_10kb_folded", mail("subject_10kb_folded", Subject=folded), "logged (subject cut for display)"
    )
    add(
        "subject_10kb_one_line",
        mail("subject_10kb_one_line", Subject="S" * 10240),
        "logged (subject cut for display)",
    )
    add(
        "header_line_over_998",
        mail("header_line_over_998", X_Long="y" * 2500),
        "logged",
    )
    add(
        "body_line_over_998",
        mail("body_line_over_998", b"z" * 5000 + b"\r\n"),
        "logged",
    )


def _address_cases(build, rng):
    """Senders and recipients."""
    sender = build.sender
    recipient = build.recipient
    mail = build.mail
    add = build.add
    add(
        "from_display_name_comma_quotes",
        mail("from_display_name_comma_quotes", From=f'"Doe, John \\"JD\\" (Recruiting)" <{sender}>'),
        "logged (one sender, not two)",
    )
    add(
        "from_unquoted_comma",
        mail("from_unquoted_comma", From=f"Doe, John <{sender}>"),
        "logged (the address is still found)",
    )
    add(
        "from_uppercase",
        mail("from_uppercase", From=f"<{sender.upper()}>"),
        "logged (addresses compared case-insensitively)",
    )
    add(
        "from_bare_address",
        mail("from_bare_address", From=sender),
        "logged",
    )
    add(
        "from_idn_domain_sender_in_cc",
        mail(
            "from_idn_domain_sender_in_cc",
            From="Büro <info@bücher.example>".encode(),
            Cc=sender,
        ),
        "logged (matched through Cc)",
    )
    add(
        "from_punycode_domain_sender_in_cc",
        mail("from_punycode_domain_sender_in_cc", From="info@xn--bcher-kva.example", Cc=sender),
        "logged (matched through Cc)",
    )
    add(
        "from_utf8_local_part_sender_in_to",
        mail(
            "from_utf8_local_part_sender_in_to",
            From="jörg@example.test".encode(),
            To=f"{sender}, {recipient}",
        ),
        "logged (matched through To)",
    )
    add(
        "from_missing_sender_in_cc",
        mail("from_missing_sender_in_cc", From=None, Cc=sender),
        "logged (matched through Cc)",
    )
    add(
        "from_two_addresses",
        mail("from_two_addresses", From=f"other@example.test, {sender}"),
        "logged",
    )
    add(
        "to_group_syntax",
        mail("to_group_syntax", To=f"Recruiting: {recipient};, undisclosed-recipients:;"),
        "logged (the recipient inside the group is found)",
    )
    add(
        "sender_only_in_reply_to",
        mail("sender_only_in_reply_to", From="noreply@example.test", Reply_To=sender),
        "skipped: the sender is only in Reply-To",
    )
    recipients = [f"person{i}@example.test" for i in range(99)]
    add(
        "recipients_100",
        mail(
            "recipients_100",
            To=", ".join([recipient, *recipients[:49]]),
            Cc=", ".join(f'"Person {i}, Team" <{address}>' for i, address in enumerate(recipients[49:])),
        ),
        "logged (on one long To line and a 50-address Cc)",
    )


def _date_cases(build, rng):
    """Dates."""
    mail = build.mail
    add = build.add
    add("date_missing", mail("date_missing", Date=None), "logged (date from the server's INTERNALDATE)")
    add("date_invalid", mail("date_invalid", Date="not a date at all"), "logged (server's date)")
    add(
        "date_far_future",
        mail("date_far_future", Date="Fri, 31 Dec 9999 23:59:59 +0000"),
        "logged (server's date or clamped)",
    )
    add("date_year_1900", mail("date_year_1900", Date="Mon, 01 Jan 1900 00:00:00 +0000"), "logged")
    add(
        "date_bad_timezone",
        mail("date_bad_timezone", Date="Mon, 02 Jun 2025 09:30:00 +9999"),
        "logged",
    )


def _content_cases(build, rng):
    """Content types and transfer encodings."""
    mail = build.mail
    add = build.add
    add(
        "content_type_missing",
        mail("content_type_missing", Content_Type=None, Content_Transfer_Encoding=None),
        "logged (text/plain by default)",
    )
    add(
        "content_type_garbage",
        mail("content_type_garbage", Content_Type=";;;===; charset"),
        "logged (text/plain by default)",
    )
    add(
        "transfer_encoding_unknown",
        mail("transfer_encoding_unknown", b"H4sIAAAAAAAA\r\n", Content_Transfer_Encoding="x-gzip64"),
        "logged (body shown as is)",
    )
    add(
        "eight_bit_body_declared_7bit",
        mail("eight_bit_body_declared_7bit", "Ümlauts in a 7bit body.\r\n", Content_Transfer_Encoding="7bit"),
        "logged",
    )
    add(
        "base64_body_garbage",
        mail(
            "base64_body_garbage",
            b"SGVsbG8g!!! not base64 at all ###\r\n====\r\nV29y bGQ=\r\n",
            Content_Transfer_Encoding="base64",
        ),
        "logged (body decoded as far as possible)",
    )
    add(
        "quoted_printable_soft_break_abuse",
        mail(
            "quoted_printable_soft_break_abuse",
            b"=\r\n" * 2000 + b"A=\r\n=\r\nB =ZZ =4 =\r\n=3D=3d=\r\n" + b"C" * 200 + b"=\r\n" + b"=",
            Content_Transfer_Encoding="quoted-printable",
        ),
        "logged",
    )
    add(
        "uuencoded_body",
        mail(
            "uuencoded_body",
            b"begin 644 cv.txt\r\n#0V%T\r\n`\r\nend\r\n",
            Content_Transfer_Encoding="x-uuencode",
        ),
        "logged",
    )
    html = (
        b"<html><head><script>alert(document.cookie)</script></head>"
        b'<body onload="steal()"><p>Hi</p><img src="data:image/png;base64,'
        + base64.b64encode(rng.randbytes(768 * 1024))
        + b'"><iframe src="javascript:alert(1)"></iframe></body></html>\r\n'
    )
    add(
        "html_only_scripts_inline_image",
        mail("html_only_scripts_inline_image", html, Content_Type='text/html; charset="utf-8"'),
        "logged (scripts removed; the 1 MB data: image dropped or kept inert)",
    )
    add(
        "body_zero_bytes",
        CRLF.join(build.headers("body_zero_bytes")) + CRLF + CRLF,
        "logged (empty body)",
    )
    add(
        "only_headers_no_separator",
        CRLF.join(build.headers("only_headers_no_separator")) + CRLF,
        "logged (empty body)",
    )
    add(
        "only_headers_no_final_newline",
        CRLF.join(build.headers("only_headers_no_final_newline")),
        "logged (empty body)",
    )


def _line_ending_cases(build, rng):
    """Line endings."""
    mail = build.mail
    add = build.add
    add("line_endings_crlf", mail("line_endings_crlf", b"Line one\r\nLine two\r\n"), "logged")
    add(
        "line_endings_bare_lf",
        mail("line_endings_bare_lf", b"Line one\nLine two\n", eol=b"\n"),
        "logged",
    )
    mixed = CRLF.join(build.headers("line_endings_mixed")).replace(b"\r\nTo:", b"\nTo:")
    add(
        "line_endings_mixed",
        mixed + b"\r\n\r\nCRLF line\r\nLF line\nCR line\rlast\r\n",
        "logged",
    )


def _mime_cases(build, rng):
    """MIME structure."""
    sender = build.sender
    recipient = build.recipient
    token = build.token
    mail = build.mail
    add = build.add
    leaf = (['Content-Type: text/plain; charset="utf-8"'], b"Five levels down.\r\n")
    part_headers, body = _nested(5, leaf, "depth5-")
    add(
        "nested_multipart_depth5",
        mail(
            "nested_multipart_depth5",
            body,
            Content_Type=part_headers[0].split(": ", 1)[1],
            Content_Transfer_Encoding=None,
        ),
        "logged",
    )
    part_headers, body = _nested(200, leaf, "bomb-")
    add(
        "mime_bomb_depth200",
        mail(
            "mime_bomb_depth200",
            body,
            Content_Type=part_headers[0].split(": ", 1)[1],
            Content_Transfer_Encoding=None,
        ),
        "logged as original.eml (too deep to unpack)",
    )
    add(
        "multipart_missing_boundary",
        mail(
            "multipart_missing_boundary",
            b"--x\r\nContent-Type: text/plain\r\n\r\nPart.\r\n--x--\r\n",
            Content_Type="multipart/mixed",
            Content_Transfer_Encoding=None,
        ),
        "logged (body as text)",
    )
    content_type, body = _multipart(
        "never-closed", [TEXT_PART, _attachment('filename="cv.pdf"')], close=False
    )
    add(
        "multipart_boundary_never_closed",
        mail(
            "multipart_boundary_never_closed", body, Content_Type=content_type, Content_Transfer_Encoding=None
        ),
        "logged (the parts found are kept)",
    )
    add(
        "multipart_boundary_unused",
        mail(
            "multipart_boundary_unused",
            b"No boundary line in here.\r\n",
            Content_Type='multipart/mixed; boundary="declared-but-unused"',
            Content_Transfer_Encoding=None,
        ),
        "logged (body as text)",
    )
    content_type, _ = _multipart("empty-alt", [], subtype="alternative")
    add(
        "multipart_no_parts",
        mail(
            "multipart_no_parts",
            b"--empty-alt--\r\n",
            Content_Type=content_type,
            Content_Transfer_Encoding=None,
        ),
        "logged (empty body)",
    )
    content_type, body = _multipart(
        "pre-epi",
        [TEXT_PART],
        preamble=b"\x00\xff garbage preamble \x1b\r\n",
        epilogue=b"garbage epilogue \xfe\r\n",
    )
    add(
        "multipart_garbage_preamble_epilogue",
        mail(
            "multipart_garbage_preamble_epilogue",
            body,
            Content_Type=content_type,
            Content_Transfer_Encoding=None,
        ),
        "logged",
    )
    inner = b"From: inner@example.test\r\nTo: other@example.test\r\nSubject: Forwarded\r\n\r\nInner body.\r\n"
    content_type, body = _multipart(
        "rfc822",
        [TEXT_PART, (["Content-Type: message/rfc822", "Content-Disposition: attachment"], inner)],
    )
    add(
        "rfc822_attachment",
        mail("rfc822_attachment", body, Content_Type=content_type, Content_Transfer_Encoding=None),
        "logged (the forwarded mail as an .eml attachment)",
    )
    middle = (
        b"From: middle@example.test\r\nTo: other@example.test\r\nSubject: Fwd twice\r\n"
        + b'Content-Type: multipart/mixed; boundary="mid"\r\n\r\n--mid\r\n'
        + b"Content-Type: message/rfc822\r\n\r\n"
        + inner
        + b"--mid--\r\n"
    )
    content_type, body = _multipart("rfc822x2", [TEXT_PART, (["Content-Type: message/rfc822"], middle)])
    add(
        "rfc822_nested_twice",
        mail("rfc822_nested_twice", body, Content_Type=content_type, Content_Transfer_Encoding=None),
        "logged",
    )
    content_type, body = _multipart(
        "tnef",
        [
            TEXT_PART,
            _attachment('filename="winmail.dat"', _tnef(), "application/ms-tnef"),
        ],
    )
    add(
        "tnef_winmail_dat",
        mail("tnef_winmail_dat", body, Content_Type=content_type, Content_Transfer_Encoding=None),
        "logged (winmail.dat as an attachment)",
    )
    calendar = _calendar(sender, recipient, token)
    content_type, body = _multipart(
        "calendar",
        [
            TEXT_PART,
            (['Content-Type: text/calendar; method=REQUEST; charset="utf-8"'], calendar),
            _attachment('filename="invite.ics"', calendar, "application/ics"),
        ],
        subtype="mixed",
    )
    add(
        "calendar_invite_request",
        mail(
            "calendar_invite_request",
            body,
            Subject="Invitation: Interview",
            Content_Type=content_type,
            Content_Transfer_Encoding=None,
        ),
        "logged (invite.ics attached)",
    )
    original = build.mail("bounce_original_inner", From=recipient, To=sender)
    status = (
        b"Reporting-MTA: dns; mx.example.test\r\n\r\n"
        b"Final-Recipient: rfc822; " + _b(sender) + b"\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n"
    )
    content_type, body = _multipart(
        "dsn",
        [
            (["Content-Type: text/plain"], b"Delivery to the following recipient failed.\r\n"),
            (["Content-Type: message/delivery-status"], status),
            (["Content-Type: message/rfc822"], original),
        ],
        subtype="report",
    )
    add(
        "bounce_delivery_status",
        mail(
            "bounce_delivery_status",
            body,
            From="Mail Delivery System <MAILER-DAEMON@mx.example.test>",
            Subject="Undelivered Mail Returned to Sender",
            Content_Type=content_type + "; report-type=delivery-status",
            Content_Transfer_Encoding=None,
        ),
        "skipped: a bounce from MAILER-DAEMON (the sender is only inside the returned mail)",
    )
    content_type, body = _multipart(
        "signed",
        [
            TEXT_PART,
            (["Content-Type: application/pkcs7-signature; name=smime.p7s"], _b64(rng.randbytes(300))),
        ],
        subtype="signed",
    )
    add(
        "smime_signed_garbage_signature",
        mail(
            "smime_signed_garbage_signature",
            body,
            Content_Type=content_type + '; protocol="application/pkcs7-signature"; micalg=sha-256',
            Content_Transfer_Encoding=None,
        ),
        "logged (signature as an attachment)",
    )
    add(
        "smime_encrypted",
        mail(
            "smime_encrypted",
            _b64(rng.randbytes(600)),
            Content_Type='application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
            Content_Transfer_Encoding="base64",
        ),
        "logged (smime.p7m as an attachment)",
    )


def _attachment_cases(build, rng):
    """Attachments and their names."""
    mail = build.mail
    add = build.add
    _with_attachment(
        build,
        "attachment_name_unicode_encoded_word",
        'filename="=?utf-8?b?' + base64.b64encode("Lebenslauf Jörg 履歴書.pdf".encode()).decode() + '?="',
        "logged (Lebenslauf Jörg 履歴書.pdf)",
    )
    _with_attachment(
        build,
        "attachment_name_raw_utf8",
        'filename="Curriculum Zoë ✓.pdf"',
        "logged",
    )
    _with_attachment(
        build,
        "attachment_name_rfc2231",
        "filename*=utf-8''%E2%82%AC%20salary%20%C3%BCbersicht.xlsx",
        "logged (€ salary übersicht.xlsx)",
    )
    _with_attachment(
        build,
        "attachment_name_rfc2231_continuations",
        "filename*0*=utf-8''very%20long%20na; filename*1*=me%20in%20parts; filename*2=\".docx\"",
        "logged (very long name in parts.docx)",
    )
    _with_attachment(
        build,
        "attachment_name_rfc2231_bad_charset",
        "filename*=x-unknown'en'%FF%FEcv.pdf",
        "logged (name with replacement characters)",
    )
    _with_attachment(
        build,
        "attachment_name_path_traversal",
        'filename="../../etc/passwd"',
        "logged (stored as 'passwd' or similar, never as a path)",
    )
    _with_attachment(
        build,
        "attachment_name_windows_traversal",
        'filename="..\\\\..\\\\Windows\\\\System32\\\\evil.dll"',
        "logged (no path kept)",
    )
    _with_attachment(
        build,
        "attachment_name_very_long",
        f'filename="{"long-name-" * 60}.pdf"',
        "logged (name shortened)",
    )
    _with_attachment(build, "attachment_name_empty", 'filename=""', "logged (a default name)")
    _with_attachment(build, "attachment_name_missing", "", "logged (a default name)")
    _with_attachment(
        build,
        "attachment_name_control_characters",
        "filename*=utf-8''cv%00%0A%0D%1B.pdf",
        "logged (control characters removed from the name)",
    )
    _with_attachment(
        build,
        "attachment_empty_content",
        'filename="empty.txt"',
        "logged (a 0-byte attachment)",
        data=b"",
    )
    content_type, body = _multipart(
        "truncated",
        [TEXT_PART, (_attachment('filename="cut.pdf"')[0], _b64(b"%PDF-1.4 " * 40)[:-37])],
    )
    add(
        "attachment_base64_truncated",
        mail("attachment_base64_truncated", body, Content_Type=content_type, Content_Transfer_Encoding=None),
        "logged (attachment decoded as far as possible)",
    )


def _not_mail_cases(build, rng):
    """Not really mail."""
    sender = build.sender
    recipient = build.recipient
    mail = build.mail
    add = build.add
    garbage = bytearray(rng.randbytes(4096))
    garbage[1000:1000] = b"\r\nFrom: " + _b(sender) + b"\r\n"
    garbage[2000:2000] = b"\r\nMessage-ID: " + _b(build.message_id("garbage_with_from_line")) + b"\r\n"
    add(
        "garbage_with_from_line",
        bytes(garbage),
        "skipped: not a mail (or logged if the From line is found)",
    )
    add(
        "mbox_from_line_first",
        b"From " + _b(sender) + b" Mon Jun  2 09:30:00 2025\r\n" + mail("mbox_from_line_first"),
        "logged",
    )
    add(
        "latin1_everything",
        mail(
            "latin1_everything",
            b"K\xe4se und Br\xf6tchen.\r\n",
            Subject=b"K\xe4se",
            To=b'"Ren\xe9e" <' + _b(recipient) + b">",
            Content_Type="text/plain",
            Content_Transfer_Encoding=None,
        ),
        "logged",
    )


SECTIONS = (
    _header_cases,
    _message_id_cases,
    _subject_cases,
    _address_cases,
    _date_cases,
    _content_cases,
    _line_ending_cases,
    _mime_cases,
    _attachment_cases,
    _not_mail_cases,
)


def hostile_corpus(sender, recipient, *, token=None, big=False):
    """At least 60 ``(name, raw_bytes, expectation)`` hostile mails (see the module's docstring)."""
    token = token or uuid.uuid4().hex[:12]
    build = _Builder(sender, recipient, token)
    rng = random.Random(token)
    for section in SECTIONS:
        section(build, rng)
    if big:
        build.add("attachment_25mb", big_mail(sender, recipient, token=token), BIG_EXPECTATION)
    return build.cases


BIG_EXPECTATION = "logged (the 25 MB attachment kept, or dropped with a note if over the size limit)"


def big_mail(sender, recipient, *, size=BIG_SIZE, token=None):
    """A mail with one ``size``-byte attachment (25 MB by default; about 34 MB raw), built on demand."""
    token = token or uuid.uuid4().hex[:12]
    build = _Builder(sender, recipient, token)
    data = random.Random(token).randbytes(size)
    content_type, body = _multipart(
        "big", [TEXT_PART, _attachment('filename="recording.bin"', data)], subtype="mixed"
    )
    return build.mail("attachment_25mb", body, Content_Type=content_type, Content_Transfer_Encoding=None)
