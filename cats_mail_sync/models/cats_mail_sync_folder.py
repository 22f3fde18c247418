from odoo import fields, models


class CatsMailSyncFolder(models.Model):
    """Where a mailbox folder was read up to: the sync's cursor.

    (folder, UIDVALIDITY, UID) always names the same message on the server, so
    mail above ``last_uid`` is new as long as ``uidvalidity`` is unchanged.
    """

    _name = "cats_mail_sync.folder"
    _description = "Synchronized mailbox folder"
    _order = "user_id, role"

    user_id = fields.Many2one("res.users", required=True, ondelete="cascade", index=True)
    role = fields.Selection([("inbox", "Inbox"), ("sent", "Sent")], required=True)
    name = fields.Char("Folder", required=True, help="The folder's name on the mail server.")
    uidvalidity = fields.Integer("UIDVALIDITY", required=True)
    last_uid = fields.Integer("Last UID read", required=True)
    synced_at = fields.Datetime("Read up to", required=True, help="When mail up to the last UID was logged.")

    _sql_constraints = [
        ("role_unique", "UNIQUE(user_id, role)", "A mailbox has one Inbox and one Sent folder."),
    ]
