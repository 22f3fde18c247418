import email
import hashlib
import logging
from collections import defaultdict
from email import policy

import psycopg2.errors
from markupsafe import Markup

from odoo import api, models
from odoo.tools import SQL, email_domain_extract, email_normalize_all

from .. import series
from ..mailbox_client.addresses import list_entries
from ..mailbox_client.reader import TextOnly

_logger = logging.getLogger(__name__)

# Longer Message-IDs do not fit the database's index: such mail gets one of its own.
MAX_MESSAGE_ID = 250
MAX_HEADER = 1000
HEADERS = ("Subject", "From", "To", "Cc")
PLACEHOLDER_ID = "<cats-mail-sync-parsing@localhost>"
# Characters PostgreSQL refuses (NUL) or that no header should carry.
CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))
MB = 1024 * 1024
# The fields the SQL of _privacy and of _match reads.
PRIVACY_READS = {
    "res.partner": ["email_normalized", "commercial_partner_id"],
    "res.users": ["partner_id", "share", "login"],
    "hr.employee": ["work_contact_id", "work_email"],
}
MATCH_READS = {
    series.PERSON: ["email_normalized", "active", "company_id", "partner_id"],
    "res.partner": ["email", "email_normalized", "active", "company_id"],
    "res.users": ["partner_id", "share"],
}


