from email.utils import getaddresses

from odoo import api, fields, models
from odoo.exceptions import AccessError
from odoo.tools.sql import column_exists, create_column

from .. import database, series

# What makes a message logged mail, whose mailbox it came from and which record it says it is on:
# set by the sync alone.
LOGGED_MAIL_FIELDS = {
    "mailbox_user_id",
    "mailbox_to",
    "mailbox_cc",
    "mailbox_bcc",
    "mailbox_record_type",
    "mailbox_record",
}


# The logged mail's filters by record type (views/mail_message_views.xml), and their type.
RECORD_TYPE_FILTERS = {
    "candidates": "hr.candidate",
    "applications": "hr.applicant",
    "talents": "talent",
    "contacts": "res.partner",
}


def shown_addresses(header):
    """A header's addresses as the lists and the chatter show them, whichever header and mail
    client: "Name <address>" (or the address alone), without quotes around a name unless it holds
    a comma (the list would not say where one address ends); a header that is no list of
    addresses (a mail logged in its safest form) as it is written."""
    if not header:
        return False
    pairs = getaddresses([header])
    if not pairs or not all("@" in address for _name, address in pairs):
        return header
    return ", ".join(_shown_address(name, address) for name, address in pairs)


def _shown_address(name, address):
    if not name or name == address:
        return address
    return f'"{name}" <{address}>' if "," in name else f"{name} <{address}>"


