from odoo import models

from .. import database, series


class Person(models.Model):
    """The record that stands for a person a recruiter mails (see ``series.PERSON``): a new
    one, or a changed address, looks back for its earlier mail."""

    _name = series.PERSON
    _inherit = [series.PERSON, "cats_mail_sync.look_back.source"]
    _look_back_fields = ("email_from", "partner_id", "active")

    def init(self):
        super().init()
        database.make(self.env.cr, self._table)

    def _look_back_addresses(self):
        """The addresses through which these persons' mail is matched and logged."""
        return set(series.records_of(self)) - {False}
