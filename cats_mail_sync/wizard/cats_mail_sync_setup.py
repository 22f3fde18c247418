from markupsafe import Markup

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..mailbox_client import connection, discovery, errors
from ..mailbox_client.reader import MailboxReader
from ..models.res_users import SECURITY

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
    detection_log = fields.Html("What was tried", readonly=True, sanitize=True)
    needs_confirmation = fields.Boolean(readonly=True)
    confirmed = fields.Boolean("I trust these servers")
    login = fields.Char()
    password = fields.Char(
        compute="_compute_password",
        inverse="_inverse_password",
        help="Leave empty to keep the password typed or saved before.",
    )
    imap_host = fields.Char("IMAP server")
    imap_port = fields.Integer("IMAP port", default=993)
    imap_security = fields.Selection(SECURITY, "IMAP security", default="ssl", required=True)
    smtp_host = fields.Char("SMTP server")
    smtp_port = fields.Integer("SMTP port", default=465)
    smtp_security = fields.Selection(SECURITY, "SMTP security", default="ssl", required=True)
    test_result = fields.Html("Connection test", readonly=True, sanitize=True)

    def init(self):
        super().init()
        # What is typed here is kept encrypted, out of reach of any read (see
        # cats_mail_sync.secret), until it is saved or no longer needed.
        self.env.cr.execute("ALTER TABLE cats_mail_sync_setup ADD COLUMN IF NOT EXISTS cats_password varchar")

    @api.model_create_multi
    def create(self, vals_list):
        setups = super().create(vals_list)
        # An assistant configures its creator's mailbox, or any for an administrator.
        for setup in setups:
            setup.user_id._mailbox_check_access()
        return setups

    def write(self, vals):
        if "user_id" in vals:
            raise UserError(self.env._("An assistant configures one mailbox; open a new one for another."))
        return super().write(vals)

    def _compute_password(self):
        self.password = False

    def _inverse_password(self):
        for setup in self:
            if setup.password:
                self.env["cats_mail_sync.secret"]._put(setup, "cats_password", setup.password)
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

    @api.depends("provider")
    def _compute_provider_note(self):
        for setup in self:
            note = discovery.PROVIDERS[setup.provider].note if setup.provider else None
            setup.provider_note = self.env._(note) if note else False

    @api.constrains("imap_port", "imap_security", "smtp_port", "smtp_security")
    def _check_ports(self):
        for setup in self:
            for kind in ("imap", "smtp"):
                port, security = setup[f"{kind}_port"], setup[f"{kind}_security"]
                if not setup[f"{kind}_host"]:
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
        self.env["cats_mail_sync.connector"]._count_try()
        detection = discovery.discover(self.email, self.provider, **self._discovery_options())
        steps = Markup("").join(
            Markup("<li><b>%s:</b> %s</li>")
            % (self.env._(discovery.SOURCES[step.source]), self.env._(step.message, **step.params))
            for step in detection.steps
        )
        verdict = (
            self.env._("Settings found: check them, type your password and test the connection.")
            if detection.found
            else self.env._(
                "No settings were found for this address: fill them in below, or ask your IT department."
            )
        )
        values = {
            "detection_log": Markup("<p>%s</p><ul>%s</ul>") % (verdict, steps),
            "login": detection.login or self.email,
            "needs_confirmation": detection.needs_confirmation,
            "confirmed": False,
            "test_result": False,
            "step": "detected" if detection.found else "settings",
        }
        for kind in ("imap", "smtp"):
            server = getattr(detection, kind)
            if server:
                values.update(
                    {
                        f"{kind}_host": server.host,
                        f"{kind}_port": server.port,
                        f"{kind}_security": server.security,
                    }
                )
        self.write(values)
        return self._reopen()

    def action_edit(self):
        self.ensure_one()
        self.step = "settings"
        return self._reopen()

    def action_back(self):
        self.ensure_one()
        self.step = "provider"
        return self._reopen()

    def action_test(self):
        """Log in to IMAP (Inbox and Sent found) and SMTP (TLS and AUTH, no mail sent)."""
        self.ensure_one()
        if not self._has_password():
            raise UserError(self.env._("Fill in your password first."))
        self.env["cats_mail_sync.connector"]._count_try()
        results = [self._test_imap()]
        if self.smtp_host:
            results.append(self._test_smtp())
        self.test_result = Markup("").join(
            Markup('<p class="%s">%s</p>') % ("text-success" if ok else "text-danger", text)
            for ok, text in results
        )
        return self._reopen()

    def action_save(self):
        """Save the settings on the user's profile, where Activate is then possible."""
        self.ensure_one()
        if not (self.login and self.imap_host):
            raise UserError(self.env._("Fill in at least the login and the IMAP server."))
        if self.needs_confirmation and not self.confirmed:
            raise UserError(
                self.env._(
                    "These settings point to servers outside your domain. Check the server names with your "
                    'IT department, then tick "I trust these servers".'
                )
            )
        if not self._has_password():
            raise UserError(self.env._("Fill in your password."))
        values = {
            "email": self.email,
            "mailbox_email": self.email,
            "mailbox_login": self.login,
            "mailbox_imap_host": self.imap_host,
            "mailbox_imap_port": self.imap_port,
            "mailbox_imap_security": self.imap_security,
            "mailbox_smtp_host": self.smtp_host,
            "mailbox_smtp_port": self.smtp_port,
            "mailbox_smtp_security": self.smtp_security,
        }
        store = self.env["cats_mail_sync.secret"]
        if store._has(self, "cats_password"):
            values["mailbox_password"] = self._password()
        self.user_id.write(values)
        store._put(self, "cats_password", False)
        # Preferences open in a dialog, which this assistant replaced: open it
        # again. The hr "My Profile" page is still there and reloads on close.
        profile = dict(self.env["res.users"].action_get(), res_id=self.env.uid)
        return profile if profile.get("target") == "new" else {"type": "ir.actions.act_window_close"}

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def _discovery_options(self):
        """Keyword arguments of :func:`discovery.discover` (tests point them at local servers)."""
        return self.env["cats_mail_sync.connector"]._options()

    def _has_password(self):
        store = self.env["cats_mail_sync.secret"]
        return store._has(self, "cats_password") or store._has(self.user_id.sudo(), "cats_mailbox_password")

    def _password(self):
        """The password typed here, or else the one saved (only ever the current user's own)."""
        typed = self.env["cats_mail_sync.secret"]._get(self, "cats_password")
        return typed or self.user_id._mailbox_check_access()._mailbox_password()

    def _test_imap(self):
        connector = self.env["cats_mail_sync.connector"]
        try:
            server = connection.Server(self.imap_host, self.imap_port, self.imap_security)
            with connector._imap(server, self.login, self._password()) as client:
                sent = MailboxReader(client).find_sent_folder()
        except errors.MailboxError as error:
            return False, self.env._("IMAP: %s", self.user_id._mailbox_explain(error))
        return True, self.env._("IMAP: signed in; found Inbox and your Sent folder (%s).", sent)

    def _test_smtp(self):
        connector = self.env["cats_mail_sync.connector"]
        try:
            server = connection.Server(self.smtp_host, self.smtp_port, self.smtp_security)
            connector._smtp(server, self.login, self._password()).quit()
        except errors.MailboxError as error:
            return False, self.env._("SMTP: %s", self.user_id._mailbox_explain(error))
        return True, self.env._("SMTP: signed in over an encrypted connection (no mail was sent).")

    def _reopen(self):
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "name": self.env._("Configure your mailbox"),
        }
