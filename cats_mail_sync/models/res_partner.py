from odoo import fields, models


class ResPartner(models.Model):
    _inherit = "res.partner"

    # Mail is matched on contacts' addresses every few minutes: index them.
    email_normalized = fields.Char(index="btree_not_null")
