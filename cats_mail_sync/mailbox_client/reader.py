"""Reading a mailbox's Inbox and Sent folders without changing anything.

Folders are opened read-only (EXAMINE) and fetched with BODY.PEEK, so no flag
(\\Seen included) ever changes on the server. New mail is found by UID:
(folder, UIDVALIDITY, UID) always names the same message.

Memory stays bounded: whole mails are fetched in groups of at most GROUP_BYTES
(their sizes come with the headers), and a mail above the caller's size limit
is fetched without its attachments (:meth:`MailboxReader.text_only`).
"""

import datetime
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import NamedTuple

from imapclient.exceptions import IMAPClientAbortError, IMAPClientError
from imapclient.imapclient import join_message_ids

from . import errors
from .addresses import addresses_in
from .header_fetch import HEADER_KEY, fetch_headers
from .header_fields import header_fields

INBOX = "INBOX"
# Names of the Sent folder on servers that do not announce SPECIAL-USE \Sent,
# compared case-insensitively with the folder name and its last path part.
SENT_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Messages",
    "Sent Mail",
    "Sent-Mail",
    "[Gmail]/Sent Mail",
    "INBOX.Sent",
    "INBOX/Sent",
    "Verzonden items",
    "Verzonden berichten",
    "Verzonden",
    "Gesendet",
    "Gesendete Elemente",
    "Envoyés",
    "Éléments envoyés",
    "Elementos enviados",
    "Posta inviata",
)
SENT_NAMES_LOWER = [name.lower() for name in SENT_NAMES]
# imapclient sends every UID of a FETCH on one command line: keep it short.
BATCH_SIZE = 200
# Whole mails are fetched in groups of at most this many bytes; a larger mail alone.
GROUP_BYTES = 10 * 1024 * 1024
# Addresses OR'ed in one SEARCH (3 or 4 keys each, n - 1 ORs): a command of a few KB at most,
# well under the line limits of Dovecot (64 KB), Gmail and Exchange (8 KB is the lowest seen).
ADDRESSES_PER_SEARCH = 25
# A non-ASCII address is looked for, where the server refuses CHARSET UTF-8 (Exchange), by its
# longest ASCII tail ("rgen@bank.de" for "jürgen@bank.de"): at least this many characters.
SHORTEST_TAIL = 4
NOT_PLAIN = frozenset('"\\ ')
# Parts whose MIME header one FETCH asks for (a short command line, whatever the number of parts).
SECTIONS_PER_FETCH = 100
TEXT_TYPES = ("text/plain", "text/html")
# Header fields that describe a body left out entirely.
BODY_FIELDS = (b"content-type:", b"content-transfer-encoding:", b"content-disposition:")


