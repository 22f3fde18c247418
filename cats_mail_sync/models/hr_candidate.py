from odoo import models


class HrCandidate(models.Model):
    _name = "hr.candidate"
    _inherit = ["hr.candidate", "cats_mail_sync.look_back.source"]
    _look_back_fields = ("email_from", "partner_id", "active")

    def init(self):
        """Index candidates' addresses for the exact lookups of matching (see the logger's
        ``_match``). hr_recruitment indexes them by trigrams, for searches by part of an address:
        PostgreSQL takes that index for exact addresses too, and a batch of two hundred then
        costs seconds once there are a few thousand candidates. Not partial: PostgreSQL keeps
        statistics of the expression only for a whole index, and without them expects most
        candidates to match."""
        super().init()
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS hr_candidate_cats_mail_sync_email_index "
            "ON hr_candidate (lower(email_normalized))"
        )

    def _look_back_addresses(self):
        """The addresses through which these candidates' mail is matched."""
        return {candidate.email_normalized for candidate in self if candidate.active} - {False}
