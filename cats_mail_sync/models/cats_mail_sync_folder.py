from datetime import timedelta

from odoo import api, fields, models

from .. import series


class CatsMailSyncFolder(models.Model):
    """Where a mailbox folder was read up to: the sync's cursor.

    (folder, UIDVALIDITY, UID) always names the same message on the server, so
    mail above ``last_uid`` is new as long as ``uidvalidity`` is unchanged.

    Mail from ``first_uid`` (the first UID after activation, under ``first_uidvalidity``) up to
    ``last_uid`` is what a look-back searches for a new address; ``look_back_date`` and
    ``look_back_id`` say which addresses (``cats_mail_sync.look_back``) it has looked back for.
    """

    _name = "cats_mail_sync.folder"
    _description = "Synchronized mailbox folder"
    _order = "role, id"  # Inbox first; by id, not by user: no join to read a mailbox's folders

    user_id = fields.Many2one("res.users", required=True, ondelete="cascade", index=True)
    role = fields.Selection([("inbox", "Inbox"), ("sent", "Sent")], required=True)
    name = fields.Char("Folder", required=True, help="The folder's name on the mail server.")
    uidvalidity = fields.Integer("UIDVALIDITY", required=True)
    last_uid = fields.Integer("Last UID read", required=True)
    synced_at = fields.Datetime("Read up to", required=True, help="When mail up to the last UID was logged.")
    first_uid = fields.Integer(
        "First UID after activation", help="0 when unknown (activated before look-backs): the date then."
    )
    first_uidvalidity = fields.Integer("UIDVALIDITY of the first UID")
    look_back_date = fields.Datetime(
        "Looked back up to",
        required=True,
        default=fields.Datetime.now,
        help="Of the last address looked back for.",
    )
    look_back_id = fields.Integer("Last address looked back for", default=0)
    look_back_uid = fields.Integer(
        "Looked back up to UID", help="Of the next addresses' mails, those up to this UID are done."
    )
    look_back_step_id = fields.Integer(
        "Last address of the step under way", help="The next addresses end there while a step is under way."
    )
    look_back_uidvalidity = fields.Integer("UIDVALIDITY of the look-back's UIDs")
    history_from = fields.Datetime(
        "History from",
        help="Mail from before activation back to this date is logged too (asked at activation).",
    )
    history_uid = fields.Integer("History done up to UID")
    history_done_at = fields.Datetime("History done")
    unread_tries = fields.Json(
        "Mails not read yet",
        help="{UID: runs it was tried at} of the mails whose header the server's answers did not hold: "
        "the folder is read up to the first of them, which is passed over (and named in the sync log) "
        "after as many runs as a failure is retried at every run.",
        copy=False,
    )
    look_back_refused = fields.Boolean(
        "Search refused", help="The server refused the last look-back's search: tried again at the next run."
    )

    _role_unique = series.unique("UNIQUE(user_id, role)", "A mailbox has one Inbox and one Sent folder.")

    @api.model_create_multi
    def create(self, vals_list):
        # Activation: mail from the folder's next UID on is the mailbox's; addresses queued
        # before are for the scan (their records match from now on).
        now = self.env.cr.now()
        for vals in vals_list:
            if "first_uid" not in vals and "last_uid" in vals:
                vals.update(first_uid=vals["last_uid"] + 1, first_uidvalidity=vals.get("uidvalidity"))
            vals.setdefault("look_back_date", now)
            # The history the recruiter asked for: this many days before activation.
            days = self.env["res.users"].sudo().browse(vals.get("user_id")).mailbox_history
            if days and days != "none" and "history_from" not in vals:
                vals["history_from"] = fields.Datetime.now() - timedelta(days=int(days))
        return super().create(vals_list)