class CatsMailSyncLogger(models.AbstractModel):
    """Match mail addresses to candidates and contacts, and log mail on them."""

    _name = "cats_mail_sync.logger"
    _description = "Mailbox mail logger"

    @api.model
    def _privacy(self, addresses, user):
        """Which of ``addresses`` are internal, and which are never to be logged: ``(internal, excluded)``.

        Internal: users, employees' work addresses and work contacts, the
        companies' own contacts, and the companies' mail domains (a setting).
        Excluded: the administrator's list and the recruiter's own list of
        addresses and domains whose mail is never logged.
        """
        if not addresses:
            return set(), set()
        self._flush(PRIVACY_READS)
        params = self.env["ir.config_parameter"].sudo()
        self.env.cr.execute(
            """
            SELECT p.email_normalized
              FROM res_partner p
             WHERE p.email_normalized = ANY(%(addresses)s)
               AND (EXISTS (SELECT 1 FROM res_users u WHERE u.partner_id = p.id AND NOT u.share)
                    OR EXISTS (SELECT 1 FROM hr_employee e WHERE e.work_contact_id = p.id)
                    OR p.commercial_partner_id IN (SELECT partner_id FROM res_company))
             UNION
            SELECT lower(e.work_email) FROM hr_employee e WHERE lower(e.work_email) = ANY(%(addresses)s)
             UNION
            SELECT lower(u.login) FROM res_users u WHERE NOT u.share AND lower(u.login) = ANY(%(addresses)s)
            """,
            {"addresses": sorted(addresses)},
        )
        internal = {row[0] for row in self.env.cr.fetchall()}
        internal |= _in_list(addresses, params.get_param("cats_mail_sync.internal_domains"))
        excluded = _in_list(addresses, params.get_param("cats_mail_sync.excluded")) | _in_list(
            addresses, user.mailbox_excluded
        )
        return internal, excluded

    @api.model
    def _match(self, addresses, user):
        """Records each address belongs to: ``{address: [records]}``.

        The records of the persons of that address (see ``series.records_of``) and contacts;
        never the recruiter, internal users, nor a person's own partner counted as a separate
        contact. The same SQL queries whatever the number of addresses, each
        through indexes only: its cost does not grow with the contacts and candidates
        (see ``res_partner.py`` for the index of fields with several addresses).
        """
        addresses = sorted(addresses - user._mailbox_own_addresses())
        found = defaultdict(list)
        if not addresses:
            return found
        self._flush(MATCH_READS)
        companies = user.company_ids.ids
        persons = SQL.identifier(series.PERSON_TABLE)
        # Through this module's index of persons' addresses (see database.py): compared as
        # lower(...), which the trigram index of hr_recruitment cannot serve, and would serve slowly.
        # One lookup per address (OFFSET 0 keeps the planner from making it one join): as one
        # condition, PostgreSQL read every candidate up to some 40,000 of them, 4 ms at 10,000.
        # Archived ones too: which records get the mail is the series' to say.
        self.env.cr.execute(
            SQL(
                """
                SELECT person.id
                  FROM unnest(%(addresses)s::text[]) AS wanted(address)
                 CROSS JOIN LATERAL (SELECT id FROM %(persons)s
                                      WHERE lower(email_normalized) = wanted.address
                                        AND (company_id IS NULL OR company_id = ANY(%(companies)s))
                                     OFFSET 0) AS person
                """,
                addresses=addresses,
                companies=companies,
                persons=persons,
            )
        )
        people = self.env[series.PERSON].sudo().browse(sorted(row[0] for row in self.env.cr.fetchall()))
        for address, records in series.records_of(people).items():
            found[address] += records
        # Users and persons are looked up once per contact found (LIMIT keeps them out of
        # a join the planner could make by scanning them all): nothing here reads a whole table.
        self.env.cr.execute(
            SQL(
                """
                SELECT p.id, p.email
                  FROM res_partner p
                  LEFT JOIN LATERAL (SELECT 1 AS found FROM res_users u
                                      WHERE u.partner_id = p.id AND NOT u.share LIMIT 1) AS internal ON TRUE
                  LEFT JOIN LATERAL (SELECT 1 AS found FROM %(persons)s person
                                      WHERE person.partner_id = p.id LIMIT 1) AS person ON TRUE
                 WHERE p.active
                   AND (p.company_id IS NULL OR p.company_id = ANY(%(companies)s))
                   AND (p.email_normalized = ANY(%(addresses)s)
                        OR cats_mail_sync_email_addresses(p.email) && %(addresses)s)
                   AND internal.found IS NULL
                   AND person.found IS NULL
                """,
                companies=companies,
                addresses=addresses,
                persons=persons,
            )
        )
        wanted = set(addresses)
        partners = self.env["res.partner"].sudo()
        for partner_id, partner_email in self.env.cr.fetchall():
            for address in set(email_normalize_all(partner_email)) & wanted:
                found[address].append(partners.browse(partner_id))
        return found

    @api.model
    def _flush(self, reads):
        """Write what this transaction changed of the fields ``reads`` names (``{model: fields}``)
        before SQL reads them: a candidate or contact made a moment ago matches too."""
        for model, names in reads.items():
            self.env[model].flush_model(names)

    @api.model
    def _log(self, user, mails):
        """Log mails on their records, once per record, each mail on its own.

        ``mails`` is a list of ``(raw bytes, {record: Bcc addresses it matched through}, author
        partner)``; instead of raw bytes, a ``TextOnly`` mail (too large) is logged with a note
        naming the attachments left out. A mail that cannot be logged as Odoo reads it is logged
        in its safest form (cleaned headers, the original attached); one that cannot be logged at
        all is skipped. Returns ``(number logged, number of them without their attachments,
        [(values, reason) skipped], [ids of the messages posted])``.
        """
        parsed = []
        for mail, records, author in mails:
            raw = mail.raw if isinstance(mail, TextOnly) else mail
            values = self._parse(raw)
            if isinstance(mail, TextOnly):
                values["left_out"] = self._left_out_note(mail)
            parsed.append((values, raw, records, author))
        # In Message-ID order: two runs logging the same mails take their locks in the same order.
        parsed.sort(key=lambda mail: mail[0]["message_id"])
        self.env.cr.execute(
            "SELECT model, res_id, message_id FROM mail_message WHERE message_id = ANY(%s)",
            [[values["message_id"] for values, _raw, _records, _author in parsed]],
        )
        already = set(self.env.cr.fetchall())
        # A mail removed from a record is never logged there again (by no mailbox).
        already |= self.env["cats_mail_sync.removal"]._removed(
            [values["message_id"] for values, _raw, _records, _author in parsed]
        )
        logged, shortened, skipped, posted = 0, 0, [], []
        for values, raw, records, author in parsed:
            targets = [r for r in records if (r._name, r.id, values["message_id"]) not in already]
            if not targets:
                continue
            # The mail as Odoo reads it; only if that fails, its safest form (made then, not before).
            for safest in (False, True):
                try:
                    with self.env.cr.savepoint():
                        form = self._safest(raw, values) if safest else values
                        messages = [
                            self._post(record, form, author, user, records[record]) for record in targets
                        ]
                    posted += [message.id for message in messages]
                    break
                except psycopg2.errors.UniqueViolation:
                    # Another mailbox logged it on these records at this very moment: it is there, once.
                    targets = []
                    break
                except Exception as error:  # noqa: BLE001 - one mail never blocks the others
                    reason = f"{type(error).__name__}: {str(error)[:300]}"
                    _logger.warning("Mail %s could not be logged: %s", values["message_id"][:100], reason)
            else:
                skipped.append((values, reason))
                continue
            already.update((r._name, r.id, values["message_id"]) for r in targets)
            logged += bool(targets)
            shortened += bool(targets and values.get("left_out"))
        return logged, shortened, skipped, posted

    @api.model
    def _parse(self, raw):
        """Odoo's own reading of a mail, with a Message-ID that is stable across runs; the
        safest form (see :meth:`_safest`) of a mail Odoo cannot read."""
        message_id = stable_message_id(raw)
        try:
            message = email.message_from_bytes(raw, policy=policy.SMTP)
            # The modern parser fails on some real Message-IDs (Exchange's "<[...]@host>"):
            # Odoo reads a placeholder, the mail keeps its own.
            del message["Message-ID"]
            message["Message-ID"] = PLACEHOLDER_ID
            values = self.env["mail.thread"].message_parse(message)
            values.update(
                to=str(message.get("To", "")),
                cc=str(message.get("Cc", "")),
                bcc_header=bool(message.get("Bcc")),
            )
        except Exception:  # noqa: BLE001 - any odd mail is kept, whole, as a file
            _logger.warning("Mail %s could not be read; it is logged as an attached file.", message_id[:100])
            return self._safest(raw, {"message_id": message_id})
        values["message_id"] = message_id
        return values

    @api.model
    def _safest(self, raw, values):
        """The mail in the form least likely to fail: cleaned and cut headers, a note as body,
        the original attached whole."""
        try:
            message = email.message_from_bytes(raw, policy=policy.compat32)
            header = {name: _clean(str(message.get(name) or ""))[:MAX_HEADER] for name in HEADERS}
            bcc_header = bool(message.get("Bcc"))
        except Exception:  # noqa: BLE001 - headers nobody can read are left out
            header, bcc_header = dict.fromkeys(HEADERS, ""), True
        return {
            "message_id": values["message_id"],
            "subject": header["Subject"],
            "email_from": header["From"],
            "to": header["To"],
            "cc": header["Cc"],
            "body": Markup("<p>%s</p>")
            % self.env._("This mail could not be read; the original is attached."),
            "original": raw,
            "bcc_header": bcc_header,
            "left_out": values.get("left_out"),
        }

    @api.model
    def _left_out_note(self, mail):
        """What a recruiter reads on a mail logged without its attachments: which, and why."""
        parts = ", ".join(f"{part.name} ({_size(part.size)})" for part in mail.left_out)
        return self.env._(
            "This mail (%(size)s) is larger than the %(limit)s limit for logged mail: its attachments "
            "are not stored here, only in the mailbox. Left out: %(parts)s.",
            size=_size(mail.size),
            limit=_size(mail.limit),
            parts=parts or "-",
        )

    @api.model
    def _post(self, record, values, author, user, bcc):
        """Post the mail on ``record`` (the message posted); ``bcc``: the Bcc addresses it matched
        through, the only Bcc recipients this record may show. The recipients are kept on the
        message, not in its text: the chatter names them in the reader's language."""
        attachments = list(values.get("attachments", []))
        if values.get("original"):
            # The original file would tell the other Bcc recipients: show only this record's.
            original = values["original"]
            attachments.append(
                ("original.eml", _with_bcc(original, bcc) if values["bcc_header"] else original, {})
            )
        body = Markup(values.get("body") or "")
        if values.get("left_out"):
            body = Markup("<p><i>%s</i></p>%s") % (values["left_out"], body)
        message = (
            record.sudo()
            .with_context(mail_create_nosubscribe=True, mail_post_autofollow=False)
            .message_post(
                body=body,
                subject=values.get("subject") or False,
                message_type="email",
                subtype_xmlid="mail.mt_note",
                author_id=author.id or False,
                email_from=values.get("email_from") or False,
                date=values.get("date") or False,
                message_id=values["message_id"],
                attachments=attachments,
                mailbox_user_id=user.id,
                mailbox_to=_header(values.get("to")),
                mailbox_cc=_header(values.get("cc")),
                mailbox_bcc=_header(", ".join(sorted(bcc))),
                **series.recipient_fields(_header(values.get("to")), _header(values.get("cc"))),
            )
        )
        # The dossier's copies are as private as the logged mail (see the access rules).
        message.attachment_ids.sudo().write({"mailbox_user_id": user.id})
        return message


