"""18.0 to 19.0: the mail logged on candidates goes to the applicants they became.

Odoo 19 has no ``hr.candidate``: the person is an applicant again (``series.PERSON``). On 18 a
mail was logged on the candidate and, separately, on each of their ongoing applications. After
the upgrade, each mail logged on a candidate is on the records 19 logs it on for that person
(``series.records_of``: each ongoing application and the talent-pool profile, else the latest
application), found through the candidate link the upgrade leaves on ``hr_applicant``; a
candidate without applications leaves it on their address's applicants, else on their contact.
A record that has the mail already (its own copy from 18) keeps that one: still once per record.
A mail a recruiter removed from a candidate stays away from those records too.

Runs only when upgrading from 18 (a folder named with its series); read from the tables the
upgrade leaves until its end (``hr_candidate``, ``hr_applicant.candidate_id``): when they are
gone, the mail stays where it is, and the log says how many. Running this again changes nothing.

The recipients of logged mail are in Odoo's own fields too (To and Cc, never a Bcc), which the
chatter shows. The recruiters' outgoing servers become their Odoo 19 personal mail servers (see
``series.personal_server``): saved again from the mailbox settings.
"""

import logging

from odoo import SUPERUSER_ID, Command, api
from odoo.tools import sql

from odoo.addons.cats_mail_sync import series

_logger = logging.getLogger("odoo.addons.cats_mail_sync.migrations")

CANDIDATE = "hr.candidate"


def logged_on_candidates(cr):
    """``{candidate id: [logged message ids]}``."""
    cr.execute(
        "SELECT res_id, array_agg(id ORDER BY id) FROM mail_message "
        "WHERE model = %s AND mailbox_user_id IS NOT NULL GROUP BY res_id",
        [CANDIDATE],
    )
    return dict(cr.fetchall())


def removed_from_candidates(cr):
    """``{candidate id: [removal ids]}``."""
    cr.execute(
        "SELECT res_id, array_agg(id ORDER BY id) FROM cats_mail_sync_removal "
        "WHERE model = %s GROUP BY res_id",
        [CANDIDATE],
    )
    return dict(cr.fetchall())


def records_of_candidate(env, candidate_id):
    """The records the mail of a candidate goes on: those 19 logs the person's mail on, from
    the applications the candidate had; else from the applicants of their address; else their
    contact. Empty when nothing is known of them."""
    cr = env.cr
    applicants = env[series.PERSON].with_context(active_test=False)
    cr.execute("SELECT id FROM hr_applicant WHERE candidate_id = %s", [candidate_id])
    found = applicants.browse(row[0] for row in cr.fetchall())
    cr.execute("SELECT email_normalized, partner_id FROM hr_candidate WHERE id = %s", [candidate_id])
    address, partner_id = cr.fetchone() or (None, None)
    if not found and address:
        found = applicants.search([("email_normalized", "=", address)])
    if found:
        return [record for records in series.records_of(found).values() for record in records]
    partner = env["res.partner"].browse(partner_id).exists()
    return [partner] if partner else []


def copy_to(message, record):
    """A copy of logged ``message`` on ``record``, its attachments in that record's dossier."""
    attachments = message.attachment_ids
    copies = [attachment.copy({"res_model": record._name, "res_id": record.id}) for attachment in attachments]
    return message.copy(
        {
            "model": record._name,
            "res_id": record.id,
            "message_id": message.message_id,
            "mailbox_user_id": message.mailbox_user_id.id,
            "mailbox_to": message.mailbox_to,
            "mailbox_cc": message.mailbox_cc,
            "mailbox_bcc": message.mailbox_bcc,
            "attachment_ids": [Command.set([copy.id for copy in copies])],
        }
    )


def move_to(message, record):
    """Put logged ``message`` (and its attachments) on ``record``."""
    message.attachment_ids.filtered(lambda attachment: attachment.res_model == CANDIDATE).write(
        {"res_model": record._name, "res_id": record.id}
    )
    message.write({"model": record._name, "res_id": record.id})


def move_candidate(env, candidate_id, message_ids, removal_ids):
    """Put the mail logged on one candidate, and its removals, on the records of that person;
    the number of records it reached (0: left where it is)."""
    records = records_of_candidate(env, candidate_id)
    if not records:
        return 0
    messages = env["mail.message"].browse(message_ids)
    removals = env["cats_mail_sync.removal"].browse(removal_ids)
    ids = set(messages.mapped("message_id")) | set(removals.mapped("message_id"))
    present = env["mail.message"].search(
        [("message_id", "in", list(ids)), ("mailbox_user_id", "!=", False), ("model", "!=", CANDIDATE)]
    )
    # What each record has already: its own copy, or a removal (never logged there again).
    taken = {(m.model, m.res_id, m.message_id) for m in present}
    taken |= env["cats_mail_sync.removal"]._removed(list(ids))
    for message in messages:
        free = [record for record in records if (record._name, record.id, message.message_id) not in taken]
        for record in free[1:]:
            copy_to(message, record)
        if free:
            move_to(message, free[0])
        else:
            # Every record has it already: the candidate's copy goes, with its dossier's copies.
            message.attachment_ids.filtered(lambda attachment: attachment.res_model == CANDIDATE).unlink()
            message.unlink()
    for removal in removals:
        for record in records:
            if (record._name, record.id, removal.message_id) not in taken:
                removal.copy({"model": record._name, "res_id": record.id})
        removal.unlink()
    return len(records)


def move_candidates_mail(env):
    """Move the mail logged on every candidate; ``(candidates moved, candidates left)``."""
    cr = env.cr
    logged = logged_on_candidates(cr)
    removed = removed_from_candidates(cr)
    if not logged and not removed:
        return 0, 0
    if not (sql.table_exists(cr, "hr_candidate") and sql.column_exists(cr, "hr_applicant", "candidate_id")):
        _logger.warning(
            "Mail logged on %s candidates stays on them: the upgrade left no candidates to follow",
            len(logged.keys() | removed.keys()),
        )
        return 0, len(logged.keys() | removed.keys())
    moved = left = 0
    for candidate_id in sorted(logged.keys() | removed.keys()):
        if move_candidate(env, candidate_id, logged.get(candidate_id, []), removed.get(candidate_id, [])):
            moved += 1
        else:
            left += 1
    if left:
        _logger.warning(
            "Mail logged on %s candidates stays on them: no application, address or contact", left
        )
    return moved, left


def recipients_in_odoo_fields(cr):
    """Give the mail logged before its To and Cc in Odoo's own fields (series.recipient_fields),
    which the chatter shows; the number of mails."""
    cr.execute(
        """
        UPDATE mail_message SET incoming_email_to = mailbox_to, incoming_email_cc = mailbox_cc
         WHERE mailbox_user_id IS NOT NULL AND incoming_email_to IS NULL AND incoming_email_cc IS NULL
           AND (mailbox_to IS NOT NULL OR mailbox_cc IS NOT NULL)
        """
    )
    return cr.rowcount


def migrate(cr, version):
    env = api.Environment(cr, SUPERUSER_ID, {})
    _logger.info("Recipients of %s logged mails in Odoo's fields", recipients_in_odoo_fields(cr))
    moved, _left = move_candidates_mail(env)
    _logger.info("Mail logged on %s candidates moved to their applications", moved)
    users = env["res.users"].with_context(active_test=False).search([("mailbox_state", "=", "active")])
    env["ir.mail_server"]._cats_mail_sync_update(users)
