from odoo import fields, models
from odoo.tools import sql


class HrEmployee(models.Model):
    _inherit = "hr.employee"

    # Mail is told internal by its colleagues' addresses and work contacts (see the
    # logger's _privacy) at every batch: index both.
    work_contact_id = fields.Many2one(index="btree_not_null")

    def init(self):
        super().init()
        sql.create_index(
            self.env.cr,
            "hr_employee_cats_mail_sync_work_email_index",
            self._table,
            ["lower(work_email)"],
        )
