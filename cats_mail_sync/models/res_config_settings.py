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