class MailMessage(models.Model):
    _inherit = "mail.message"

    mailbox_user_id = fields.Many2one(
        "res.users",
        "Logged from the mailbox of",
        index="btree_not_null",
        readonly=True,
        copy=False,
        ondelete="set null",
        help="Set on mail that cats_mail_sync logged from this user's mailbox.",
    )
    mailbox_to = fields.Char(
        "Sent to", readonly=True, copy=False, help="The recipients (To) of a logged mail."
    )
    mailbox_cc = fields.Char(
        "Copy to", readonly=True, copy=False, help="The recipients in copy (Cc) of a logged mail."
    )
    mailbox_bcc = fields.Char(
        "Blind copy to",
        readonly=True,
        copy=False,
        help="The blind copy (Bcc) recipients a logged mail's record was found through; never any other.",
    )
    mailbox_attachment_count = fields.Integer(
        "Number of attachments", compute="_compute_mailbox_attachment_count"
    )
    # Stored, to group by: a candidate and their application, of one name, are two groups (the
    # application is named with its job). Named when the mail is logged, as record_name is.
    mailbox_record_type = fields.Selection(
        series.RECORD_TYPES,
        "Record type",
        compute="_compute_mailbox_record",
        store=True,
        help="Whether the record a logged mail is on is a candidate, an application or a contact.",
    )
    mailbox_record = fields.Char(
        "Record",
        compute="_compute_mailbox_record",
        store=True,
        help="The name of the record a logged mail is on; of an application, with its job.",
    )
    mailbox_sender = fields.Char("Sender", compute="_compute_mailbox_shown_addresses")
    mailbox_to_shown = fields.Char("Addressed to", compute="_compute_mailbox_shown_addresses")
    mailbox_cc_shown = fields.Char("In copy", compute="_compute_mailbox_shown_addresses")

    @api.model_create_multi
    def create(self, vals_list):
        # Only values count: a copy of a message (Odoo's own copy() does so) names every field.
        self._check_logged_mail_fields({name for vals in vals_list for name, value in vals.items() if value})
        return super().create(vals_list)

    def write(self, vals):
        self._check_logged_mail_fields(vals)
        return super().write(vals)

    @api.model
    def _check_logged_mail_fields(self, names):
        """Only the sync, as superuser, makes a message logged mail. A user who could set these
        fields (message_post and create are RPC methods) could pass a note off as mail logged from
        a colleague's mailbox, or keep a real mail from being logged on a record (once per
        Message-ID and record)."""
        if not self.env.su and LOGGED_MAIL_FIELDS & set(names):
            raise AccessError(
                self.env._("Only the synchronization of a mailbox marks a message as logged mail.")
            )

    @api.depends("attachment_ids")
    def _compute_mailbox_attachment_count(self):
        for message in self:
            message.mailbox_attachment_count = len(message.sudo().attachment_ids)

    @api.depends("mailbox_user_id", "model", "res_id", "record_name")
    def _compute_mailbox_record(self):
        logged = self.filtered(lambda message: message.mailbox_user_id and message.model in self.env)
        # sudo: the type and job of a record whose mail the reader may read
        records = {}
        for model in {message.model for message in logged}:
            ids = {message.res_id for message in logged if message.model == model}
            records.update(
                {(model, record.id): record for record in self.env[model].sudo().browse(ids).exists()}
            )
        types = dict(series.RECORD_TYPES)
        (self - logged).update({"mailbox_record_type": False, "mailbox_record": False})
        for message in logged:
            record = records.get((message.model, message.res_id))
            record_type = series.record_type(record) if record is not None else message.model
            job = record is not None and "job_id" in record._fields and record.job_id.name
            message.mailbox_record_type = record_type if record_type in types else False
            message.mailbox_record = f"{job} — {message.record_name}" if job else message.record_name

    @api.depends("email_from", "mailbox_to", "mailbox_cc")
    def _compute_mailbox_shown_addresses(self):
        for message in self:
            message.mailbox_sender = shown_addresses(message.email_from)
            message.mailbox_to_shown = shown_addresses(message.mailbox_to)
            message.mailbox_cc_shown = shown_addresses(message.mailbox_cc)

    def _mailbox_record_label(self):
        """The record a logged mail is on, in the reader's language: "Application: Welder — Sofia Jansen"."""
        self.ensure_one()
        types = dict(self._fields["mailbox_record_type"]._description_selection(self.env))
        return self.env._(
            "%(type)s: %(record)s", type=types.get(self.mailbox_record_type), record=self.mailbox_record
        )

    def _auto_init(self):
        # Made here on a database with mail already, and computed for the logged mail only: the
        # ORM would compute them for every message of the database, most of them not logged.
        cr = self.env.cr
        new = not column_exists(cr, self._table, "mailbox_record_type")
        if new:
            create_column(cr, self._table, "mailbox_record_type", "varchar")
            create_column(cr, self._table, "mailbox_record", "varchar")
        result = super()._auto_init()
        if new:
            cr.execute("SELECT id FROM mail_message WHERE mailbox_user_id IS NOT NULL")
            logged = self.browse([row[0] for row in cr.fetchall()])
            self.env.add_to_compute(self._fields["mailbox_record_type"], logged)
            self.env.add_to_compute(self._fields["mailbox_record"], logged)
        return result

    def init(self):
        super().init()
        database.make(self.env.cr, self._table)

    @api.model
    def _get_view(self, view_id=None, view_type="form", **options):
        arch, view = super()._get_view(view_id, view_type, **options)
        # The logged mail's filters by record type: only the types this Odoo logs on (no
        # "Candidates" where there are none).
        if view == self.env.ref("cats_mail_sync.mail_message_view_search_logged", raise_if_not_found=False):
            types = dict(series.RECORD_TYPES)
            absent = {name for name, record_type in RECORD_TYPE_FILTERS.items() if record_type not in types}
            for node in [node for node in arch.iter("filter") if node.get("name") in absent]:
                node.getparent().remove(node)
        return arch, view

    def _extras_to_store(self, store, format_reply):  # pylint: disable=missing-return
        super()._extras_to_store(store, format_reply=format_reply)
        # Said in the viewer's language when the chatter loads, not frozen in the sync's.
        for message in self:
            # sudo: the name of the mailbox owner of a mail the viewer may read
            owner = message.sudo().mailbox_user_id
            if owner:
                # To and Cc where the chatter does not show them itself; the Bcc it was logged
                # through always (Odoo's fields never hold a Bcc).
                shown_by_odoo = series.SHOWS_RECIPIENTS
                recipients = [
                    {"label": label, "value": value}
                    for label, value in (
                        (self.env._("To"), not shown_by_odoo and message.mailbox_to_shown),
                        (self.env._("Cc"), not shown_by_odoo and message.mailbox_cc_shown),
                        (self.env._("Bcc"), shown_addresses(message.mailbox_bcc)),
                    )
                    if value
                ]
                line = self.env._("Logged from the mailbox of %(name)s", name=owner.name)
                # A sender who is no contact is named as in the lists, not as the raw header
                # (after the author's fields: the extras come last, on Odoo 18 and 19 alike).
                store.add(
                    message,
                    {
                        "cats_mailbox_line": line,
                        "cats_mailbox_recipients": recipients,
                        "email_from": message.mailbox_sender,
                    },
                )

    def action_mailbox_remove(self):
        """Remove these logged mails from their records; they are never logged there again
        (the "Remove" button of the logged mail; also the RPC API). Says what went; the list is
        then read again, so that a group left empty goes."""
        # Named before they go; sudo: said only once _remove allowed it.
        records = {
            (message.model, message.res_id): message._mailbox_record_label()
            for message in self.sudo().exists()
        }
        count = self.env["cats_mail_sync.removal"]._remove(self)
        if not count:
            return _notification(self.env._("This mail was removed already."), "warning")
        if len(records) > 1:
            message = self.env._(
                "%(count)s mails removed from %(records)s records; they will not be logged there again.",
                count=count,
                records=len(records),
            )
        elif count > 1:
            message = self.env._(
                "%(count)s mails removed from %(record)s; they will not be logged there again.",
                count=count,
                record=next(iter(records.values())),
            )
        else:
            message = self.env._(
                "1 mail removed from %(record)s; it will not be logged there again.",
                record=next(iter(records.values())),
            )
        return _notification(message, "success")

    def action_mailbox_open_record(self):
        """The record a logged mail is on."""
        self.ensure_one()
        self.check_access("read")
        return {
            "type": "ir.actions.act_window",
            "res_model": self.model,
            "res_id": self.res_id,
            "views": [(False, "form")],
        }


def _notification(message, kind):
    """A notification, after which the list it came from is read again."""
    return {
        "type": "ir.actions.client",
        "tag": "display_notification",
        "params": {"message": message, "type": kind, "next": {"type": "ir.actions.act_window_close"}},
    }
