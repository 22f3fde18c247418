from odoo import api, fields, models

# How long the sync log keeps a run, unless cats_mail_sync.log_days says otherwise.
DEFAULT_LOG_DAYS = 30


class CatsMailSyncRun(models.Model):
    """One synchronization of one mailbox: what was looked at, logged, skipped, and why."""

    _name = "cats_mail_sync.run"
    _description = "Mailbox synchronization run"
    _order = "started_at desc, id desc"
    _rec_name = "started_at"

    user_id = fields.Many2one("res.users", "Mailbox of", required=True, ondelete="cascade", index=True)
    started_at = fields.Datetime("Started", required=True, default=fields.Datetime.now)
    duration = fields.Float("Seconds", digits=(16, 2))
    folders = fields.Char("Folders read")
    looked_at = fields.Integer("Mails looked at")
    matched = fields.Integer("Mails matched")
    logged = fields.Integer("Mails logged")
    shortened = fields.Integer(
        "Logged without attachments",
        help="Mails above the size limit (cats_mail_sync.max_mail_mb): logged with their text and "
        "a note naming the attachments left out.",
    )
    skipped = fields.Integer("Mails skipped")
    looked_back_for = fields.Integer(
        "Addresses looked back for",
        help="New addresses of candidates and contacts whose earlier mail (since activation) was "
        "searched for.",
    )
    found_back = fields.Integer("Mails found looking back")
    logged_back = fields.Integer("Mails logged looking back", help="Also counted in Mails logged.")
    look_back_note = fields.Text("Looking back")
    error = fields.Text("Problem")
    unexpected = fields.Boolean(
        "Unexpected error",
        help="A fault in Odoo or in this module, not in the mailbox: report it to your administrator "
        "(the server log has the details).",
    )
    skipped_ids = fields.One2many("cats_mail_sync.skipped", "run_id", "Skipped mails")
    logged_message_ids = fields.Many2many(
        "mail.message",
        "cats_mail_sync_run_message_rel",
        "run_id",
        "message_id",
        "Mails logged by this run",
        help="One line per record a mail was logged on; a mail removed since is no longer listed.",
    )
    folders_label = fields.Char("Folders", compute="_compute_folders_label")

    @api.depends("started_at")
    @api.depends_context("lang", "tz")
    def _compute_display_name(self):
        # In the user's own date format and time zone, as the fields show it.
        lang = self.env["res.lang"]._get_data(code=self.env.lang or "en_US")
        pattern = f"{lang.date_format or '%m/%d/%Y'} {lang.time_format or '%H:%M:%S'}"
        for run in self:
            started = run.started_at and fields.Datetime.context_timestamp(run, run.started_at)
            run.display_name = self.env._(
                "Synchronization of %(date)s", date=started.strftime(pattern) if started else ""
            )

    @api.depends("folders")
    @api.depends_context("lang")
    def _compute_folders_label(self):
        inbox = self.env._("Inbox")
        for run in self:
            names = [name.strip() for name in (run.folders or "").split(",") if name.strip()]
            run.folders_label = ", ".join(inbox if name.upper() == "INBOX" else name for name in names)

    @api.autovacuum
    def _gc_old_runs(self):
        days = int(
            self.env["ir.config_parameter"].sudo().get_param("cats_mail_sync.log_days") or DEFAULT_LOG_DAYS
        )
        self.search(
            [("started_at", "<", fields.Datetime.subtract(fields.Datetime.now(), days=days))]
        ).unlink()


class CatsMailSyncSkipped(models.Model):
    """A mail that could not be logged, even in its safest form."""

    _name = "cats_mail_sync.skipped"
    _description = "Mail skipped by a synchronization"
    _order = "id"

    run_id = fields.Many2one("cats_mail_sync.run", required=True, ondelete="cascade", index=True)
    user_id = fields.Many2one(related="run_id.user_id", store=True)
    folder = fields.Char()
    message_id = fields.Char("Message-ID")
    subject = fields.Char()
    date = fields.Char()
    reason = fields.Text(required=True)
