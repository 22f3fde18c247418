from odoo import api, fields, models

from ..mailbox_client import oauth


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    cats_mail_sync_redirect_uri = fields.Char(
        "Redirect URI for mailbox sign-in", compute="_compute_cats_mail_sync_sign_in"
    )
    cats_mail_sync_google_scopes = fields.Char("Google scopes", compute="_compute_cats_mail_sync_sign_in")
    cats_mail_sync_microsoft_scopes = fields.Char(
        "Microsoft permissions", compute="_compute_cats_mail_sync_sign_in"
    )
    cats_mail_sync_listen = fields.Boolean(
        "Recruiters' new mail within seconds",
        help="Where the listener runs (odoo cats_mail_sync_listen), each active mailbox is held open "
        "and new mail is logged seconds after it arrives; off, or without the listener, at the next "
        "scheduled run (every 10 minutes).",
    )
    cats_mail_sync_listener = fields.Char("Listener", compute="_compute_cats_mail_sync_listener")
    cats_mail_sync_microsoft_tenant = fields.Char(
        "Microsoft tenant",
        config_parameter="cats_mail_sync.microsoft_tenant",
        help="Who may sign in: common (any Microsoft account), organizations (work and school accounts), "
        "consumers (Outlook.com), or your directory (tenant) id.",
    )

    @api.depends("company_id")
    def _compute_cats_mail_sync_sign_in(self):
        redirect_uri = self.env["cats_mail_sync.sign_in"]._redirect_uri()
        for settings in self:
            settings.cats_mail_sync_redirect_uri = redirect_uri
            settings.cats_mail_sync_google_scopes = " ".join(oauth.GOOGLE_SCOPES)
            settings.cats_mail_sync_microsoft_scopes = " ".join(oauth.MICROSOFT_SCOPES)

    @api.model
    def get_values(self):
        listen = self.env["cats_mail_sync.listener"]._enabled()
        return {**super().get_values(), "cats_mail_sync_listen": listen}

    def set_values(self):
        result = super().set_values()
        # Kept as a word: on unless an administrator said off (Odoo deletes a parameter set False).
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("cats_mail_sync.listen", str(bool(self.cats_mail_sync_listen)))
        return result

    @api.depends("cats_mail_sync_listen")  # computed as the form opens (a new record)
    def _compute_cats_mail_sync_listener(self):
        listener = self.env["cats_mail_sync.listener"]._alive()
        for settings in self:
            settings.cats_mail_sync_listener = (
                self.env._(
                    "Running on %(name)s. Connections held: %(count)s.",
                    name=listener.name,
                    count=listener.connections,
                )
                if listener
                else self.env._("Not running: start odoo cats_mail_sync_listen (see the README)")
            )
