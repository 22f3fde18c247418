import logging
import threading
from datetime import timedelta

from imapclient.exceptions import IMAPClientError

from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import email_normalize

from ..mailbox_client import connection, errors
from ..mailbox_client.reader import INBOX, MailboxReader, batches

_logger = logging.getLogger(__name__)

SECURITY = [("ssl", "SSL/TLS"), ("starttls", "STARTTLS")]
# Settings that decide where and as whom the mailbox logs in.
CONNECTION_FIELDS = {
    "mailbox_email",
    "mailbox_login",
    "mailbox_password",
    "mailbox_imap_host",
    "mailbox_imap_port",
    "mailbox_imap_security",
}
MAILBOX_FIELDS = CONNECTION_FIELDS | {"mailbox_smtp_host", "mailbox_smtp_port", "mailbox_smtp_security"}
# The password reads back empty: listing it keeps the profile form readable.
MAILBOX_READABLE_FIELDS = MAILBOX_FIELDS | {
    "mailbox_state",
    "mailbox_activated_at",
    "mailbox_last_sync_at",
    "mailbox_error",
    "mailbox_logged_count",
}
# Network trouble is retried at every run; this many failures in a row (one
# hour at one run every ten minutes) put the mailbox in error.
FAILURES_BEFORE_ERROR = 6
# Key space of the PostgreSQL advisory locks that keep two runs off one mailbox.
LOCK_SPACE = 0x4341_5453  # "CATS"


def in_test_mode():
    return getattr(threading.current_thread(), "testing", False)


# Mailbox fields are the owner's (through SELF_READABLE/WRITEABLE_FIELDS) and
# the administrators'; other users, who may read res.users, see none of them
# but the status, which the profile form's buttons depend on.
MAILBOX_GROUPS = "base.group_system"


