"""Reading a mailbox's Inbox and Sent folders without changing anything.

Folders are opened read-only (EXAMINE) and fetched with BODY.PEEK, so no flag
(\\Seen included) ever changes on the server. New mail is found by UID:
(folder, UIDVALIDITY, UID) always names the same message.
"""

import datetime
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesHeaderParser

from imapclient.exceptions import IMAPClientError

from . import errors
from .addresses import addresses_in

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
HEADER_FIELDS = b"BODY.PEEK[HEADER.FIELDS (FROM TO CC BCC MESSAGE-ID DATE)]"
HEADER_KEY = b"BODY[HEADER.FIELDS (FROM TO CC BCC MESSAGE-ID DATE)]"
# imapclient sends every UID of a FETCH on one command line: keep it short.
BATCH_SIZE = 200


@dataclass(frozen=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int

    @property
    def last_uid(self):
        """The highest UID the folder may hold now: mail above it is new."""
        return self.uidnext - 1


@dataclass
class Headers:
    """The header fields a mail is matched on."""

    uid: int
    message_id: str
    senders: set = field(default_factory=set)
    recipients: set = field(default_factory=set)
    blind_recipients: set = field(default_factory=set)
    received: datetime.datetime | None = None

    def addresses(self, with_bcc=False):
        """Every address of the mail; Bcc only where asked (it is only known on sent mail)."""
        return self.senders | self.recipients | (self.blind_recipients if with_bcc else set())


class MailboxReader:
    """Read-only access to a logged-in ``imapclient.IMAPClient``."""

    def __init__(self, client):
        self.client = client

    def find_sent_folder(self):
        """The Sent folder's name: SPECIAL-USE \\Sent first, then known names."""
        try:
            special = self.client.find_special_folder(b"\\Sent")
            if special:
                return special
            names = [name for _flags, _delimiter, name in self.client.list_folders()]
        except IMAPClientError as exc:
            raise errors.MailboxError() from exc
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

    def headers(self, uids):
        """Parsed headers of ``uids``, in UID order, fetched in batches."""
        parser = BytesHeaderParser(policy=policy.compat32)
        found = []
        for batch in batches(sorted(uids)):
            response = self.client.fetch(batch, [HEADER_FIELDS, b"INTERNALDATE"])
            for uid in sorted(response):
                data = response[uid]
                parsed = parser.parsebytes(data.get(HEADER_KEY) or b"")
                found.append(
                    Headers(
                        uid=uid,
                        # 8-bit headers come as email.header.Header objects: str() them.
                        message_id=str(parsed.get("Message-ID") or "").strip(),
                        senders=addresses_in(parsed.get_all("From", [])),
                        recipients=addresses_in(parsed.get_all("To", []) + parsed.get_all("Cc", [])),
                        blind_recipients=addresses_in(parsed.get_all("Bcc", [])),
                        received=data.get(b"INTERNALDATE"),
                    )
                )
        return found

    def messages(self, uids):
        """``{uid: raw bytes}`` of whole mails, fetched in batches; a mail deleted meanwhile is
        left out (servers answer for it with no body, or not at all)."""
        raw = {}
        for batch in batches(uids):
            for uid, data in self.client.fetch(batch, [b"BODY.PEEK[]"]).items():
                if data.get(b"BODY[]") is not None:
                    raw[uid] = data[b"BODY[]"]
        return raw


def batches(items, size=None):
    size = size or BATCH_SIZE
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]
