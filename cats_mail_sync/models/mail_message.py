from odoo import api, fields, models
from odoo.exceptions import AccessError

from .. import database

# What makes a message logged mail, and whose mailbox it came from: set by the sync alone.
LOGGED_MAIL_FIELDS = {"mailbox_user_id", "mailbox_to", "mailbox_cc", "mailbox_bcc"}


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

    def init(self):
        super().init()
        database.make(self.env.cr, self._table)

    def _extras_to_store(self, store, format_reply):  # pylint: disable=missing-return
        super()._extras_to_store(store, format_reply=format_reply)
        # Said in the viewer's language when the chatter loads, not frozen in the sync's.
        for message in self:
            # sudo: the name of the mailbox owner of a mail the viewer may read
            owner = message.sudo().mailbox_user_id
            if owner:
                recipients = [
                    {"label": label, "value": value}
                    for label, value in (
                        (self.env._("To"), message.mailbox_to),
                        (self.env._("Cc"), message.mailbox_cc),
                        (self.env._("Bcc"), message.mailbox_bcc),
                    )
                    if value
                ]
                line = self.env._("Logged from the mailbox of %(name)s", name=owner.name)
                store.add(message, {"cats_mailbox_line": line, "cats_mailbox_recipients": recipients})

    def action_mailbox_remove(self):
        """Remove these logged mails from their records; they are never logged there again
        (the "Remove" button of the logged mail; also the RPC API)."""
        self.env["cats_mail_sync.removal"]._remove(self)
        return {"type": "ir.actions.client", "tag": "soft_reload"}

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
