"""Odoo 19.0's personal mail servers: a recruiter's outgoing server is theirs (see also
``odoo19.personal_server``).

19 lets a user send their mail through a server of their own (``ir.mail_server.owner_user_id``,
``res.users.outgoing_mail_server_id``, set up in Preferences when an administrator allows custom
mail servers). The server the addon keeps in step with a mailbox (see models/ir_mail_server.py)
is that personal server: Odoo then uses it for its owner's mail only, never as a domain match or
fallback for anyone else's, refuses it when another user forces it, and throttles it as personal
servers are. One per user: a personal server set up in Preferences gives way to the mailbox's,
and choosing another there is refused while the mailbox sends the recruiter's mail.
"""

from odoo import api, fields, models
from odoo.exceptions import UserError


# Odoo 19's only: not merged with models/res_users.py, which both series load.
class ResUsers(models.Model):  # pylint: disable=consider-merging-classes-inherited
    _inherit = "res.users"  # pylint: disable=consider-merging-classes-inherited

    mailbox_sends_mail = fields.Boolean(
        "Mail sent through the mailbox",
        compute="_compute_mailbox_sends_mail",
        help="Whether this user's mail leaves through their mailbox's outgoing server.",
    )

    @api.depends("mailbox_mail_server_id.active")
    def _compute_mailbox_sends_mail(self):
        for user in self:
            # sudo: whether the user's own server is in use, not its settings
            user.mailbox_sends_mail = user.sudo().mailbox_mail_server_id.active

    def _compute_outgoing_mail_server_id(self):  # pylint: disable=missing-return
        super()._compute_outgoing_mail_server_id()
        # Odoo finds a personal server by the user's address and login: the mailbox's is theirs
        # whatever those are (else its clean-up would delete it).
        for user in self.filtered("mailbox_sends_mail"):
            user.outgoing_mail_server_id = user.sudo().mailbox_mail_server_id

    @api.model
    def action_setup_outgoing_mail_server(self, server_type):
        if self.env.user.mailbox_sends_mail:
            raise UserError(
                self.env._(
                    "Your mail is sent through your mailbox (Preferences, Email tab): deactivate "
                    "the mailbox there to choose another outgoing server."
                )
            )
        return super().action_setup_outgoing_mail_server(server_type)
