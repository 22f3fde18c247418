"""18.0.1.5.0: the mail passed over unread is looked at again.

Until now the reader looked a mail's header up under the one label Dovecot gives it; a server
that labels it otherwise (Courier quotes the field names, which RFC 3501 allows) seemed to send
mail without a sender or recipients: looked at, matched to nothing, and the folder's cursor
moved past it. Every folder is now read once more from its activation point: from its first UID
after activation where it is known (and the folder not renumbered since), else by date from the
activation on, as after a renumbering; the history a recruiter asked for is read again too.
Mail already logged stays once per record: logging goes by Message-ID (and a mail a recruiter
removed stays removed).

A removal now keeps the name of the user who made it, so that the user can be deleted: the
removals made before get it from their user.

The indexes on contacts' addresses and employees' work contacts were made by the ORM (``index=``
on those fields), which leaves them behind at uninstall; they are made under names of the
addon's now (see database.OBJECTS), and the ORM's ones go, unless a field still asks for them.
"""

import logging

from odoo import SUPERUSER_ID, api
from odoo.tools import sql

_logger = logging.getLogger(__name__)


def rescan_from_activation(cr):
    """Put every folder's cursor back to its activation point; the number of folders."""
    cr.execute(
        """UPDATE cats_mail_sync_folder f
              SET last_uid = CASE WHEN way.by_uid THEN LEAST(f.last_uid, f.first_uid - 1) ELSE f.last_uid END,
                  uidvalidity = CASE WHEN way.by_uid THEN f.uidvalidity ELSE 0 END,
                  synced_at = CASE WHEN way.by_uid THEN f.synced_at
                                   ELSE COALESCE(u.mailbox_activated_at, f.synced_at) END,
                  history_uid = 0,
                  history_done_at = NULL
             FROM (SELECT id, COALESCE(first_uid, 0) > 0 AND first_uidvalidity = uidvalidity AS by_uid
                     FROM cats_mail_sync_folder) AS way,
                  res_users u
            WHERE way.id = f.id AND u.id = f.user_id"""
    )
    return cr.rowcount


def name_the_removers(cr):
    cr.execute(
        """UPDATE cats_mail_sync_removal r SET removed_by_name = p.name
             FROM res_users u JOIN res_partner p ON p.id = u.partner_id
            WHERE u.id = r.removed_by_id AND r.removed_by_name IS NULL"""
    )


def drop_the_orms_indexes(cr):
    env = api.Environment(cr, SUPERUSER_ID, {})
    for model, field in (("res.partner", "email_normalized"), ("hr.employee", "work_contact_id")):
        table = env[model]._table
        if not env[model]._fields[field].index:
            sql.drop_index(cr, sql.make_index_name(table, field), table)


def migrate(cr, version):
    if not version:
        return
    folders = rescan_from_activation(cr)
    _logger.info("%s mailbox folders are read again from their activation point", folders)
    name_the_removers(cr)
    drop_the_orms_indexes(cr)
