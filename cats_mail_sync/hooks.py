from odoo.tools import SQL, sql

from .models.res_partner import ADDRESSES_FUNCTION, ADDRESSES_INDEX

# Indexes made in init() on tables the addon does not own: uninstalling leaves them otherwise.
FOREIGN_INDEXES = {
    ADDRESSES_INDEX: "res_partner",
    "res_users_cats_mail_sync_login_index": "res_users",
    "hr_employee_cats_mail_sync_work_email_index": "hr_employee",
}
# Columns made in init(), beside the ORM, on tables the addon does not own (its own
# tables go with it): the recruiters' encrypted passwords.
FOREIGN_COLUMNS = {
    "res_users": ["cats_mailbox_password"],
}


def uninstall_hook(env):
    """Forget every secret, drop the recruiters' outgoing servers, the matching indexes on
    contacts, users and employees, and the function of contacts' addresses, which nothing
    else reads."""
    # The recruiters' own outgoing servers are the module's: without it they would be
    # servers like any other, with the recruiters' logins.
    servers = env["ir.mail_server"].sudo().with_context(active_test=False)
    servers.search([("mailbox_user_id", "!=", False)]).unlink()
    for table, columns in FOREIGN_COLUMNS.items():
        for column in columns:
            env.cr.execute(
                SQL(
                    "ALTER TABLE %s DROP COLUMN IF EXISTS %s",
                    SQL.identifier(table),
                    SQL.identifier(column),
                )
            )
    for index, table in FOREIGN_INDEXES.items():
        sql.drop_index(env.cr, index, table)
    env.cr.execute(SQL("DROP FUNCTION IF EXISTS %s(text)", SQL.identifier(ADDRESSES_FUNCTION)))