class ResUsers(models.Model):
    _inherit = "res.users"

    mailbox_email = fields.Char(
        "Mailbox address", groups=MAILBOX_GROUPS, help="The address you send and receive mail with."
    )
    mailbox_login = fields.Char("Mailbox login", groups=MAILBOX_GROUPS, help="Usually your mail address.")
    mailbox_password = fields.Char(
        "Mailbox password",
        compute="_compute_mailbox_password",
        inverse="_inverse_mailbox_password",
        groups=MAILBOX_GROUPS,
        copy=False,
        help="Can be written, never read back: it is kept where no screen or API can show it.",
    )
    mailbox_imap_host = fields.Char("IMAP server", groups=MAILBOX_GROUPS)
    mailbox_imap_port = fields.Integer("IMAP port", groups=MAILBOX_GROUPS, default=993)
    mailbox_imap_security = fields.Selection(SECURITY, "IMAP security", groups=MAILBOX_GROUPS, default="ssl")
    mailbox_smtp_host = fields.Char("SMTP server", groups=MAILBOX_GROUPS)
    mailbox_smtp_port = fields.Integer("SMTP port", groups=MAILBOX_GROUPS, default=465)
    mailbox_smtp_security = fields.Selection(SECURITY, "SMTP security", groups=MAILBOX_GROUPS, default="ssl")
    mailbox_state = fields.Selection(
        [
            ("not_configured", "Not configured"),
            ("inactive", "Not active"),
            ("active", "Active"),
            ("error", "Error"),
        ],
        "Mailbox status",
        default="not_configured",
        required=True,
        readonly=True,
        copy=False,
    )
    mailbox_activated_at = fields.Datetime(
        "Logging mail since", groups=MAILBOX_GROUPS, readonly=True, copy=False
    )
    mailbox_last_sync_at = fields.Datetime(
        "Last synchronized", groups=MAILBOX_GROUPS, readonly=True, copy=False
    )
    mailbox_error = fields.Text("Mailbox problem", groups=MAILBOX_GROUPS, readonly=True, copy=False)
    mailbox_failures = fields.Integer(
        "Failed runs in a row", groups=MAILBOX_GROUPS, readonly=True, copy=False
    )
    mailbox_logged_count = fields.Integer(
        "Mails logged", groups=MAILBOX_GROUPS, compute="_compute_mailbox_logged_count"
    )
    mailbox_mail_server_id = fields.Many2one(
        "ir.mail_server", "Outgoing mail server", groups=MAILBOX_GROUPS, readonly=True, copy=False
    )
    mailbox_folder_ids = fields.One2many(
        "cats_mail_sync.folder", "user_id", "Synchronized folders", groups=MAILBOX_GROUPS
    )

    @property
    def SELF_READABLE_FIELDS(self):
        return super().SELF_READABLE_FIELDS + sorted(MAILBOX_READABLE_FIELDS)

    @property
    def SELF_WRITEABLE_FIELDS(self):
        return super().SELF_WRITEABLE_FIELDS + sorted(MAILBOX_FIELDS)

    @api.model
    def get_view(self, view_id=None, view_type="form", **options):
        # The Preferences form only ever shows the user's own record, whose
        # mailbox fields they may read: keep those fields in it, as hr does for
        # its "My Profile" form (which derives from this one).
        preferences = self.env.ref("base.view_users_form_simple_modif", raise_if_not_found=False)
        users = self.with_user(SUPERUSER_ID) if preferences and view_id == preferences.id else self
        return super(ResUsers, users).get_view(view_id, view_type, **options)

    def init(self):
        super().init()
        # The password lives in a column without ORM field, as auth_totp does
        # for its secret: no read, export, search or group-by can reach it.
        self.env.cr.execute("ALTER TABLE res_users ADD COLUMN IF NOT EXISTS cats_mailbox_password varchar")

    def _compute_mailbox_password(self):
        self.mailbox_password = False

    def _inverse_mailbox_password(self):
        for user in self:
            if user.mailbox_password:
                self.env.cr.execute(
                    "UPDATE res_users SET cats_mailbox_password = %s WHERE id = %s",
                    (user.mailbox_password, user.id),
                )
        # Forget the typed value, or a read in the same request would return it.
        self.invalidate_recordset(["mailbox_password"])

    def _compute_mailbox_logged_count(self):
        counts = dict(
            self.env["mail.message"]
            .sudo()
            ._read_group(
                [("mailbox_user_id", "in", self.ids)], ["mailbox_user_id"], ["message_id:count_distinct"]
            )
        )
        for user in self:
            user.mailbox_logged_count = counts.get(user, 0)

    def write(self, vals):
        result = super().write(vals)
        if CONNECTION_FIELDS & set(vals):
            self._mailbox_settings_changed()
        if MAILBOX_FIELDS & set(vals):
            self._mailbox_update_mail_server()
        return result

    def _mailbox_settings_changed(self):
        """New settings end an error (logins resume) and say what is possible now."""
        for user in self.sudo():
            if not user._mailbox_is_configured():
                state = "not_configured"
            elif user.mailbox_state == "active" or (
                user.mailbox_state == "error" and user.mailbox_folder_ids
            ):
                state = "active"
            else:
                state = "inactive"
            if state != user.mailbox_state or user.mailbox_error:
                super(ResUsers, user).write(
                    {"mailbox_state": state, "mailbox_error": False, "mailbox_failures": 0}
                )

    # ------------------------------------------------------------------
    # Actions (buttons on the profile; also the XML-RPC / JSON-RPC API)
    # ------------------------------------------------------------------

    def action_mailbox_configure(self):
        """Open the set-up assistant (provider, detection, settings, test)."""
        self.ensure_one()
        user = self._mailbox_check_access()
        setup = self.env["cats_mail_sync.setup"].create(
            {
                "user_id": user.id,
                "email": user.mailbox_email or user.email,
                "login": user.mailbox_login,
                "imap_host": user.mailbox_imap_host,
                "imap_port": user.mailbox_imap_port,
                "imap_security": user.mailbox_imap_security,
                "smtp_host": user.mailbox_smtp_host,
                "smtp_port": user.mailbox_smtp_port,
                "smtp_security": user.mailbox_smtp_security,
            }
        )
        return setup._reopen()

    def action_mailbox_activate(self):
        """Connect, find Inbox and Sent, and start logging mail arriving from now on."""
        self.ensure_one()
        user = self._mailbox_check_access()
        if not user._mailbox_is_configured():
            raise UserError(self.env._("Fill in the mailbox address, login, password and IMAP server first."))
        now = fields.Datetime.now()
        try:
            with user._mailbox_connect() as client:
                reader = MailboxReader(client)
                folders = {"inbox": INBOX, "sent": reader.find_sent_folder()}
                statuses = {role: reader.status(name) for role, name in folders.items()}
        except errors.MailboxError as error:
            raise UserError(user._mailbox_explain(error)) from None
        except (IMAPClientError, OSError):
            raise UserError(user._mailbox_explain(errors.MailboxError())) from None
        user.mailbox_folder_ids.unlink()
        self.env["cats_mail_sync.folder"].sudo().create(
            [
                {
                    "user_id": user.id,
                    "role": role,
                    "name": name,
                    "uidvalidity": statuses[role].uidvalidity,
                    "last_uid": statuses[role].last_uid,
                    "synced_at": now,
                }
                for role, name in folders.items()
            ]
        )
        user._mailbox_set_state("active", mailbox_activated_at=now, mailbox_last_sync_at=now)
        return True

    def action_mailbox_deactivate(self):
        """Stop logging mail; settings stay, a later activation starts afresh."""
        for user in self:
            mailbox = user._mailbox_check_access()
            mailbox.mailbox_folder_ids.unlink()
            mailbox._mailbox_set_state("inactive" if mailbox._mailbox_is_configured() else "not_configured")
        return True

    def action_mailbox_sync(self):
        """Log new mail now (the "Sync now" button).

        Returns a notification saying what happened; a failure is recorded on
        the mailbox like a scheduled run's (not raised, which would undo that).
        """
        self.ensure_one()
        user = self._mailbox_check_access()
        if user.mailbox_state != "active":
            raise UserError(self.env._("Activate the mailbox first."))
        logged = user._mailbox_sync()
        if logged is None:
            kind, message = (
                "warning",
                self.env._("This mailbox is being synchronized right now; try again in a minute."),
            )
        elif user.mailbox_state != "active" or user.mailbox_failures:
            kind, message = "danger", user.mailbox_error
        else:
            kind, message = "success", self.env._("New mails logged: %(count)s.", count=logged)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": kind,
                "message": message,
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    @api.model
    def _cron_sync_mailboxes(self):
        """Scheduled action: log new mail of every active mailbox, one at a time."""
        users = self.sudo().search([("mailbox_state", "=", "active")])
        for user in users:
            user._mailbox_sync()
            user._mailbox_commit()

    # ------------------------------------------------------------------
    # Synchronization
    # ------------------------------------------------------------------

    def _mailbox_sync(self):
        """Log this mailbox's new mail; the number logged, None when another run holds it."""
        self.ensure_one()
        cr = self.env.cr
        cr.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_SPACE, self.id))
        if not cr.fetchone()[0]:
            return None
        try:
            logged = 0
            with self._mailbox_connect() as client:
                reader = MailboxReader(client)
                for folder in self.mailbox_folder_ids:
                    logged += self._mailbox_sync_folder(reader, folder)
            self._mailbox_set_state("active", mailbox_last_sync_at=fields.Datetime.now())
            return logged
        except Exception as error:  # noqa: BLE001 - one mailbox's trouble never stops the others
            # Work not yet committed was undone by its batch's savepoint.
            self._mailbox_failed(error)
            return 0
        finally:
            cr.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_SPACE, self.id))

    def _mailbox_sync_folder(self, reader, folder):
        """Log the new mail of one folder, committing batch by batch."""
        status = reader.status(folder.name)
        rescan = status.uidvalidity != folder.uidvalidity
        if not rescan and status.last_uid <= folder.last_uid:
            return 0
        reader.open(folder.name)
        if rescan:
            # The server renumbered the folder: look again at everything since
            # the last good sync; logging by Message-ID keeps it once per record.
            uids = reader.uids_since((folder.synced_at - timedelta(days=1)).date())
        else:
            uids = reader.uids_after(folder.last_uid)
        logged = 0
        for batch in batches(uids):
            with self.env.cr.savepoint():
                headers = reader.headers(batch)
                if rescan:
                    headers = [
                        h for h in headers if not h.received or h.received >= self.mailbox_activated_at
                    ]
                logged += self._mailbox_log(reader, headers, with_bcc=folder.role == "sent")
                folder.write(
                    {
                        "uidvalidity": status.uidvalidity,
                        "last_uid": max(batch),
                        "synced_at": fields.Datetime.now(),
                    }
                )
            self._mailbox_commit()
        # Everything up to the STATUS taken above has now been looked at.
        folder.write(
            {
                "uidvalidity": status.uidvalidity,
                "last_uid": max([status.last_uid, *uids]),
                "synced_at": fields.Datetime.now(),
            }
        )
        return logged

    def _mailbox_log(self, reader, headers, with_bcc):
        """Match a batch of headers, fetch the matching mails whole, log them."""
        logger = self.env["cats_mail_sync.logger"]
        matches = logger._match(set().union(*(h.addresses(with_bcc) for h in headers)), self)
        own = self._mailbox_own_addresses()
        found = {}
        for header in headers:
            records = list(
                dict.fromkeys(r for a in sorted(header.addresses(with_bcc)) for r in matches.get(a, []))
            )
            if records:
                found[header.uid] = (records, self._mailbox_author(header, matches, own))
        if not found:
            return 0
        raw = reader.messages(list(found))
        return logger._log(self, [(raw[uid], records, author) for uid, (records, author) in found.items()])

    def _mailbox_author(self, header, matches, own):
        for sender in sorted(header.senders):
            if sender in own:
                return self.partner_id
            for record in matches.get(sender, []):
                if record._name == "hr.candidate" and record.partner_id:
                    return record.partner_id
                if record._name == "res.partner":
                    return record
        return self.env["res.partner"]

    def _mailbox_failed(self, error):
        """Record a failed run: definitive errors and repeated trouble stop the mailbox."""
        if isinstance(error, (IMAPClientError, OSError)):
            error = errors.MailboxError()
        elif not isinstance(error, errors.MailboxError):
            _logger.exception("Synchronization of the mailbox of user %s was interrupted", self.id)
            error = errors.SyncInterrupted()
        failures = self.mailbox_failures + 1
        message = self._mailbox_explain(error)
        _logger.info("Mailbox of user %s failed (%s in a row): %s", self.id, failures, error)
        if error.definitive or failures >= FAILURES_BEFORE_ERROR:
            self._mailbox_set_state("error", mailbox_error=message, mailbox_failures=failures)
            self.partner_id.sudo().message_notify(
                partner_ids=self.partner_id.ids,
                subject=self.env._("Your mailbox is no longer logged"),
                body=self.env._(
                    "Mail from your mailbox is no longer logged in Odoo: %(problem)s "
                    "Correct the settings in My Profile (Email tab) to resume.",
                    problem=message,
                ),
            )
        else:
            self._mailbox_set_state("active", mailbox_error=message, mailbox_failures=failures)

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def _mailbox_check_access(self):
        """The user in sudo, if the current user may manage this mailbox."""
        if self != self.env.user and not self.env.user.has_group("base.group_system"):
            raise AccessError(self.env._("You can only manage your own mailbox."))
        return self.sudo()

    def _mailbox_is_configured(self):
        return bool(
            self.mailbox_email and self.mailbox_login and self.mailbox_imap_host and self._mailbox_secret()
        )

    def _mailbox_secret(self):
        self.env.cr.execute("SELECT cats_mailbox_password FROM res_users WHERE id = %s", [self.id])
        row = self.env.cr.fetchone()
        return row and row[0]

    def _mailbox_own_addresses(self):
        return {
            address
            for address in map(email_normalize, [self.mailbox_email, self.mailbox_login, self.email])
            if address
        }

    @api.model
    def _mailbox_ca_file(self):
        """An extra CA bundle an administrator trusts (self-hosted servers, tests); None by default."""
        return self.env["ir.config_parameter"].sudo().get_param("cats_mail_sync.ca_file") or None

    def _mailbox_connect(self):
        """A logged-in IMAP connection to the user's mailbox."""
        server = connection.Server(self.mailbox_imap_host, self.mailbox_imap_port, self.mailbox_imap_security)
        return connection.open_imap(
            server, self.mailbox_login, self._mailbox_secret(), ca_file=self._mailbox_ca_file()
        )

    def _mailbox_connect_smtp(self):
        """A logged-in SMTP connection to the user's outgoing server."""
        server = connection.Server(self.mailbox_smtp_host, self.mailbox_smtp_port, self.mailbox_smtp_security)
        return connection.open_smtp(
            server, self.mailbox_login, self._mailbox_secret(), ca_file=self._mailbox_ca_file()
        )

    def _mailbox_explain(self, error):
        """The error in the user's language."""
        return self.with_context(lang=self.lang).env._(error.message, **error.params)

    def _mailbox_set_state(self, state, **values):
        if state == "active" and "mailbox_error" not in values and "mailbox_last_sync_at" in values:
            values.update(mailbox_error=False, mailbox_failures=0)
        # A run that leaves the state as it was leaves the outgoing server alone.
        changed = self.sudo().filtered(lambda user: user.mailbox_state != state)
        super(ResUsers, self.sudo()).write({"mailbox_state": state, **values})
        changed._mailbox_update_mail_server()

    def _mailbox_update_mail_server(self):
        """Keep the user's outgoing mail server in step: used while the mailbox is active.

        Odoo picks it for mail whose sender is the mailbox address (``from_filter``);
        it connects through :mod:`mailbox_client.connection` (see ir.mail_server).
        """
        for user in self.sudo():
            server = user.mailbox_mail_server_id
            wanted = user.mailbox_state == "active" and user.mailbox_smtp_host
            if not wanted:
                server.active = False
                continue
            values = {
                "name": self.env._("Mailbox of %(name)s", name=user.name),
                "smtp_host": user.mailbox_smtp_host,
                "smtp_port": user.mailbox_smtp_port,
                "smtp_encryption": user.mailbox_smtp_security,
                "smtp_authentication": "login",
                "smtp_user": user.mailbox_login,
                "from_filter": user.mailbox_email,
                "mailbox_user_id": user.id,
                "active": True,
            }
            if server:
                server.write(values)
            else:
                user.mailbox_mail_server_id = self.env["ir.mail_server"].create(values)

    def _mailbox_commit(self):
        """Commit a finished step of a scheduled run (never inside tests)."""
        if not in_test_mode():
            self.env.cr.commit()  # pylint: disable=invalid-commit
