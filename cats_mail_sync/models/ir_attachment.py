from odoo import fields, models


class IrAttachment(models.Model):
    _inherit = "ir.attachment"

    mailbox_user_id = fields.Many2one(
        "res.users",
        "Logged from the mailbox of",
        index="btree_not_null",
        readonly=True,
        ondelete="set null",
        help="Set on files of mail that cats_mail_sync logged: as private as that mail.",
    )
