from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

from .. import series

MANAGERS = "hr_recruitment.group_hr_recruitment_manager"


class CatsMailSyncRemoval(models.Model):
    """A logged mail removed from a record: it is never logged on that record again.

    Keeps who removed it (their name too, should the user be deleted), when, from which record,
    and the mail's Message-ID: nothing of the mail's content (no subject, addresses or body).
    """

    _name = "cats_mail_sync.removal"
    _description = "Logged mail removed from a record"
    _order = "removed_at desc, id desc"
    _rec_name = "message_id"

    message_id = fields.Char("Message-ID", required=True, readonly=True, index=True)
    model = fields.Char("Record type", required=True, readonly=True)
    res_id = fields.Many2oneReference("Record ID", model_field="model", required=True, readonly=True)
    mailbox_user_id = fields.Many2one(
        "res.users", "Logged from the mailbox of", readonly=True, index=True, ondelete="set null"
    )
    # Who removed it: the user, and their name (kept when the user is deleted).
    removed_by_id = fields.Many2one("res.users", "Removed by", readonly=True, ondelete="set null")
    removed_by_name = fields.Char("Removed by (name)", readonly=True)
    removed_at = fields.Datetime("Removed on", required=True, readonly=True, default=fields.Datetime.now)

    _once_per_record = series.unique(
        "UNIQUE (message_id, model, res_id)", "This mail was already removed from this record."
    )

    @api.model
    def _removed(self, message_ids):
        """``{(model, res_id, Message-ID)}`` of the mails among ``message_ids`` removed from a record."""
        if not message_ids:
            return set()
        self.env.cr.execute(
            "SELECT model, res_id, message_id FROM cats_mail_sync_removal WHERE message_id = ANY(%s)",
            [list(message_ids)],
        )
        return set(self.env.cr.fetchall())

    @api.model
    def _remove(self, messages):
        """Remove logged ``messages`` from their records, with the files they brought (unless
        another message uses them), and remember each (Message-ID, record) so that no
        synchronization logs it there again. Only the owner of the mailbox a mail came from
        and Recruitment managers may; everybody else gets an AccessError."""
        messages = messages.sudo().exists()
        if not messages:
            return 0
        if not all(messages.mapped("mailbox_user_id")):
            raise UserError(self.env._("Only mail logged from a mailbox can be removed here."))
        user = self.env.user
        if not user.has_group(MANAGERS) and messages.mailbox_user_id != user:
            raise AccessError(
                self.env._(
                    "Only the owner of the mailbox a mail was logged from, or a Recruitment manager, "
                    "can remove it."
                )
            )
        now = fields.Datetime.now()
        removed = self._removed(messages.mapped("message_id"))
        self.sudo().create(
            [
                {
                    "message_id": message.message_id,
                    "model": message.model,
                    "res_id": message.res_id,
                    "mailbox_user_id": message.mailbox_user_id.id,
                    "removed_by_id": user.id,
                    "removed_by_name": user.name,
                    "removed_at": now,
                }
                for message in messages
                if (message.model, message.res_id, message.message_id) not in removed
            ]
        )
        files = messages.attachment_ids
        self.env.cr.execute(
            """
            SELECT DISTINCT attachment_id FROM message_attachment_rel
             WHERE attachment_id = ANY(%s) AND message_id != ALL(%s)
            """,
            [files.ids, messages.ids],
        )
        shared = {row[0] for row in self.env.cr.fetchall()}
        count = len(messages)
        messages.unlink()
        files.filtered(lambda f: f.id not in shared).unlink()
        return count
