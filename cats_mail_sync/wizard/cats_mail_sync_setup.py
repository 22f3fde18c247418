import contextlib
import re

from markupsafe import Markup

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import email_domain_extract, email_normalize

from ..mailbox_client import connection, discovery, errors
from ..mailbox_client.addresses import is_domain
from ..mailbox_client.errors import _lt
from ..mailbox_client.reader import MailboxReader
from ..models.cats_mail_sync_secret import place
from ..models.cats_mail_sync_sign_in import SIGN_IN_PROVIDERS
from ..models.cats_mail_sync_token import PROVIDERS as SIGN_IN_LABELS
from ..models.res_users import HISTORY, PROVIDER_DOMAINS, SECURITY

DEFAULT_PORTS = {"imap": 993, "smtp": 465}
# Providers that accept no password over IMAP: their mailboxes connect only by signing in.
SIGN_IN_ONLY = {"outlook", "office365"}
# Microsoft's IMAP server (Outlook.com's and Microsoft 365's), and Outlook.com's own domains.
MICROSOFT_IMAP = discovery.PROVIDERS["outlook"].imap.host
OUTLOOK_DOMAINS = PROVIDER_DOMAINS[MICROSOFT_IMAP]
# An IDNA label (xn--...) in what the detection says: shown as the recruiter typed it.
ACE_LABEL = re.compile(r"\bxn--[a-z0-9-]+", re.IGNORECASE)
# Where the settings were looked for, in a recruiter's words (the technical names stay, small).
PLAIN_SOURCES = {
    "address": _lt("Your address"),
    "preset": _lt("The known settings of your provider"),
    "autoconfig": _lt("A settings file of your domain"),
    "well-known": _lt("Your domain's website"),
    "srv": _lt("Mail servers your domain announces"),
    "ispdb": _lt("Thunderbird's list of mail providers"),
    "mx": _lt("The server that receives your domain's mail"),
}
TESTED_FIELDS = {
    "login",
    "password",
    "imap_host",
    "imap_port",
    "imap_security",
    "smtp_host",
    "smtp_port",
    "smtp_security",
}
# Ports that belong to the other security choice: a likely mix-up.
WRONG_PORTS = {
    ("imap", "ssl"): {143},
    ("imap", "starttls"): {993},
    ("smtp", "ssl"): {25, 587},
    ("smtp", "starttls"): {465},
}