def _in_list(addresses, listed):
    """The ``addresses`` that a list of addresses and domains (commas or lines) names."""
    names = list_entries(listed)
    if not names:
        return set()
    found = set()
    for address in addresses:
        domain = email_domain_extract(address) or ""
        parents = {".".join(domain.split(".")[i:]) for i in range(domain.count(".") + 1)}
        if address in names or parents & names:
            found.add(address)
    return found


def stable_message_id(raw):
    """The mail's Message-ID, read as it is written; or, when there is none or the database
    index cannot hold it, one made of the mail's bytes (the same at every run)."""
    try:
        found = email.message_from_bytes(raw, policy=policy.compat32).get("Message-ID")
        message_id = _clean(str(found or "")).strip()
    except Exception:  # noqa: BLE001 - no readable header: the bytes decide
        message_id = ""
    if not message_id or len(message_id) > MAX_MESSAGE_ID or any(c.isspace() for c in message_id):
        message_id = f"<{hashlib.sha256(raw).hexdigest()[:40]}@cats-mail-sync>"
    return message_id


def _size(size):
    """``size`` bytes as a recruiter reads it."""
    return f"{size / MB:.1f} MB" if size >= MB // 10 else f"{-(-size // 1024)} KB"


def _clean(text):
    """``text`` without NUL and other control characters (tabs and line ends kept)."""
    return text.translate(CONTROL)


def _header(text):
    """``text`` as a logged message keeps a header: cleaned and cut; False when empty."""
    return _clean(text or "")[:MAX_HEADER] or False


def _with_bcc(raw, bcc):
    """``raw`` with its Bcc header naming only ``bcc`` (bytes are kept as they are: the mail
    may be one no parser can write back)."""
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    kept, skipping = [], False
    for line in raw[:end].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(b"bcc:")
        if not skipping:
            kept.append(line)
    newline = b"\r\n" if b"\r\n" in raw[:end] else b"\n"
    if kept and not kept[-1].endswith(b"\n"):
        kept[-1] += newline
    if bcc:
        kept.append(b"Bcc: " + ", ".join(sorted(bcc)).encode() + newline)
    return b"".join(kept).rstrip(b"\r\n") + raw[end:]
