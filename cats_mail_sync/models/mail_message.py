from odoo import fields, models


class MailMessage(models.Model):
    _inherit = "mail.message"

    mailbox_user_id = fields.Many2one(
        "res.users",
        "Logged from the mailbox of",
        index="btree_not_null",
        readonly=True,
        ondelete="set null",
        help="Set on mail that cats_mail_sync logged from this user's mailbox.",
    )

    def init(self):
        super().init()
        # A mail is logged at most once on a record, even when two mailboxes
        # log it at the same moment: the second transaction fails and retries.
        self.env.cr.execute(
            """
            CREATE UNIQUE INDEX IF NOT EXISTS mail_message_cats_mail_sync_once
                ON mail_message (res_id, model, message_id)
             WHERE mailbox_user_id IS NOT NULL
            """
        )
