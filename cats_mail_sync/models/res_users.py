import hashlib
import re
import secrets

from imapclient.exceptions import IMAPClientError
from markupsafe import Markup, escape

from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import email_domain_extract, email_normalize, format_date

from .. import database
from ..mailbox_client import errors
from ..mailbox_client.addresses import not_listable
from ..mailbox_client.reader import INBOX, MailboxReader
from .cats_mail_sync_token import PROVIDERS as SIGN_IN_PROVIDERS

SECURITY = [("ssl", "SSL/TLS"), ("starttls", "STARTTLS")]
# Settings that decide where and as whom the mailbox logs in.
CONNECTION_FIELDS = {
    "mailbox_email",
    "mailbox_login",
    "mailbox_password",
    "mailbox_imap_host",
    "mailbox_imap_port",
    "mailbox_imap_security",
    "mailbox_oauth_provider",
}
# Settings that decide where a saved password or sign-in goes: it goes nowhere else.
PLACE_FIELDS = {
    "mailbox_login",
    "mailbox_imap_host",
    "mailbox_imap_port",
    "mailbox_smtp_host",
    "mailbox_smtp_port",
    "mailbox_oauth_provider",
}
# Settings that decide which mailbox, hence whose address, this is.
IDENTITY_FIELDS = {"mailbox_email", "mailbox_login", "mailbox_imap_host"}
MAILBOX_FIELDS = (CONNECTION_FIELDS - {"mailbox_oauth_provider"}) | {
    "mailbox_smtp_host",
    "mailbox_smtp_port",
    "mailbox_smtp_security",
    "mailbox_excluded",
}
# The password reads back empty: listing it keeps the profile form readable.
MAILBOX_READABLE_FIELDS = MAILBOX_FIELDS | {
    "mailbox_state",
    "mailbox_activated_at",
    "mailbox_last_sync_at",
    "mailbox_error",
    "mailbox_failing_since",
    "mailbox_logged_count",
    "mailbox_email_confirmed",
    "mailbox_oauth_provider",
    "mailbox_signed_in_as",
    "mailbox_signs_in",
    "mailbox_listening",
    "mailbox_listening_since",
}
# Earlier mail logged at activation too, with candidates and contacts: days back.
HISTORY = [
    ("none", "No, only mail from now on"),
    ("30", "The last 30 days"),
    ("90", "The last 90 days"),
    ("365", "The last year"),
]
# Mail servers of the providers whose own domains they serve: a login there
# with the address itself proves the address.
PROVIDER_DOMAINS = {
    "imap.gmail.com": {"gmail.com", "googlemail.com"},
    "outlook.office365.com": {"outlook.com", "hotmail.com", "live.com", "msn.com"},
    "imap.mail.yahoo.com": {"yahoo.com"},
    "imap.mail.me.com": {"icloud.com", "me.com", "mac.com"},
}
# One address: a local part, "@", a domain with a dot; no list, name or space.
ONE_ADDRESS = re.compile(r"[^@\s,;<>()\[\]\\\"]+@[^@\s,;<>()\[\]\\\"]+\.[^@\s,;<>()\[\]\\\"]+")
# The Message-ID of the mail that confirms an address: "<PREFIX.token@host>".
CONFIRMATION_PREFIX = "<cats-mail-sync-confirm."

# Mailbox fields are the owner's (through SELF_READABLE/WRITEABLE_FIELDS) and
# the administrators'; other users, who may read res.users, see none of them
# but the status, which the profile form's buttons depend on.
MAILBOX_GROUPS = "base.group_system"


def digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


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
    mailbox_oauth_provider = fields.Selection(
        SIGN_IN_PROVIDERS,
        "Signed in with",
        groups=MAILBOX_GROUPS,
        readonly=True,
        copy=False,
        help="The mailbox signs in with this account instead of a password.",
    )
    mailbox_signs_in = fields.Boolean("Signs in with an account", compute="_compute_mailbox_signs_in")
    mailbox_signed_in_as = fields.Char(
        "Sign-in", groups=MAILBOX_GROUPS, compute="_compute_mailbox_signed_in_as"
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
    mailbox_checks_since_logged = fields.Integer(
        "Checks since the last logged mail",
        groups=MAILBOX_GROUPS,
        readonly=True,
        copy=False,
        help="Synchronizations that found no new mail since the last one that logged some: they are "
        "counted here rather than written in the sync log.",
    )
    mailbox_error = fields.Text("Mailbox problem", groups=MAILBOX_GROUPS, readonly=True, copy=False)
    mailbox_failures = fields.Integer(
        "Failed runs in a row", groups=MAILBOX_GROUPS, readonly=True, copy=False
    )
    mailbox_failing_since = fields.Datetime(
        "Retrying since", groups=MAILBOX_GROUPS, readonly=True, copy=False
    )
    mailbox_retry_at = fields.Datetime("Next try", groups=MAILBOX_GROUPS, readonly=True, copy=False)
    # New mail within seconds (see cats_mail_sync_listener.py).
    mailbox_new_mail_at = fields.Datetime(
        "New mail announced",
        groups=MAILBOX_GROUPS,
        readonly=True,
        copy=False,
        help="When the listener last said new mail reached this mailbox, not synchronized since.",
    )
    mailbox_listening = fields.Selection(
        [
            ("listening", "Yes"),
            ("connecting", "Connecting"),
            ("waiting", "Not now: retrying later"),
            ("unsupported", "No: your mail server does not offer it"),
            ("off", "No: every 10 minutes"),
        ],
        "New mail within seconds",
        compute="_compute_mailbox_listening",
        groups=MAILBOX_GROUPS,
        help="Whether the listener (IMAP IDLE) holds a connection to this mailbox, so that new mail "
        "is logged within seconds; otherwise it is logged at the next scheduled run (10 minutes).",
    )
    mailbox_listening_since = fields.Datetime(
        "Listening since", compute="_compute_mailbox_listening", groups=MAILBOX_GROUPS
    )

    mailbox_logged_count = fields.Integer(
        "Mails logged",
        groups=MAILBOX_GROUPS,
        compute="_compute_mailbox_logged_count",
        help="Each mail once, on however many records it is logged (Logged mail lists a row per record).",
    )
    mailbox_excluded = fields.Text(
        "Never log mail with",
        groups=MAILBOX_GROUPS,
        help="Addresses and domains (one per line, such as doctor@clinic.com or family.org) whose mail "
        "is never logged from your mailbox.",
    )
    mailbox_email_confirmed = fields.Boolean(
        "Address confirmed",
        groups=MAILBOX_GROUPS,
        readonly=True,
        copy=False,
        help="The mailbox proved that the address is yours: only then does Odoo send your mail through "
        "it. A mail sent to your address at activation confirms it when the next synchronization finds it "
        "in your Inbox.",
    )
    mailbox_confirmation_digest = fields.Char(groups="base.group_no_one", readonly=True, copy=False)
    mailbox_mail_server_id = fields.Many2one(
        "ir.mail_server", "Outgoing mail server", groups=MAILBOX_GROUPS, readonly=True, copy=False
    )
    mailbox_history = fields.Selection(
        HISTORY,
        "Also log earlier mail",
        groups=MAILBOX_GROUPS,
        default="none",
        help="At activation: also log the mail of this period before it with candidates and contacts.",
    )
    mailbox_history_state = fields.Char(
        "Earlier mail", groups=MAILBOX_GROUPS, compute="_compute_mailbox_history_state"
    )
    mailbox_folder_ids = fields.One2many(
        "cats_mail_sync.folder", "user_id", "Synchronized folders", groups=MAILBOX_GROUPS
    )

    @property
    def SELF_READABLE_FIELDS(self):
        return (
            super().SELF_READABLE_FIELDS
            + sorted(MAILBOX_READABLE_FIELDS)
            + [
                "mailbox_history",
                "mailbox_history_state",
            ]
        )

    @property
    def SELF_WRITEABLE_FIELDS(self):
        return super().SELF_WRITEABLE_FIELDS + sorted(MAILBOX_FIELDS) + ["mailbox_history"]

    @api.model
    def get_view(self, view_id=None, view_type="form", **options):
        # The Preferences form only ever shows the user's own record, whose
        # mailbox fields they may read: keep those fields in it, as hr does for
        # its "My Profile" form (which derives from this one).
        preferences = self.env.ref("base.view_users_form_simple_modif", raise_if_not_found=False)
        email_tab = self.env.ref(
            "cats_mail_sync.res_users_view_form_preferences_email", raise_if_not_found=False
        )
        own_forms = {view.id for view in (preferences, email_tab) if view}
        users = self.with_user(SUPERUSER_ID) if view_id in own_forms else self
        return super(ResUsers, users).get_view(view_id, view_type, **options)

    def init(self):
        super().init()
        # The password column (encrypted, without ORM field: see cats_mail_sync.secret) and the
        # logins' index.
        database.make(self.env.cr, self._table)

    @api.constrains("mailbox_excluded")
    def _check_mailbox_excluded(self):
        for user in self.sudo():
            wrong = not_listable(user.mailbox_excluded)
            if wrong:
                raise ValidationError(
                    self.env._(
                        "Never log mail with: %(entries)s is neither an address (doctor@clinic.com) nor a "
                        "domain (family.org).",
                        entries=", ".join(f'"{entry}"' for entry in wrong[:5]),
                    )
                )

    def _compute_mailbox_password(self):
        self.mailbox_password = False

    def _inverse_mailbox_password(self):
        credentials = self.env["cats_mail_sync.credentials"]
        for user in self:
            if user.mailbox_password:
                # Kept for the servers and login saved with it, and only those.
                credentials._save_password(user, user.mailbox_password)
        # Forget the typed value, or a read in the same request would return it.
        self.invalidate_recordset(["mailbox_password"])

    def _mailbox_sign_in(self):
        """The sign-in (``cats_mail_sync.token``) the mailbox logs in with, if it signs in."""
        return self.env["cats_mail_sync.credentials"]._sign_in(self)

    def _mailbox_sign_out(self):  # pylint: disable=missing-return
        super(ResUsers, self.sudo()).write({"mailbox_oauth_provider": False})

    def _mailbox_keep_sign_in(self):  # pylint: disable=missing-return
        """After saved settings: a mailbox that signs in keeps that sign-in only (and no
        password), and its address is proven by it; one with a password keeps no sign-in."""
        tokens = self.env["cats_mail_sync.token"].sudo().search([("user_id", "=", self.id)])
        token = self._mailbox_sign_in()
        (tokens - token)._forget()
        if token:
            self.env["cats_mail_sync.secret"]._put(self, "cats_mailbox_password", False)
            if self._mailbox_login_proves_address():
                super().write({"mailbox_email_confirmed": True})
                self.env["ir.mail_server"]._cats_mail_sync_update(self)

    @api.depends("mailbox_oauth_provider", "mailbox_email")
    def _compute_mailbox_signed_in_as(self):
        for user in self:
            user.mailbox_signed_in_as = user.mailbox_oauth_provider and self.env._(
                "Signed in with %(provider)s as %(address)s",
                provider=dict(SIGN_IN_PROVIDERS)[user.mailbox_oauth_provider],
                address=user.mailbox_email,
            )

    @api.depends("mailbox_oauth_provider")
    def _compute_mailbox_signs_in(self):
        for user in self:
            user.mailbox_signs_in = bool(user.sudo().mailbox_oauth_provider)

    @api.depends("mailbox_folder_ids.history_from", "mailbox_folder_ids.history_done_at")
    def _compute_mailbox_history_state(self):
        for user in self:
            folders = user.sudo().mailbox_folder_ids.filtered("history_from")
            if not folders:
                user.mailbox_history_state = False
                continue
            since = format_date(self.env, min(folders.mapped("history_from")))
            if all(folders.mapped("history_done_at")):
                # A date, as the date it goes back to: one format in one sentence.
                done_at = fields.Datetime.context_timestamp(user, max(folders.mapped("history_done_at")))
                done = format_date(self.env, done_at.date())
                user.mailbox_history_state = self.env._(
                    "Logged back to %(since)s (done %(done)s).", since=since, done=done
                )
            else:
                user.mailbox_history_state = self.env._("Being logged back to %(since)s.", since=since)

    def _compute_mailbox_listening(self):
        listener = self.env["cats_mail_sync.listener"]
        alive = listener._enabled() and listener._alive()
        rows = {}
        if alive:
            found = self.env["cats_mail_sync.listening"].sudo().search([("user_id", "in", self.ids)])
            rows = {row.user_id.id: row for row in found}
        for user in self:
            row = rows.get(user.id)
            active = user.mailbox_state == "active"
            # An active mailbox the running listener has not taken yet (just activated): it will,
            # within seconds.
            state = (row.state if row else "connecting") if alive and active else "off"
            user.mailbox_listening = state
            user.mailbox_listening_since = row.since if row and state == "listening" else False

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

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if "mailbox_email" in vals:
                vals["mailbox_email"] = self._mailbox_clean_address(vals["mailbox_email"])
        # A user's own contact is made with the user: looked back for once the user is known to
        # be internal or not (see the look-back's _queue_users).
        users = super(ResUsers, self.with_context(cats_mail_sync_new_user=True)).create(vals_list)
        users = users.with_env(self.env)
        made_with_contact = [
            user.id for user, vals in zip(users, vals_list, strict=True) if not vals.get("partner_id")
        ]
        self.env["cats_mail_sync.look_back"]._queue_users(self.browse(made_with_contact))
        users.filtered_domain([("mailbox_email", "!=", False)])._mailbox_check_address_free()
        return users

    def write(self, vals):
        if "mailbox_email" in vals:
            vals = dict(vals, mailbox_email=self._mailbox_clean_address(vals["mailbox_email"]))
        before = {}
        if IDENTITY_FIELDS & set(vals):
            before = {user.id: user._mailbox_identity() for user in self.sudo()}
        result = super().write(vals)
        # Settings saved again as they were change nothing.
        changed = self.browse(
            uid for uid, identity in before.items() if identity != self.browse(uid)._mailbox_identity()
        )
        if changed:
            # Another address or mailbox: it has to prove itself again.
            super(ResUsers, changed.sudo()).write(
                {"mailbox_email_confirmed": False, "mailbox_confirmation_digest": False}
            )
        if vals.get("mailbox_email"):
            self._mailbox_check_address_free()
        forgotten = {}
        if PLACE_FIELDS & set(vals):
            # Whoever wrote, through whatever route: a password or sign-in goes only to the
            # servers and login it was given for; for others it is forgotten.
            forgotten = self.env["cats_mail_sync.credentials"]._forget_for_other_places(self)
        if CONNECTION_FIELDS & set(vals) or any(forgotten.values()):
            moved = changed.filtered(lambda user: user._mailbox_identity()[1:] != before[user.id][1:])
            (self - moved)._mailbox_settings_changed(forgotten=forgotten)
            moved._mailbox_settings_changed(another_mailbox=True, forgotten=forgotten)
        if MAILBOX_FIELDS & set(vals):
            self.env["ir.mail_server"]._cats_mail_sync_update(self)
        return result

    @api.model
    def _mailbox_clean_address(self, value):
        """One mail address, normalized; anything else (a list, a domain, a name) is refused."""
        value = (value or "").strip()
        if not value:
            return False
        address = email_normalize(value)
        if not address or address != value.lower() or not ONE_ADDRESS.fullmatch(value):
            raise ValidationError(
                self.env._(
                    "%(value)s is not one mail address. Type exactly one address, such as anna@agency.com.",
                    value=value[:100],
                )
            )
        return address

    def _mailbox_check_address_free(self):
        """A mailbox address is its user's alone: no other user's, nor a company's own."""
        companies = self.env["res.company"].sudo().search([])
        shared = {email_normalize(c.email) for c in companies} | {
            email_normalize(a)
            for domain in companies.alias_domain_id
            for a in (domain.default_from_email, domain.catchall_email, domain.bounce_email)
        }
        for user in self.sudo():
            address = user.mailbox_email
            taken = (
                self.sudo()
                .with_context(active_test=False)
                .search_count(
                    [
                        ("id", "!=", user.id),
                        "|",
                        "|",
                        ("mailbox_email", "=", address),
                        ("email_normalized", "=", address),
                        ("login", "=ilike", address),
                    ],
                    limit=1,
                )
            )
            if taken or address in shared:
                raise ValidationError(
                    self.env._(
                        "The address %(address)s belongs to another user or to the company: "
                        "a mailbox can only be connected with your own address.",
                        address=address,
                    )
                )

    def _mailbox_settings_changed(self, another_mailbox=False, forgotten=None):
        """New settings end an error (logins resume) and say what is possible now.

        Settings that point to another mailbox (``another_mailbox``: host or login
        changed) drop the cursors: activating it logs that mailbox's mail from then on.
        A mailbox that keeps its cursors (stopped by an error, or by a password to type
        again) resumes from them once it can log in: nothing is lost. ``forgotten``:
        ``{"password": users, "sign_in": users}`` whose secret was just forgotten (see
        ``cats_mail_sync.credentials._forget_for_other_places``), which are told so.
        """
        forgotten = forgotten or {}
        for user in self.sudo():
            restart = another_mailbox and user.mailbox_folder_ids
            if restart:
                user.mailbox_folder_ids.unlink()
            if not user._mailbox_is_configured():
                state = "not_configured"
            elif not restart and (user.mailbox_state == "active" or user.mailbox_folder_ids):
                state = "active"
            else:
                state = "inactive"
            messages = []
            if user in forgotten.get("password", ()):
                messages.append(
                    self.env._(
                        "The server or login changed: type the password again. A saved password is only "
                        "ever sent to the server it was saved for."
                    )
                )
            if user in forgotten.get("sign_in", ()):
                messages.append(
                    self.env._(
                        "The server or login changed: sign in again. A sign-in is only ever used with its "
                        "provider's own servers, as the address signed in."
                    )
                )
            if restart:
                messages.append(
                    self.env._(
                        "These settings point to another mailbox: activate it to log its mail from then on."
                    )
                )
            message = " ".join(messages) or False
            if state != user.mailbox_state or user.mailbox_error or message:
                user._mailbox_set_state(
                    state,
                    mailbox_error=message,
                    mailbox_failures=0,
                    mailbox_failing_since=False,
                    mailbox_retry_at=False,
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
                "history": user.mailbox_history or "none",
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
            with self.env["cats_mail_sync.connector"]._user_imap(user) as client:
                reader = MailboxReader(client)
                folders = {"inbox": INBOX, "sent": reader.find_sent_folder()}
                statuses = {role: reader.status(name) for role, name in folders.items()}
        except errors.MailboxError as error:
            raise UserError(user._mailbox_explain(error)) from None
        except (IMAPClientError, OSError):
            raise UserError(user._mailbox_explain(errors.MailboxError())) from None
        # A mailbox that has cursors (stopped by an error) continues from them: nothing lost.
        cursors = {folder.role: folder for folder in user.mailbox_folder_ids}
        for role, name in folders.items():
            if role in cursors:
                cursors[role].name = name
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
                if role not in cursors
            ]
        )
        if not user.mailbox_email_confirmed:
            if user._mailbox_login_proves_address():
                super(ResUsers, user).write({"mailbox_email_confirmed": True})
            else:
                user._mailbox_send_confirmation()
        activated_at = user.mailbox_activated_at if cursors else now
        user._mailbox_set_state("active", mailbox_activated_at=activated_at, mailbox_last_sync_at=now)
        return user._mailbox_notify(
            self.env._("Your mailbox is active: mail it receives or sends from now on is logged.")
        )

    def action_mailbox_sign_in(self):
        """Sign in again with the provider the mailbox signs in with (the "Sign in again" button)."""
        self.ensure_one()
        user = self._mailbox_check_access()
        if not user.mailbox_oauth_provider:
            raise UserError(self.env._("This mailbox signs in with a password: use Configure."))
        setup = self.env["cats_mail_sync.setup"].create(
            {
                "user_id": user.id,
                "email": user.mailbox_email,
                "provider": "gmail" if user.mailbox_oauth_provider == "google" else "office365",
            }
        )
        return setup.action_sign_in()

    def action_mailbox_runs(self):
        """The mailbox's sync log."""
        self.ensure_one()
        self._mailbox_check_access()
        return {
            "type": "ir.actions.act_window",
            "res_model": "cats_mail_sync.run",
            "name": self.env._("Sync log"),
            "view_mode": "list,form",
            "domain": [("user_id", "=", self.id)],
            "context": {"create": False},
            "help": self._mailbox_empty_help(
                self.env._("No synchronization to show yet"),
                self.env._(
                    "Each synchronization that finds new mail, looks back for new candidates and contacts "
                    "or meets a problem is written here. Checks that find nothing new are only counted: "
                    "the profile says when the mailbox was last synchronized."
                ),
            ),
        }

    def action_mailbox_logged(self):
        """The mail logged from this mailbox; from every mailbox for Recruitment managers."""
        self.ensure_one()
        self._mailbox_check_access()
        every = self.env.user.has_group("hr_recruitment.group_hr_recruitment_manager")
        return {
            "type": "ir.actions.act_window",
            "res_model": "mail.message",
            "name": self.env._("Logged mail"),
            "view_mode": "list",
            "views": [(self.env.ref("cats_mail_sync.mail_message_view_list_logged").id, "list")],
            "search_view_id": [self.env.ref("cats_mail_sync.mail_message_view_search_logged").id],
            "domain": [("mailbox_user_id", "!=" if every else "=", False if every else self.id)],
            "context": {"create": False, "search_default_mine": int(every and self == self.env.user)},
            "help": self._mailbox_empty_help(
                self.env._("No mail logged yet"),
                self.env._(
                    "Mail sent to or received from a candidate or contact after activation is listed here "
                    "once it is logged, with the record it is on."
                ),
            ),
        }

    def action_mailbox_confirm_again(self):
        """Mail the address a new confirmation (the profile's "Send the confirmation again")."""
        self.ensure_one()
        user = self._mailbox_check_access()
        if user.mailbox_state != "active":
            raise UserError(self.env._("Activate the mailbox first."))
        if not user.mailbox_email_confirmed:
            # Each click mails the address: counted like a connection test, so none can flood it.
            self.env["cats_mail_sync.connector"]._count_try()
            # Sent at once, not left to the mail queue: the recruiter is told whether it left.
            mail = user._mailbox_send_confirmation()
            mail.send(raise_exception=False)
            if mail.exists() and mail.state == "exception":
                # The last line of Odoo's reason says it ("Connection refused"); the rest is its context.
                reason = (mail.failure_reason or "").strip().splitlines()[-1:] or [""]
                return user._mailbox_notify(
                    self.env._(
                        "The confirmation mail could not be sent (%(reason)s). Ask your administrator to "
                        "check Odoo's outgoing mail server.",
                        reason=reason[0][:200],
                    ),
                    kind="danger",
                )
        return user._mailbox_notify(
            self.env._(
                "A confirmation mail was sent to %(address)s; the next synchronization finds it.",
                address=user.mailbox_email,
            )
        )

    @api.model
    def _mailbox_empty_help(self, title, text):
        """What a list of this mailbox shows while it is empty."""
        return Markup('<p class="o_view_nocontent_empty_folder">%s</p><p>%s</p>') % (title, text)

    def action_mailbox_deactivate(self):
        """Stop logging mail; settings stay, a later activation starts afresh. From the profile
        (one user): a notification, the profile staying open."""
        for user in self:
            mailbox = user._mailbox_check_access()
            mailbox.mailbox_folder_ids.unlink()
            if mailbox.mailbox_oauth_provider:
                # Signed in: the sign-in ends here (revoked where the provider can).
                self.env["cats_mail_sync.token"].sudo().search([("user_id", "=", mailbox.id)])._forget()
                super(ResUsers, mailbox).write({"mailbox_oauth_provider": False})
            mailbox._mailbox_set_state("inactive" if mailbox._mailbox_is_configured() else "not_configured")
        if len(self) != 1:
            return True
        return self._mailbox_notify(
            self.env._(
                "Your mail is no longer logged. Your settings are kept: Activate logs your mail again from "
                "then on."
            ),
            kind="info",
        )

    def action_mailbox_sync(self):
        """Log new mail now (the "Sync now" button).

        Returns a notification saying what happened; a failure is recorded on
        the mailbox like a scheduled run's (not raised, which would undo that).
        """
        self.ensure_one()
        user = self._mailbox_check_access()
        if user.mailbox_state != "active":
            raise UserError(self.env._("Activate the mailbox first."))
        logged = self.env["cats_mail_sync.sync"]._sync(user)
        if logged is None:
            kind, message = (
                "warning",
                self.env._("This mailbox is being synchronized right now; try again in a minute."),
            )
        elif user.mailbox_state != "active" or user.mailbox_failures:
            kind, message = "danger", user.mailbox_error
        else:
            kind, message = "success", self.env._("New mails logged: %(count)s.", count=logged)
        return self._mailbox_notify(message, kind)

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def _mailbox_profile_on_email_tab(self, profile):
        """The preferences action ``profile``, opening on the Email tab."""
        view = self.env.ref("cats_mail_sync.res_users_view_form_preferences_email")
        return dict(profile, res_id=self.id, views=[(view.id, "form")], view_id=view.id)

    def _mailbox_notify(self, message, kind="success"):
        """A notification, then the profile again on its Email tab (the preferences dialog
        is reopened; the "My Profile" page reloads)."""
        profile = self.env["res.users"].action_get()
        if profile.get("target") == "new" and self == self.env.user:
            following = self._mailbox_profile_on_email_tab(profile)
        else:
            following = {"type": "ir.actions.client", "tag": "soft_reload"}
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": kind, "message": message, "next": following},
        }

    def _mailbox_check_access(self):
        """The user in sudo, if the current user may manage this mailbox."""
        if self != self.env.user and not self.env.user.has_group("base.group_system"):
            raise AccessError(self.env._("You can only manage your own mailbox."))
        return self.sudo()

    def _mailbox_is_configured(self):
        if self.mailbox_oauth_provider:
            credentials = bool(self._mailbox_sign_in())
        else:
            credentials = self.env["cats_mail_sync.secret"]._has(self, "cats_mailbox_password")
        return bool(self.mailbox_email and self.mailbox_login and self.mailbox_imap_host and credentials)

    def _mailbox_identity(self):
        """Which address, and which mailbox (login, server): ``(address, login, host)``."""
        user = self.sudo()
        return (
            user.mailbox_email,
            (user.mailbox_login or "").lower(),
            (user.mailbox_imap_host or "").lower().rstrip("."),
        )

    def _mailbox_own_addresses(self):
        return {
            address
            for address in map(email_normalize, [self.mailbox_email, self.mailbox_login, self.email])
            if address
        }

    def _mailbox_explain(self, error):
        """The error in the user's language."""
        return self.with_context(lang=self.lang).env._(error.message, **error.params)

    def _mailbox_set_state(self, state, **values):  # pylint: disable=missing-return
        if state == "active" and "mailbox_error" not in values and "mailbox_last_sync_at" in values:
            values.update(
                mailbox_error=False, mailbox_failures=0, mailbox_failing_since=False, mailbox_retry_at=False
            )
        # A run that leaves the state as it was leaves the outgoing server alone.
        changed = self.sudo().filtered(lambda user: user.mailbox_state != state)
        super(ResUsers, self.sudo()).write({"mailbox_state": state, **values})
        self.env["ir.mail_server"]._cats_mail_sync_update(changed)

    # ------------------------------------------------------------------
    # The address is the recruiter's own: proven before mail is sent as it
    # ------------------------------------------------------------------

    def _mailbox_login_proves_address(self):
        """Whether a successful login proves the address: the login is the address, on a
        server of the address's own domain (or of the provider whose domain it is)."""
        address = self.mailbox_email
        if email_normalize(self.mailbox_login) != address:
            return False
        if self.mailbox_oauth_provider:
            # Microsoft or Google said who signed in.
            return self._mailbox_sign_in().address == address
        domain = email_domain_extract(address)
        host = (self.mailbox_imap_host or "").lower().rstrip(".")
        return host == domain or host.endswith("." + domain) or domain in PROVIDER_DOMAINS.get(host, ())

    def _mailbox_send_confirmation(self):
        """Queue a mail to the address, through Odoo's own outgoing server, with a token the sync
        looks for in this mailbox's Inbox: it arrives there only if the address delivers into this
        mailbox. The mail.mail queued."""
        token = secrets.token_urlsafe(32)
        super().write({"mailbox_confirmation_digest": digest(token)})
        return (
            self.env["mail.mail"]
            .sudo()
            .create(
                {
                    "subject": self.env._("Confirm your mailbox address for Odoo"),
                    "email_to": self.mailbox_email,
                    "message_id": f"{CONFIRMATION_PREFIX}{token}@cats-mail-sync>",
                    "body_html": self.env._(
                        "<p>This mail confirms that %(address)s is your address. It is found in your Inbox "
                        "by the next synchronization; there is nothing to do.</p>",
                        address=escape(self.mailbox_email),
                    ),
                    "auto_delete": True,
                }
            )
        )

    def _mailbox_confirm_address(self, headers):
        """Confirm the address when its confirmation mail is among these Inbox ``headers``."""
        if self.mailbox_email_confirmed or not self.mailbox_confirmation_digest:
            return
        for header in headers:
            if header.message_id.startswith(CONFIRMATION_PREFIX):
                token = header.message_id[len(CONFIRMATION_PREFIX) :].split("@", 1)[0]
                if secrets.compare_digest(digest(token), self.mailbox_confirmation_digest):
                    super().write({"mailbox_email_confirmed": True, "mailbox_confirmation_digest": False})
                    self.env["ir.mail_server"]._cats_mail_sync_update(self)
                    return
