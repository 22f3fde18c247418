from odoo import models


class MailThread(models.AbstractModel):
    _inherit = "mail.thread"

    def _get_message_create_valid_field_names(self):
        return super()._get_message_create_valid_field_names() | {
            "mailbox_user_id",
            "mailbox_to",
            "mailbox_cc",
            "mailbox_bcc",
        }