class CatsMailSyncSetup(models.TransientModel):
    """Configure a mailbox: provider, detected settings, manual settings, test, save."""

    _name = "cats_mail_sync.setup"
    _description = "Configure your mailbox"

    user_id = fields.Many2one(
        "res.users", required=True, default=lambda self: self.env.user, ondelete="cascade"
    )
    step = fields.Selection(
        [("provider", "Provider"), ("detected", "Detected settings"), ("settings", "Settings")],
        default="provider",
        required=True,
    )
    email = fields.Char("Your mail address", required=True, default=lambda self: self.env.user.email)
    provider = fields.Selection(
        [(code, provider.label) for code, provider in discovery.PROVIDERS.items()],
        "Your mail provider",
        default="other",
        required=True,
    )
    provider_note = fields.Text(compute="_compute_provider_note")
    sign_in_missing = fields.Boolean("Signing in is not set up", compute="_compute_sign_in_missing")
    detection_log = fields.Html("What was tried", readonly=True, sanitize=True)
    needs_confirmation = fields.Boolean(readonly=True)
    confirmed = fields.Boolean("I trust these servers")
    login = fields.Char()
    password = fields.Char(
        compute="_compute_password",
        inverse="_inverse_password",
        help="Leave empty to keep the password typed or saved before: it is only used for the same "
        "servers and login it was typed or saved for, and never sent to servers you did not confirm.",
    )
    keeps_saved_password = fields.Boolean("Keeps the saved password", compute="_compute_keeps_saved_password")
    imap_host = fields.Char("IMAP server")
    imap_port = fields.Integer("IMAP port", default=993)
    imap_security = fields.Selection(SECURITY, "IMAP security", default="ssl", required=True)
    smtp_host = fields.Char("SMTP server")
    smtp_port = fields.Integer("SMTP port", default=465)
    smtp_security = fields.Selection(SECURITY, "SMTP security", default="ssl", required=True)
    test_result = fields.Html("Connection test", readonly=True, sanitize=True)
    history = fields.Selection(
        HISTORY,
        "Also log earlier mail with candidates and contacts",
        default="none",
        required=True,
        help="Done once, at activation, for the candidates and contacts known then.",
    )
    history_offered = fields.Boolean("Earlier mail can be chosen", compute="_compute_history_offered")
    sign_in_with = fields.Selection(SIGN_IN_LABELS, "Can sign in with", compute="_compute_sign_in_with")
    signed_in = fields.Selection(SIGN_IN_LABELS, "Signed in with", readonly=True)
    signing_in = fields.Selection(SIGN_IN_LABELS, "Signing in with", readonly=True)
    # Opened on a mailbox that signs in, in a dialog (not the page the provider sends back to).
    saved_sign_in = fields.Boolean("Opened on the saved sign-in", readonly=True)
    oauth_nonce_digest = fields.Char("Sign-in check", readonly=True)
    tested = fields.Boolean("Connection tested", readonly=True)
    test_failed = fields.Boolean("Connection test failed", readonly=True)
    current_email = fields.Char(related="user_id.email", string="Your email in Odoo")
    set_user_email = fields.Boolean(
        "Use it as my email in Odoo",
        compute="_compute_set_user_email",
        store=True,
        readonly=False,
        help="Also make this address your email in Odoo (your Work Email): mail you send from Odoo then "
        "leaves through this mailbox. Left unticked, your email in Odoo stays as it is.",
    )
    stops_logging = fields.Boolean("Stops logging the current mailbox", compute="_compute_stops_logging")
    stop_logging_confirmed = fields.Boolean("Stop logging the current mailbox")

    def _compute_display_name(self):
        self.display_name = self.env._("Configure your mailbox")

    def init(self):
        super().init()
        # What is typed here is kept encrypted, out of reach of any read (see
        # cats_mail_sync.secret), until it is saved or no longer needed.
        self.env.cr.execute("ALTER TABLE cats_mail_sync_setup ADD COLUMN IF NOT EXISTS cats_password varchar")

    @api.model_create_multi
    def create(self, vals_list):
        opened = []
        for vals in vals_list:
            # An assistant configures its creator's mailbox, or any for an administrator.
            user = self.env["res.users"].browse(vals.get("user_id") or self.env.uid)._mailbox_check_access()
            # A mailbox set up before opens on its saved settings: a recruiter who changed a
            # password changes only that.
            opened.append(vals if "step" in vals else dict(self._saved_settings(user), **vals))
        return super().create(opened)

    def write(self, vals):
        if "user_id" in vals:
            raise UserError(self.env._("An assistant configures one mailbox; open a new one for another."))
        if TESTED_FIELDS & set(vals) and "tested" not in vals:
            # Other settings than those tested: Test connection leads again, and what a failed
            # test said of the earlier ones is no longer true of these.
            vals = dict(vals, tested=False, test_failed=False)
        return super().write(vals)

    def _compute_password(self):
        self.password = False

    def _inverse_password(self):
        for setup in self:
            if setup.password:
                # Kept for the servers and login in the assistant as it is typed, only those.
                places = setup._places().values()
                self.env["cats_mail_sync.secret"]._put(setup, "cats_password", setup.password, places)
        # Forget the typed value, or this request's answer would carry it back.
        self.invalidate_recordset(["password"])

    @api.model
    def _forget_old_passwords(self):
        """Typed passwords are kept for the time it takes to set a mailbox up, not longer."""
        self.env.cr.execute(
            """
            UPDATE cats_mail_sync_setup SET cats_password = NULL
             WHERE cats_password IS NOT NULL
               AND write_date < now() at time zone 'UTC' - interval '30 minutes'
            """
        )

    @api.depends("user_id")
    def _compute_set_user_email(self):
        for setup in self:
            # Only a user without an email gets this one without asking.
            setup.set_user_email = not setup.user_id.email

    @api.depends("user_id", "login", "imap_host", "signed_in")
    def _compute_stops_logging(self):
        for setup in self:
            user = setup.user_id.sudo()
            same_mailbox = (setup.login or "").lower() == (user.mailbox_login or "").lower() and (
                setup.imap_host or ""
            ).lower().rstrip(".") == (user.mailbox_imap_host or "").lower().rstrip(".")
            # Servers not filled in yet point nowhere, not to another mailbox.
            setup.stops_logging = (
                user.mailbox_state in ("active", "error") and bool(setup.imap_host) and not same_mailbox
            )

    @api.depends("user_id", "signed_in", "login", "imap_host", "imap_port", "smtp_host", "smtp_port")
    def _compute_keeps_saved_password(self):
        credentials = self.env["cats_mail_sync.credentials"]
        for setup in self:
            user = setup.user_id.sudo()
            places = setup._places()
            # The saved password goes only to exactly the servers and login it was saved for.
            setup.keeps_saved_password = bool(
                not setup.signed_in
                and not user.mailbox_oauth_provider
                and places["imap"]
                and places == credentials._places(user)
                and all(credentials._fits(user, kind) for kind, where in places.items() if where)
            )

    @api.depends("user_id", "stops_logging")
    def _compute_history_offered(self):
        for setup in self:
            # Earlier mail is read from a mailbox's activation (cats_mail_sync.folder): one logging
            # already reads none, unless these settings point to another, activated anew.
            activated = setup.user_id.sudo().mailbox_state in ("active", "error")
            setup.history_offered = not activated or setup.stops_logging

    @api.depends("provider")
    def _compute_sign_in_with(self):
        sign_in = self.env["cats_mail_sync.sign_in"]
        for setup in self:
            code = SIGN_IN_PROVIDERS.get(setup.provider, False)
            # Signing in is offered only once an administrator set it up in Settings.
            setup.sign_in_with = code if code and sign_in._is_set_up(code) else False

    @api.depends("provider", "sign_in_with")
    def _compute_sign_in_missing(self):
        for setup in self:
            setup.sign_in_missing = setup.provider in SIGN_IN_ONLY and not setup.sign_in_with

    @api.depends("provider", "sign_in_with", "sign_in_missing")
    def _compute_provider_note(self):
        for setup in self:
            if setup.provider == "gmail" and not setup.sign_in_with:
                setup.provider_note = self.env._(
                    "Gmail needs an app password: create one under Google Account → Security → 2-Step "
                    "Verification → App passwords, and type it below instead of your Google password."
                )
            elif setup.sign_in_missing:
                setup.provider_note = self.env._(
                    "Outlook.com and Microsoft 365 mailboxes are connected by signing in with Microsoft, "
                    "which an administrator must first set up in this Odoo (Settings → General Settings → "
                    "Emails). Microsoft no longer accepts passwords over IMAP, so a password cannot be "
                    "used instead: ask your administrator to set up signing in with Microsoft."
                )
            else:
                note = discovery.PROVIDERS[setup.provider].note if setup.provider else None
                setup.provider_note = self.env._(note) if note else False

    @api.onchange("email", "provider")
    def _onchange_microsoft_address(self):
        # An Outlook.com address under "Other": Microsoft's sign-in, never a password prompt.
        provider = self._microsoft_provider()
        if provider:
            self.provider = provider

    def _microsoft_provider(self, detection=None):
        """Outlook.com or Microsoft 365 when the address is Microsoft's (an Outlook.com domain, or
        ``detection`` found Microsoft's servers) while a provider of unknown servers (Other,
        Exchange) is chosen; else None. Microsoft takes no password over IMAP."""
        if discovery.PROVIDERS[self.provider or "other"].imap:
            return None
        domain = email_domain_extract(email_normalize(self.email or "") or "")
        if domain in OUTLOOK_DOMAINS:
            return "outlook"
        if detection and detection.imap and detection.imap.host == MICROSOFT_IMAP:
            return "office365"
        return None

    def _check_address(self):
        """The address is one mail address a server can take, said before anything is looked up
        or saved for it."""
        address = self.env["res.users"]._mailbox_clean_address(self.email)
        if not address:
            raise UserError(self.env._("Fill in your mail address."))
        local_part, _, domain = address.rpartition("@")
        if len(local_part.encode()) > 64:
            raise UserError(
                self.env._(
                    "%(address)s is not a valid mail address: the part before the @ is longer than "
                    "64 characters. Check the address.",
                    address=address,
                )
            )
        if not is_domain(domain):
            raise UserError(
                self.env._(
                    "%(address)s is not a valid mail address: %(domain)s is not a domain name. Check the "
                    "part after the @.",
                    address=address,
                    domain=domain,
                )
            )

    def _check_settings(self):
        """Before a test or a save; not at each write, so that Back goes back whatever was typed."""
        if not (self.login and self.imap_host):
            raise UserError(self.env._("Fill in at least the login and the IMAP server."))
        for kind in ("imap", "smtp"):
            port, security = self[f"{kind}_port"], self[f"{kind}_security"]
            if not self[f"{kind}_host"]:
                continue
            if not 0 < port < 65536:
                raise ValidationError(self.env._("Port %(port)s is not a valid port number.", port=port))
            if port in WRONG_PORTS[kind, security]:
                raise ValidationError(
                    self.env._(
                        "Port %(port)s does not go with %(security)s for %(kind)s: use %(other)s, "
                        "or change the port.",
                        port=port,
                        security=dict(SECURITY)[security],
                        kind=kind.upper(),
                        other=dict(SECURITY)["starttls" if security == "ssl" else "ssl"],
                    )
                )

    # ------------------------------------------------------------------
    # Steps
    # ------------------------------------------------------------------

    def action_detect(self):
        """Step 1 -> 2: look for the settings; on failure the manual form opens pre-filled."""
        self.ensure_one()
        if self.sign_in_missing:
            raise UserError(self.provider_note)
        self._check_address()
        if microsoft := self._microsoft_provider():
            return self._sign_in_instead(microsoft)
        self.env["cats_mail_sync.connector"]._count_try()
        detection = discovery.discover(self.email, self.provider, **self._discovery_options())
        if microsoft := self._microsoft_provider(detection):
            return self._sign_in_instead(microsoft)
        steps = Markup("").join(self._plain_step(step) for step in detection.steps)
        verdict = (
            self.env._("Settings found: check them, type your password and test the connection.")
            if detection.found
            else self.env._(
                "No settings were found for this address: fill them in below, or ask your IT department."
            )
        )
        values = {
            "signed_in": False,
            "detection_log": Markup("<p>%s</p><ul>%s</ul>") % (verdict, steps),
            "login": detection.login or self.email,
            "needs_confirmation": detection.needs_confirmation,
            "confirmed": False,
            "test_result": False,
            "test_failed": False,
            "step": "detected" if detection.found else "settings",
        }
        for kind in ("imap", "smtp"):
            # What was not found is empty: no server of an earlier address or attempt stays.
            server = getattr(detection, kind)
            values.update(
                {
                    f"{kind}_host": server.host if server else False,
                    f"{kind}_port": server.port if server else DEFAULT_PORTS[kind],
                    f"{kind}_security": server.security if server else "ssl",
                }
            )
        self.write(values)
        return self._reopen()

    def _sign_in_instead(self, provider):
        """Step 1 again, on Microsoft's ``provider``: Sign in with Microsoft, or the note that it is
        not set up; no password is asked for."""
        self.provider = provider
        return self._reopen()

    def action_sign_in(self):
        """Step 1 -> the provider's sign-in page, which sends the browser back to this assistant."""
        self.ensure_one()
        if not self.sign_in_with:
            raise UserError(self.env._("Choose Gmail, Outlook.com or Microsoft 365 to sign in."))
        self.signing_in = self.sign_in_with
        try:
            url = self.env["cats_mail_sync.sign_in"]._start(self, self.sign_in_with)
        except errors.MailboxError as error:
            raise UserError(self.user_id._mailbox_explain(error)) from None
        return {"type": "ir.actions.act_url", "url": url, "target": "self"}

    def _signed_in(self, state, authorization_code):
        """Back from the provider (see the controller): keep the sign-in, preset the servers."""
        self.ensure_one()
        code = self.signing_in
        sign_in = self.env["cats_mail_sync.sign_in"]
        tokens = sign_in._finish(self, code, state, authorization_code)
        self.env["cats_mail_sync.token"]._keep(self.user_id, code, tokens)
        provider = sign_in._provider(code)
        self.write(
            {
                "signed_in": code,
                "saved_sign_in": False,
                "email": tokens.address,
                "login": tokens.address,
                "imap_host": provider.imap.host,
                "imap_port": provider.imap.port,
                "imap_security": provider.imap.security,
                "smtp_host": provider.smtp.host,
                "smtp_port": provider.smtp.port,
                "smtp_security": provider.smtp.security,
                "needs_confirmation": False,
                "test_result": False,
                "test_failed": False,
                "step": "detected",
                "detection_log": Markup("<p>%s</p>")
                % self.env._(
                    "Signed in with %(provider)s as %(address)s. Test the connection, then save.",
                    provider=provider.label,
                    address=tokens.address,
                ),
            }
        )

    def action_edit(self):
        self.ensure_one()
        self.step = "settings"
        return self._reopen()

    def action_back(self):
        """Back to the address and provider: what was detected, tested or typed for those
        servers goes (nothing stale is shown or used for the next address)."""
        self.ensure_one()
        self.env["cats_mail_sync.secret"]._put(self, "cats_password", False)
        self.write(
            {
                "step": "provider",
                "signed_in": False,
                "saved_sign_in": False,
                "detection_log": False,
                "needs_confirmation": False,
                "confirmed": False,
                "test_result": False,
                "tested": False,
                "test_failed": False,
                "login": False,
                **{f"{kind}_host": False for kind in ("imap", "smtp")},
                **{f"{kind}_port": port for kind, port in DEFAULT_PORTS.items()},
                **{f"{kind}_security": "ssl" for kind in ("imap", "smtp")},
            }
        )
        return self._reopen()

    def action_test(self):
        """Log in to IMAP (Inbox and Sent found) and SMTP (TLS and AUTH, no mail sent)."""
        self.ensure_one()
        self._check_settings()
        # No secret ever goes to a detected server before the recruiter confirmed it.
        self._check_confirmed()
        if not self._has_credentials():
            raise UserError(self.env._("Fill in your password first."))
        # Which secret goes where is settled before anything is sent anywhere.
        self._credentials("imap", check_only=True)
        if self.smtp_host:
            self._credentials("smtp", check_only=True)
        self.env["cats_mail_sync.connector"]._count_try()
        results = [self._test_imap()]
        if self.smtp_host:
            results.append(self._test_smtp())
        tested = all(ok for ok, _text in results)
        self.write(
            {
                "tested": tested,
                # Save is then no longer the way on, and says so (see the form and action_save).
                "test_failed": not tested,
                "test_result": Markup("").join(
                    Markup('<p class="%s">%s</p>') % ("text-success" if ok else "text-danger", text)
                    for ok, text in results
                ),
            }
        )
        return self._reopen()

    def action_save(self):
        """Save the settings on the user's profile, where Activate is then possible."""
        self.ensure_one()
        self._check_address()
        self._check_settings()
        self._check_confirmed()
        if not self._has_credentials():
            raise UserError(self.env._("Fill in your password."))
        # A password typed for other servers, or a saved one that would not be kept for these.
        self._credentials("imap", check_only=True)
        if self.smtp_host:
            self._credentials("smtp", check_only=True)
        if self.stops_logging and not self.stop_logging_confirmed:
            raise UserError(
                self.env._(
                    "Your mailbox is logging mail. These settings point to another mailbox: saving stops "
                    'logging until you activate it. Tick "Stop logging the current mailbox" to go on, or '
                    "cancel."
                )
            )
        values = {
            "mailbox_email": self.email,
            "mailbox_login": self.login,
            "mailbox_imap_host": self.imap_host,
            "mailbox_imap_port": self.imap_port,
            "mailbox_imap_security": self.imap_security,
            "mailbox_smtp_host": self.smtp_host,
            "mailbox_smtp_port": self.smtp_port,
            "mailbox_smtp_security": self.smtp_security,
            "mailbox_oauth_provider": self.signed_in,
        }
        if self.history_offered:
            values["mailbox_history"] = self.history
        store = self.env["cats_mail_sync.secret"]
        if not self.signed_in and store._has(self, "cats_password"):
            values["mailbox_password"] = self._password()
        if self.set_user_email:
            values["email"] = self.email
        user = self.user_id._mailbox_check_access()
        user.write(values)
        store._put(self, "cats_password", False)
        user._mailbox_keep_sign_in()
        # Preferences open in a dialog, which this assistant replaced: open it again
        # (also over the page the assistant is back from signing in). The hr "My
        # Profile" page is still there and reloads on close.
        profile = self.env["res.users"].action_get()
        if profile.get("target") == "new" or self.signed_in:
            profile = self.env.user._mailbox_profile_on_email_tab(profile)
        else:
            profile = {"type": "ir.actions.act_window_close"}
        active = user.mailbox_state == "active"
        if self.test_failed and active:
            message = self.env._(
                "Settings saved, but they did not work in the connection test: your mailbox will report "
                "the problem at its next run, and logs no mail until it is solved."
            )
        elif self.test_failed:
            message = self.env._(
                "Settings saved, but they did not work in the connection test: correct them before you "
                "click Activate."
            )
        elif active:
            message = self.env._("Settings saved. Your mailbox goes on logging mail.")
        else:
            message = self.env._("Settings saved. Now click Activate to start logging your mail.")
        kind = "warning" if self.test_failed else "success"
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": kind, "message": message, "sticky": False, "next": profile},
        }

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def _plain_step(self, step):
        """One place looked at, in plain words: what it is and whether settings were found there;
        the technical outcome follows, small, for whoever helps the recruiter."""
        params = {name: unicode_domains(value) for name, value in step.params.items()}
        outcome = self.env._(step.message, **params)
        technical = self.env._(discovery.SOURCES[step.source])
        if step.message.startswith("Found"):
            said, detail = outcome, technical
        else:
            said, detail = self.env._("nothing found here"), f"{technical}: {outcome}"
        return Markup('<li><b>%s:</b> %s <small class="text-muted">(%s)</small></li>') % (
            self.env._(PLAIN_SOURCES.get(step.source, discovery.SOURCES[step.source])),
            said,
            detail,
        )

    @api.model
    def _saved_settings(self, user):
        """What the assistant opens on for ``user``'s mailbox set up before: its saved settings, on
        the form; one that signs in, as after signing in (its provider's servers; Back signs in
        again), or on the first step when the sign-in is no longer kept; nothing for a new one."""
        if not user.mailbox_imap_host:
            return {}
        provider = self._saved_provider(user)
        saved = {
            "step": "settings",
            "provider": provider,
            "email": user.mailbox_email or user.email,
            "login": user.mailbox_login,
            "history": user.mailbox_history or "none",
            **{
                f"{kind}_{name}": user[f"mailbox_{kind}_{name}"] or default
                for kind in ("imap", "smtp")
                for name, default in (("host", False), ("port", DEFAULT_PORTS[kind]), ("security", "ssl"))
            },
        }
        if not user.mailbox_oauth_provider:
            return saved
        token = self.env["cats_mail_sync.token"]._find(user, user.mailbox_oauth_provider)
        if not token:
            return {"provider": provider}
        return dict(saved, step="detected", signed_in=token.provider, saved_sign_in=True)

    @api.model
    def _saved_provider(self, user):
        """The provider whose servers (or sign-in) ``user``'s saved settings are, else Other: the
        profile keeps the servers, not the choice made in the assistant."""
        if user.mailbox_oauth_provider:
            codes = [
                code for code, sign_in in SIGN_IN_PROVIDERS.items() if sign_in == user.mailbox_oauth_provider
            ]
        else:
            host = (user.mailbox_imap_host or "").lower().rstrip(".")
            codes = [
                code
                for code, preset in discovery.PROVIDERS.items()
                if preset.imap and preset.imap.host == host
            ]
        if SIGN_IN_ONLY <= set(codes):
            # Outlook.com and Microsoft 365 share their servers and sign-in: Outlook.com's own
            # domains tell them apart.
            outlook = PROVIDER_DOMAINS[discovery.PROVIDERS["outlook"].imap.host]
            codes = ["outlook" if email_domain_extract(user.mailbox_email or "") in outlook else "office365"]
        return codes[0] if codes else "other"

    def _discovery_options(self):
        """Keyword arguments of :func:`discovery.discover` (tests point them at local servers)."""
        return self.env["cats_mail_sync.connector"]._options()

    def _check_confirmed(self):
        if self.needs_confirmation and not self.confirmed:
            raise UserError(
                self.env._(
                    "These settings point to servers outside your domain. Check the server names with your "
                    'IT department, then tick "I trust these servers".'
                )
            )

    def _has_credentials(self):
        if self.signed_in:
            return bool(self._sign_in_token())
        store = self.env["cats_mail_sync.secret"]
        return store._has(self, "cats_password") or store._has(self.user_id.sudo(), "cats_mailbox_password")

    def _sign_in_token(self):
        return self.env["cats_mail_sync.token"]._find(self.user_id, self.signed_in)

    def _places(self):
        """``{"imap": place, "smtp": place or None}`` of the servers and login in the assistant."""
        return {
            "imap": place(self.imap_host, self.imap_port, self.login),
            "smtp": place(self.smtp_host, self.smtp_port, self.login),
        }

    def _server(self, kind):
        return connection.Server(self[f"{kind}_host"], self[f"{kind}_port"], self[f"{kind}_security"])

    def _credentials(self, kind, check_only=False):
        """How the ``kind`` ("imap", "smtp") test signs in: ``{"password": ...}`` or
        ``{"access_token": ...}``; with ``check_only``, only whether a secret may go there.

        A sign-in only for its provider's own servers, as the address signed in; the
        password typed here for the servers and login it was typed for; else the saved
        one, only for exactly the saved servers and login. Otherwise a UserError asks
        for the password, and nothing is sent anywhere.
        """
        credentials = self.env["cats_mail_sync.credentials"]
        where = self._places()[kind]
        if self.signed_in:
            token = self._sign_in_token()
            if where not in credentials._sign_in_places(token):
                raise UserError(
                    self.user_id._mailbox_explain(
                        errors.SignInNotForServer(provider=dict(SIGN_IN_LABELS)[token.provider])
                    )
                )
            if check_only:
                return None
            return {"access_token": credentials._access_token(token, self._server(kind), self.login)}
        store = self.env["cats_mail_sync.secret"]
        user = self.user_id._mailbox_check_access()
        saved = where == credentials._places(user)[kind] and not user.mailbox_oauth_provider
        password = None
        try:
            with contextlib.suppress(errors.SecretNotForServer):
                password = store._get(self, "cats_password", where)
            if password is None and saved:
                with contextlib.suppress(errors.SecretNotForServer):
                    password = credentials._password(user, where)
        except errors.SecretUnreadable:
            if check_only:
                return None  # the test says so, in its words
            raise
        if password is None:
            raise UserError(
                self.env._(
                    "Type your password: the server or login differs from the saved settings. A password "
                    "is only ever sent to the server and login it was typed or saved for."
                )
            )
        return {"password": password}

    def _password(self):
        """The password typed here for the assistant's IMAP server and login, or else the one
        saved for exactly them (only ever the current user's own)."""
        return self._credentials("imap")["password"]

    def _test_imap(self):
        connector = self.env["cats_mail_sync.connector"]
        try:
            server = connection.Server(self.imap_host, self.imap_port, self.imap_security)
            with connector._imap(server, self.login, **self._credentials("imap")) as client:
                sent = MailboxReader(client).find_sent_folder()
        except errors.MailboxError as error:
            return False, self.env._("IMAP: %s", self.user_id._mailbox_explain(error))
        return True, self.env._("IMAP: signed in; found Inbox and your Sent folder (%s).", sent)

    def _test_smtp(self):
        connector = self.env["cats_mail_sync.connector"]
        try:
            server = connection.Server(self.smtp_host, self.smtp_port, self.smtp_security)
            connector._smtp(server, self.login, **self._credentials("smtp")).quit()
        except errors.MailboxError as error:
            return False, self.env._("SMTP: %s", self.user_id._mailbox_explain(error))
        return True, self.env._("SMTP: signed in over an encrypted connection (no mail was sent).")

    def _reopen(self):
        if self.signed_in and not self.saved_sign_in:
            # Back from signing in, the assistant is a page (the browser had left Odoo):
            # it shows the change in place.
            return True
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "name": self.env._("Configure your mailbox"),
        }


def unicode_domains(value):
    """A detection step's parameter with its domain names as they are written: each IDNA label
    (xn--...) in the letters it stands for (a label that is no valid one stays as it is)."""
    if not isinstance(value, str):
        return value

    def decoded(label):
        try:
            return label.group().encode("ascii").decode("idna")
        except UnicodeError:
            return label.group()

    return ACE_LABEL.sub(decoded, value)
