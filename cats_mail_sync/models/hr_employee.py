from odoo import models

from .. import database


class HrEmployee(models.Model):
    _inherit = "hr.employee"

    def init(self):
        # Colleagues' addresses and work contacts are indexed (see database.OBJECTS).
        super().init()
        database.make(self.env.cr, self._table)
