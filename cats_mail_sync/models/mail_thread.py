from odoo import models

from .mail_message import LOGGED_MAIL_FIELDS


class MailThread(models.AbstractModel):
    _inherit = "mail.thread"

    def _get_message_create_valid_field_names(self):
        # Accepted by message_post; set by the sync alone (see mail.message).
        return super()._get_message_create_valid_field_names() | LOGGED_MAIL_FIELDS
