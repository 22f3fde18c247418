from . import database


def uninstall_hook(env):
    """Forget every secret and drop what the addon made beside the ORM (database.OBJECTS: the
    secrets' columns, the matching indexes and their function), and the recruiters' outgoing
    servers: without the module they would be servers like any other, with the recruiters'
    logins. The ORM drops the rest; the logged mail stays on its records."""
    servers = env["ir.mail_server"].sudo().with_context(active_test=False)
    servers.search([("mailbox_user_id", "!=", False)]).unlink()
    database.drop_all(env.cr)