@dataclass(frozen=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int

    @property
    def last_uid(self):
        """The highest UID the folder may hold now: mail above it is new."""
        return self.uidnext - 1


@dataclass(slots=True)
class Headers:
    """The header fields a mail is matched on (the addresses as sets or frozensets)."""

    uid: int
    message_id: str
    senders: set = field(default_factory=set)
    recipients: set = field(default_factory=set)
    blind_recipients: set = field(default_factory=set)
    received: datetime.datetime | None = None
    size: int = 0  # RFC822.SIZE: the whole mail, in bytes

    def addresses(self, with_bcc=False):
        """Every address of the mail; Bcc only where asked (it is only known on sent mail)."""
        return self.senders | self.recipients | (self.blind_recipients if with_bcc else set())


class HeadersRead(NamedTuple):
    """What :meth:`MailboxReader.headers` read: the :class:`Headers` of the mails it could read, in
    UID order, and the UIDs of those it could not (``unread``), ascending."""

    headers: list
    unread: list


@dataclass
class Searched:
    """What :meth:`MailboxReader.search_addresses` found: the UIDs, the SEARCH commands it took,
    the addresses it had to look for by their ASCII tail (the server refused CHARSET UTF-8), and
    those it could not look for at all."""

    uids: set = field(default_factory=set)
    commands: int = 0
    by_tail: list = field(default_factory=list)
    unsearchable: list = field(default_factory=list)


@dataclass(frozen=True)
class LeftOut:
    """A part of a mail that was not fetched: its file name (or its type) and its size in bytes."""

    name: str
    size: int


@dataclass(frozen=True)
class TextOnly:
    """A mail of ``size`` bytes, above the ``limit`` it was fetched with: its header and text as a
    mail (``raw``), and the parts left out."""

    raw: bytes
    left_out: tuple
    size: int
    limit: int


@dataclass
class _Part:
    """A node of a mail's BODYSTRUCTURE: ``section`` names it in BODY[...] ("" for the mail itself)."""

    section: str
    children: list | None = None  # a multipart's parts; None for a leaf
    content_type: str = ""
    encoding: str = ""
    size: int = 0  # a leaf's bytes as stored (encoded)

    def walk(self):
        yield self
        for child in self.children or ():
            yield from child.walk()


class MailboxReader:
    """Read-only access to a logged-in ``imapclient.IMAPClient``."""

    def __init__(self, client):
        self.client = client
        # Whether the server searches with CHARSET UTF-8: None until a search says.
        self.utf8_search = None

    def find_sent_folder(self):
        """The Sent folder's name: SPECIAL-USE \\Sent first (in any case: Cyrus lists "\\sent"),
        then known names."""
        try:
            listed = self.client.list_folders()
        except IMAPClientError as exc:
            raise errors.MailboxError() from exc
        for flags, _delimiter, name in listed:
            if any(flag.lower() == b"\\sent" for flag in flags):
                return name
        names = [name for _flags, _delimiter, name in listed]
        by_lower = {name.lower(): name for name in names}
        for candidate in SENT_NAMES_LOWER:
            if candidate in by_lower:
                return by_lower[candidate]
        for name in names:
            if name.replace(".", "/").rsplit("/", 1)[-1].lower() in SENT_NAMES_LOWER:
                return name
        raise errors.FolderNotFound()

    def exists(self, folder):
        return self.client.folder_exists(folder)

    def status(self, folder):
        values = self.client.folder_status(folder, [b"UIDVALIDITY", b"UIDNEXT"])
        return FolderStatus(int(values[b"UIDVALIDITY"]), int(values[b"UIDNEXT"]))

    def open(self, folder):
        """Open ``folder`` read-only; return its UIDVALIDITY."""
        return int(self.client.select_folder(folder, readonly=True)[b"UIDVALIDITY"])

    def uids_after(self, uid):
        """UIDs above ``uid`` in the open folder, ascending."""
        # "UID n:*" also returns the highest UID when it is below n: filter.
        return sorted(found for found in self.client.search(["UID", f"{uid + 1}:*"]) if found > uid)

    def uids_since(self, day):
        """UIDs of mail that arrived on or after ``day`` (a date) in the open folder."""
        return sorted(self.client.search(["SINCE", day]))

    def search(self, criteria):
        """UIDs of the open folder's mail that meets ``criteria`` (imapclient's), ascending."""
        return sorted(self.client.search(criteria))

    def search_addresses(self, addresses, scope, with_bcc=False):
        """UIDs of the open folder's mail that meets ``scope`` (imapclient criteria, such as
        ``["UID", "5:120"]``) and is from, to or cc (and bcc, ``with_bcc``) any of ``addresses``:
        a :class:`Searched`.

        SEARCH matches substrings ("ann@x.nl" finds "joann@x.nl"): check each mail's headers.
        A quoted local part is looked for by what follows it ('@x.nl' for '"d.k"@x.nl'): servers
        compare with the address as they write it, Dovecot without needless quotes.
        At most ADDRESSES_PER_SEARCH addresses per command, OR'ed. Non-ASCII ones go with
        ``CHARSET UTF-8``; a server that refuses the first such search (Exchange: US-ASCII only)
        is asked for their ASCII tails instead, for the rest of the session. A refused SEARCH raises
        :class:`IMAPClientError` (the session stays usable); a lost connection raises as any
        command does.
        """
        scope = list(scope)
        found = Searched()
        plain, other = set(), []
        for address in addresses:
            if not address.isascii():
                other.append(address)
            elif is_plain(address) or ascii_tail(address):
                plain.add(address if is_plain(address) else ascii_tail(address))
            else:
                found.unsearchable.append(address)
        plain = sorted(plain)
        for chunk in batches(plain, ADDRESSES_PER_SEARCH):
            found.uids |= self._search(scope + any_address(chunk, with_bcc), None, found)
        for chunk in batches(other, ADDRESSES_PER_SEARCH):
            if self.utf8_search is not False:
                try:
                    found.uids |= self._search(scope + any_address(chunk, with_bcc), "UTF-8", found)
                    self.utf8_search = True
                    continue
                except IMAPClientAbortError:
                    raise
                except IMAPClientError:
                    # Refused where it was never accepted (Exchange: "NO [BADCHARSET (US-ASCII)]"):
                    # the charset, not the search. Refused after it was accepted: the search.
                    if self.utf8_search:
                        raise
                    self.utf8_search = False
            tails = {}
            for address in chunk:
                tail = ascii_tail(address)
                if tail:
                    tails.setdefault(tail, []).append(address)
                else:
                    found.unsearchable.append(address)
            if tails:
                found.by_tail += [address for same in tails.values() for address in same]
                found.uids |= self._search(scope + any_address(sorted(tails), with_bcc), None, found)
        return found

    def _search(self, criteria, charset, searched):
        searched.commands += 1
        return set(self.client.search(criteria, charset=charset))

    def headers(self, uids):
        """The parsed headers of ``uids``, fetched in batches: :class:`HeadersRead`.

        A mail whose answer holds no header section (none, or NIL), or that the server left out of
        its answer while still holding it, is unread: not a mail without addresses. A mail the
        server left out because it is gone (deleted meanwhile) is neither.
        """
        read = HeadersRead([], [])
        for batch in batches(sorted(uids)):
            response = fetch_headers(self.client, batch)
            for uid in sorted(response):
                data = response[uid]
                raw = data.get(HEADER_KEY)
                if not isinstance(raw, bytes):
                    read.unread.append(uid)
                    continue
                fields = header_fields(raw)
                read.headers.append(
                    Headers(
                        uid=uid,
                        # 8-bit headers come as email.header.Header objects: str() them.
                        message_id=str(fields.get("message-id", [""])[0] or "").strip(),
                        senders=addresses_in(fields.get("from", ())),
                        recipients=addresses_in(fields.get("to", []) + fields.get("cc", [])),
                        blind_recipients=addresses_in(fields.get("bcc", ())),
                        received=data.get(b"INTERNALDATE"),
                        size=int(data.get(b"RFC822.SIZE") or 0),
                    )
                )
            left_out = sorted(set(batch) - set(response))
            if left_out:
                still_there = set(self.client.search(["UID", join_message_ids(left_out)]))
                read.unread.extend(uid for uid in left_out if uid in still_there)
        read.unread.sort()
        return read

    def messages(self, uids):
        """``{uid: raw bytes}`` of whole mails, fetched in batches; a mail deleted meanwhile is
        left out (servers answer for it with no body, or not at all)."""
        raw = {}
        for batch in batches(uids):
            for uid, data in self.client.fetch(batch, [b"BODY.PEEK[]"]).items():
                if data.get(b"BODY[]") is not None:
                    raw[uid] = data[b"BODY[]"]
        return raw

    def text_only(self, uid, limit):
        """Mail ``uid`` without its attachments: its header and its plain and HTML text parts (at
        most ``limit`` bytes of them), rebuilt as a mail with the mail's own MIME headers and
        boundaries; every other part is named in ``left_out``. None when the mail is gone."""
        items = [b"BODYSTRUCTURE", b"BODY.PEEK[HEADER]", b"RFC822.SIZE"]
        data = self.client.fetch([uid], items).get(uid) or {}
        header, structure = data.get(b"BODY[HEADER]"), data.get(b"BODYSTRUCTURE")
        if header is None or structure is None:
            return None
        root = _tree(structure)
        # The MIME header of each part by section: the mail's header is the mail's own, and the one
        # of its only part when it is not multipart.
        mime = {"": header, "1": header}
        wanted = [part.section for part in root.walk() if part.section and root.children]
        for chunk in batches(wanted, SECTIONS_PER_FETCH):
            fetched = self.fetch_sections(uid, [f"{section}.MIME" for section in chunk])
            if fetched is None:
                return None
            # A part with no header at all is text/plain: an empty header says so.
            mime.update({section: fetched[f"{section}.MIME"] or b"\r\n" for section in chunk})
        described = {part.section: _describe(mime[part.section], part) for part in root.walk()}
        kept, left_out, budget = [], [], limit
        for part in root.walk():
            if part.children is not None:
                continue
            content_type, attached, name, _boundary = described[part.section]
            if content_type in TEXT_TYPES and not attached and part.size <= budget:
                kept.append(part.section)
                budget -= part.size
            else:
                left_out.append(LeftOut(name, _decoded_size(part)))
        contents = self.fetch_sections(uid, kept) if kept else {}
        if contents is None:
            return None
        body = _rebuilt(root, mime, described, contents)
        # Nothing of the body kept: the header no longer describes it.
        raw = _without_body_fields(header) if body is None else header + body
        return TextOnly(raw, tuple(left_out), int(data.get(b"RFC822.SIZE") or 0), limit)

    def fetch_sections(self, uid, sections):
        """``{section: bytes}`` of BODY[section] of mail ``uid``; None when the mail is gone."""
        fetched = self.client.fetch([uid], [f"BODY.PEEK[{section}]".encode() for section in sections])
        if uid not in fetched:
            return None
        return {section: fetched[uid].get(f"BODY[{section}]".encode()) or b"" for section in sections}


def is_plain(text):
    """Whether ``text`` is searched for as it is by every server: printable US-ASCII, no quotes,
    backslashes nor spaces."""
    return text.isascii() and text.isprintable() and not NOT_PLAIN & set(text)


def ascii_tail(address):
    """The longest end of ``address`` that is a plain search string ("rgen@bank.de" for
    "jürgen@bank.de", '@x.nl' for '"d k"@x.nl'); None when shorter than SHORTEST_TAIL."""
    start = len(address)
    while start and is_plain(address[start - 1]):
        start -= 1
    tail = address[start:]
    return tail if len(tail) >= SHORTEST_TAIL else None


def any_address(addresses, with_bcc=False):
    """Search keys (imapclient criteria) for mail from, to or cc (and bcc) any of ``addresses``:
    prefix ORs, balanced, so the nesting stays shallow (log2 of the number of keys)."""
    fields = ("FROM", "TO", "CC", "BCC") if with_bcc else ("FROM", "TO", "CC")
    return _any_of([[name, address] for address in addresses for name in fields])


def _any_of(keys):
    if len(keys) == 1:
        return list(keys[0])
    middle = len(keys) // 2
    return ["OR", *_any_of(keys[:middle]), *_any_of(keys[middle:])]


def groups(headers, limit=None):
    """``headers`` in groups, in their order, whose sizes add up to at most ``limit`` bytes
    (GROUP_BYTES by default); a mail larger than that makes a group of its own."""
    limit = limit or GROUP_BYTES
    group, total = [], 0
    for header in headers:
        if group and total + header.size > limit:
            yield group
            group, total = [], 0
        group.append(header)
        total += header.size
    if group:
        yield group


def _tree(node, section=""):
    """The :class:`_Part` tree of an imapclient BODYSTRUCTURE (a message/rfc822 part is a leaf)."""
    if node.is_multipart:
        return _Part(
            section,
            children=[
                _tree(child, f"{section}.{number}" if section else str(number))
                for number, child in enumerate(node[0], 1)
            ],
        )
    content_type = b"/".join(value or b"" for value in node[:2]).decode("latin-1").lower()
    encoding = (node[5] or b"").decode("latin-1").lower()
    return _Part(section or "1", content_type=content_type, encoding=encoding, size=int(node[6] or 0))


def _describe(raw, part):
    """``(content type, is an attachment, name, boundary)`` of a part, read from its MIME header
    (its BODYSTRUCTURE type when Python cannot read the header). The name is the one a recruiter
    knows the part by: its file name, else its type."""
    try:
        fields = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        return (
            fields.get_content_type(),
            fields.get_content_disposition() == "attachment",
            str(fields.get_filename() or part.content_type),
            fields.get_boundary(),
        )
    except Exception:  # noqa: BLE001 - an unreadable header only costs the part its text
        return part.content_type, True, part.content_type or "application/octet-stream", None


def _decoded_size(part):
    """The size of a part once decoded, in bytes (base64: lines of 76 characters and CRLF for 57)."""
    return part.size * 57 // 78 if part.encoding == "base64" else part.size


def _rebuilt(part, mime, described, contents):
    """The body of ``part`` with only the ``contents`` kept ({section: bytes}), its parts between
    the mail's own boundaries; None when nothing of it is kept."""
    if part.children is None:
        return contents.get(part.section)
    boundary = described[part.section][3]
    if not boundary:
        return None
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    entities = []
    for child in part.children:
        body = _rebuilt(child, mime, described, contents)
        if body is not None:
            entities.append(delimiter + b"\r\n" + mime[child.section] + body + b"\r\n")
    if not entities:
        return None
    return b"".join(entities) + delimiter + b"--\r\n"


def _without_body_fields(header):
    """``header`` without the fields that describe a body (a mail's body left out entirely)."""
    kept, skipping = [], False
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(BODY_FIELDS)
        if not skipping:
            kept.append(line)
    return b"".join(kept)


def batches(items, size=None):
    size = size or BATCH_SIZE
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]
