from odoo.tools import SQL, sql

from .models.res_partner import ADDRESSES_FUNCTION, ADDRESSES_INDEX

# Indexes made in init() on tables the addon does not own: uninstalling leaves them otherwise.
FOREIGN_INDEXES = {
    ADDRESSES_INDEX: "res_partner",
    "res_users_cats_mail_sync_login_index": "res_users",
    "hr_employee_cats_mail_sync_work_email_index": "hr_employee",
}


def uninstall_hook(env):
    """Drop the matching indexes on contacts, users and employees, and the function of
    contacts' addresses, which nothing else reads."""
    for index, table in FOREIGN_INDEXES.items():
        sql.drop_index(env.cr, index, table)
    env.cr.execute(SQL("DROP FUNCTION IF EXISTS %s(text)", SQL.identifier(ADDRESSES_FUNCTION)))
