import email
import hashlib
import logging
from collections import defaultdict
from email import policy

from markupsafe import Markup

from odoo import api, models
from odoo.tools import email_normalize_all

_logger = logging.getLogger(__name__)


class CatsMailSyncLogger(models.AbstractModel):
    """Match mail addresses to candidates and contacts, and log mail on them."""

    _name = "cats_mail_sync.logger"
    _description = "Mailbox mail logger"

    @api.model
    def _match(self, addresses, user):
        """Records each address belongs to: ``{address: [records]}``.

        Candidates (with their ongoing applications) and contacts; never the
        recruiter, internal users, nor a candidate's own partner counted as a
        separate contact. Two SQL queries whatever the number of addresses.
        """
        addresses = sorted(addresses - user._mailbox_own_addresses())
        found = defaultdict(list)
        if not addresses:
            return found
        companies = user.company_ids.ids
        candidates = (
            self.env["hr.candidate"]
            .sudo()
            .search([("email_normalized", "in", addresses), ("company_id", "in", [False, *companies])])
        )
        for candidate in candidates:
            ongoing = candidate.applicant_ids.filtered(lambda app: app.application_status == "ongoing")
            found[candidate.email_normalized] += [candidate, *ongoing]
        self.env.cr.execute(
            """
            SELECT p.id, p.email
              FROM res_partner p
             WHERE p.active
               AND (p.company_id IS NULL OR p.company_id = ANY(%(companies)s))
               AND (p.email_normalized = ANY(%(addresses)s)
                    OR (p.email ~ '[,;]' AND lower(p.email) LIKE ANY(%(patterns)s)))
               AND NOT EXISTS (SELECT 1 FROM res_users u WHERE u.partner_id = p.id AND NOT u.share)
               AND NOT EXISTS (SELECT 1 FROM hr_candidate c WHERE c.partner_id = p.id)
            """,
            {
                "companies": companies,
                "addresses": addresses,
                "patterns": [f"%{address}%" for address in addresses],
            },
        )
        wanted = set(addresses)
        partners = self.env["res.partner"].sudo()
        for partner_id, partner_email in self.env.cr.fetchall():
            for address in set(email_normalize_all(partner_email)) & wanted:
                found[address].append(partners.browse(partner_id))
        return found

    @api.model
    def _log(self, user, mails):
        """Log mails on their records, once per record.

        ``mails`` is a list of ``(raw bytes, records, author partner)``.
        Returns the number of mails logged on at least one record.
        """
        parsed = [(self._parse(raw), records, author) for raw, records, author in mails]
        self.env.cr.execute(
            "SELECT model, res_id, message_id FROM mail_message WHERE message_id = ANY(%s)",
            [[values["message_id"] for values, _records, _author in parsed]],
        )
        already = set(self.env.cr.fetchall())
        logged = 0
        for values, records, author in parsed:
            targets = [r for r in records if (r._name, r.id, values["message_id"]) not in already]
            for record in targets:
                self._post(record, values, author, user)
                already.add((record._name, record.id, values["message_id"]))
            logged += bool(targets)
        return logged

    @api.model
    def _parse(self, raw):
        """Odoo's own reading of a mail, with a Message-ID that is stable across runs."""
        message = email.message_from_bytes(raw, policy=policy.SMTP)
        message_id = (message.get("Message-ID") or "").strip()
        if not message_id:
            message_id = f"<{hashlib.sha256(raw).hexdigest()[:40]}@cats-mail-sync>"
            del message["Message-ID"]
            message["Message-ID"] = message_id
        try:
            values = self.env["mail.thread"].message_parse(message)
        except Exception:  # noqa: BLE001 - any odd mail is kept, whole, as a file
            _logger.warning("Mail %s could not be read; it is logged as an attached file.", message_id)
            return {
                "message_id": message_id,
                "subject": str(message.get("Subject", "")),
                "email_from": str(message.get("From", "")),
                "body": Markup("<p>%s</p>")
                % self.env._("This mail could not be read; the original is attached."),
                "attachments": [("original.eml", raw, {})],
            }
        values["message_id"] = message_id
        values["to"] = str(message.get("To", ""))
        values["cc"] = str(message.get("Cc", ""))
        values["bcc"] = str(message.get("Bcc", ""))
        return values

    @api.model
    def _post(self, record, values, author, user):
        recipients = [
            (label, values.get(key))
            for label, key in ((self.env._("To"), "to"), (self.env._("Cc"), "cc"), (self.env._("Bcc"), "bcc"))
            if values.get(key)
        ]
        header = Markup("").join(Markup("<b>%s:</b> %s<br/>") % (label, value) for label, value in recipients)
        body = (
            Markup("<p>%s</p>%s") % (header, Markup(values.get("body") or ""))
            if header
            else values.get("body")
        )
        record.sudo().with_context(mail_create_nosubscribe=True, mail_post_autofollow=False).message_post(
            body=Markup(body or ""),
            subject=values.get("subject") or False,
            message_type="email",
            subtype_xmlid="mail.mt_note",
            author_id=author.id or False,
            email_from=values.get("email_from") or False,
            date=values.get("date") or False,
            message_id=values["message_id"],
            attachments=values.get("attachments", []),
            mailbox_user_id=user.id,
        )
