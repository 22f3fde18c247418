from odoo import models

from .. import database


class HrCandidate(models.Model):
    _name = "hr.candidate"
    _inherit = ["hr.candidate", "cats_mail_sync.look_back.source"]
    _look_back_fields = ("email_from", "partner_id", "active")

    def init(self):
        super().init()
        database.make(self.env.cr, self._table)

    def _look_back_addresses(self):
        """The addresses through which these candidates' mail is matched."""
        return {candidate.email_normalized for candidate in self if candidate.active} - {False}
