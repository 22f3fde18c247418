"""Odoo 19.0: the person a recruiter mails is an applicant (``hr.applicant``), in talent pools."""

import threading
from collections import defaultdict

from odoo import Command, models
from odoo.modules import module
from odoo.orm.environments import Transaction  # noqa: F401 (one of the NAMES the package hands out)

from . import odoo19_personal_server  # noqa: F401 (the models only 19 has: personal mail servers)

SERIES = 19
# The record that stands for a person: their address, their contact, their mail.
PERSON = "hr.applicant"
PERSON_TABLE = "hr_applicant"
# The records mail is logged on, as the recruiter calls them.
RECORD_TYPES = [("hr.applicant", "Application"), ("talent", "Talent"), ("res.partner", "Contact")]
# The method of ir.mail_server through which Odoo opens an SMTP connection.
SMTP_CONNECT = "_connect__"
# Whether the chatter shows a message's recipients itself (else the addon names them).
SHOWS_RECIPIENTS = True


def personal_server(servers, user):
    """The values that make ``user``'s outgoing server their Odoo personal mail server (see
    odoo19_personal_server.py). One per user: one set up in Preferences gives way."""
    servers.sudo().with_context(active_test=False).search(
        [("owner_user_id", "=", user.id), ("mailbox_user_id", "!=", user.id)]
    ).unlink()
    return {"owner_user_id": user.id}


def recipient_fields(to, cc):
    """Odoo's own fields for the recipients of a logged mail (To and Cc, never Bcc), which the
    chatter shows (its envelope) and the message form lists."""
    return {"incoming_email_to": to or False, "incoming_email_cc": cc or False}


def record_type(record):
    """Which of RECORD_TYPES ``record`` is: a talent is an applicant in a talent pool."""
    return "talent" if record._name == "hr.applicant" and record.talent_pool_ids else record._name


def records_of(people):
    """The records the mail of ``people`` (applicants found by their address, archived ones
    too) is logged on: ``{address: [records]}``. Every record a recruiter opens for that person:
    each ongoing application and the talent-pool profile where there is one; a person whose
    applications have all ended (refused, hired, archived) still gets it on the latest one."""
    by_address = defaultdict(people.browse)
    for applicant in people:
        by_address[applicant.email_normalized] |= applicant
    found = {}
    for address, applicants in by_address.items():
        open_ = applicants.filtered(
            lambda app: app.application_status == "ongoing" or (app.active and app.talent_pool_ids)
        )
        open_ |= applicants.pool_applicant_id.filtered("active")
        latest = max(applicants, key=lambda app: (app.create_date, app.id))
        found[address] = list(open_.sorted("id") or latest)
    return found


def in_test_mode():
    """Whether this thread runs a test (Odoo's runner, or pytest-odoo): there, nothing is committed.
    19 no longer marks the thread; the test that runs is a global, and tests run in the main
    thread (a test's own threads, which commit as production does, are not in test mode)."""
    return bool(module.current_test) and threading.current_thread() is threading.main_thread()


def unique(definition, message):
    """A UNIQUE constraint, declared as a class attribute of a model (see odoo18.unique)."""
    return models.Constraint(definition, message)


def user_groups(groups):
    """The values that give a user exactly ``groups``."""
    return {"group_ids": [Command.set(groups.ids)]}


def new_person(env, vals):
    """A new person (``partner_name``, ``email_from``, ...): a talent, an applicant in a talent
    pool (the first pool, or a new one), its own ``pool_applicant_id`` as hr_recruitment's
    talent.pool.add.applicants makes them."""
    pool = env["hr.talent.pool"].search([], limit=1) or env["hr.talent.pool"].create({"name": "Talents"})
    person = env["hr.applicant"].create({"talent_pool_ids": [Command.link(pool.id)], **vals})
    person.pool_applicant_id = person
    return person


def new_application(person, vals):
    """A new application of ``person`` (``job_id``, ...), linked to their talent."""
    same = {
        "partner_name": person.partner_name,
        "email_from": person.email_from,
        "partner_id": person.partner_id.id,
    }
    return person.env["hr.applicant"].create({**same, "pool_applicant_id": person.id, **vals})


def note_progress(cron, done, remaining):
    """Tell Odoo how far a scheduled run of ``cron`` got (a run its time limit stops counts as
    progress then); nothing outside a scheduled run. The caller commits: what 19's
    _commit_progress records, without its commit (never in a test), and without 18's
    _notify_progress, deprecated here."""
    context = cron.env.context
    progress = cron.env["ir.cron.progress"].sudo().browse(context.get("ir_cron_progress_id"))
    if progress and progress.cron_id.id == context.get("cron_id"):
        progress.write({"done": done, "remaining": remaining})
