from odoo import api, models


class HrCandidate(models.Model):
    _inherit = "hr.candidate"

    @api.model_create_multi
    def create(self, vals_list):
        candidates = super().create(vals_list)
        self.env["cats_mail_sync.look_back"]._queue(candidates._look_back_addresses())
        return candidates

    def write(self, vals):
        if not {"email_from", "partner_id", "active"} & set(vals):
            return super().write(vals)
        before = self._look_back_addresses()
        result = super().write(vals)
        self.env["cats_mail_sync.look_back"]._queue(self._look_back_addresses() - before)
        return result

    def _look_back_addresses(self):
        """The addresses through which these candidates' mail is matched."""
        return {candidate.email_normalized for candidate in self if candidate.active} - {False}
