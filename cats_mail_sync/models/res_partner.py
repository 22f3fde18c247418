from odoo import models
from odoo.tools import email_normalize_all

from .. import database


class ResPartner(models.Model):
    _name = "res.partner"
    _inherit = ["res.partner", "cats_mail_sync.look_back.source"]
    _look_back_fields = ("email", "active")

    def init(self):
        # Mail is matched on contacts' addresses every few minutes: they are indexed (see
        # database.OBJECTS).
        super().init()
        database.make(self.env.cr, self._table)

    def _look_back_addresses(self):
        """The addresses through which these contacts' mail is matched (a field may hold several)."""
        return {
            address for partner in self if partner.active for address in email_normalize_all(partner.email)
        }
