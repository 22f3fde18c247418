import re
from datetime import date

from odoo import api, fields, models
from odoo.tools import format_date

from ..mailbox_client.errors import MailboxError

# How long the sync log keeps a run, unless cats_mail_sync.log_days says otherwise.
DEFAULT_LOG_DAYS = 30
# The Inbox's name on every server, where a note names it: not within an address, nor as the
# parent of another folder (Courier's Sent folder is "INBOX.Sent").
INBOX = re.compile(r"(?<![\w@.])INBOX(?![\w@]|[./]\w)")


def with_inbox(env, text):
    """``text`` (a note, a problem) naming the Inbox as the recruiter knows it, in their language."""
    return text and INBOX.sub(env._("Inbox"), text)


def note(message, **params):
    """A sentence of the sync log as it is kept: ``message`` (English, marked with errors' ``_lt``) and its
    values, a date as a date; a :class:`MailboxError` as its sentence and values. Whoever reads the
    run reads it in their own language (:func:`read_notes`)."""
    if isinstance(message, MailboxError):
        message, params = message.message, dict(message.params, **params)
    dates = sorted(name for name, value in params.items() if isinstance(value, date))
    values = {
        name: fields.Date.to_string(value) if name in dates else value for name, value in params.items()
    }
    return {"message": message, "params": values, "dates": dates}


def in_english(notes):
    """``notes`` as the run's text fields keep them: in English, one a line (the server log's words)."""
    lines = []
    for kept in notes:
        if isinstance(kept, str):
            lines.append(kept)
        else:
            lines.append(kept["message"] % kept["params"] if kept["params"] else kept["message"])
    return "\n".join(lines)


def read_notes(env, notes):
    """``notes`` (those of :func:`note`, or technical lines kept as they are) in ``env``'s language,
    one a line, the Inbox named as the reader knows it."""
    lines = []
    for kept in notes or ():
        if isinstance(kept, str):
            lines.append(kept)
            continue
        sentence, dates = kept["message"], kept["dates"]  # a name, not a string, for the term extraction
        params = {
            name: format_date(env, value) if name in dates else value
            for name, value in kept["params"].items()
        }
        lines.append(env._(sentence, **params))
    return with_inbox(env, "\n".join(lines)) or False


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
    # The new mail of the run (the scan) apart from the mail it found looking back: a run that only
    # looked back read no new mail, and says so.
    looked_at = fields.Integer(
        "New mails read",
        help="Mails that arrived since the last run; the mails read looking back are not counted.",
    )
    matched = fields.Integer("New mails matched", help="New mails with a candidate or contact.")
    logged = fields.Integer("Mails logged", help="New mails logged and mails logged looking back.")
    logged_new = fields.Integer("New mails logged", compute="_compute_logged_new", store=True)
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
    # What the run has to say, in English. Runs recorded before their sentences were kept hold it in
    # the language the run was made in, and are read so; newer ones keep their sentences too
    # (``notes``: {field: notes of :func:`note`}), read in the reader's language.
    look_back_note = fields.Text("Looking back")
    look_back_done = fields.Text(
        "History done", help="A history (the earlier mail asked for at activation) logged to its end."
    )
    # As the recruiter reads them: news apart from what to check, the Inbox named as they know it.
    look_back_info = fields.Text("Looking back, done", compute="_compute_shown")
    look_back_warning = fields.Text("Looking back, to check", compute="_compute_shown")
    error = fields.Text("Problem")
    notes = fields.Json("Sentences of the run")
    error_shown = fields.Text("What went wrong", compute="_compute_shown")
    unexpected = fields.Boolean(
        "Unexpected error",
        help="A fault in Odoo or in this module, not in the mailbox: report it to your administrator "
        "(the server log has the details).",
    )
    announced = fields.Boolean(
        "Within seconds",
        help="Started for new mail the listener (IMAP IDLE) heard of, seconds after it arrived; "
        "otherwise a scheduled run, every 10 minutes.",
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

    @api.depends("logged", "logged_back")
    def _compute_logged_new(self):
        for run in self:
            run.logged_new = run.logged - run.logged_back

    @api.depends("look_back_note", "look_back_done", "error", "notes")
    @api.depends_context("lang")
    def _compute_shown(self):
        for run in self:
            run.look_back_info = run._read("look_back_done")
            run.look_back_warning = run._read("look_back_note")
            run.error_shown = run._read("error")

    def _read(self, name):
        """The text ``name`` (error, look_back_note, look_back_done) in the reader's language."""
        if self.notes and name in self.notes:
            return read_notes(self.env, self.notes[name])
        return with_inbox(self.env, self[name])

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
    folder_label = fields.Char("In folder", compute="_compute_folder_label")
    message_id = fields.Char("Message-ID")
    subject = fields.Char()
    date = fields.Char()
    reason = fields.Text("Reason as recorded", required=True)  # in English (see the run's error)
    reason_note = fields.Json("Why, as a sentence")  # a note of note(), read in the reader's language
    reason_shown = fields.Text("Reason", compute="_compute_reason_shown")

    @api.depends("folder")
    @api.depends_context("lang")
    def _compute_folder_label(self):
        for skipped in self:
            skipped.folder_label = with_inbox(self.env, skipped.folder)

    @api.depends("reason", "reason_note")
    @api.depends_context("lang")
    def _compute_reason_shown(self):
        for skipped in self:
            skipped.reason_shown = (
                read_notes(self.env, [skipped.reason_note]) if skipped.reason_note else skipped.reason
            )
