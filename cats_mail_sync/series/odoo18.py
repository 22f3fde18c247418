"""Odoo 18.0: the person a recruiter mails is a candidate (``hr.candidate``), with applications."""

import threading
from collections import defaultdict

from odoo.api import Transaction  # noqa: F401 (one of the NAMES the package hands out)
from odoo.fields import Command

SERIES = 18
# The record that stands for a person: their address, their contact, their mail.
PERSON = "hr.candidate"
PERSON_TABLE = "hr_candidate"
# The records mail is logged on, as the recruiter calls them.
RECORD_TYPES = [("hr.candidate", "Candidate"), ("hr.applicant", "Application"), ("res.partner", "Contact")]
# The method of ir.mail_server through which Odoo opens an SMTP connection.
SMTP_CONNECT = "connect"
# Whether the chatter shows a message's recipients itself (else the addon names them).
SHOWS_RECIPIENTS = False


def personal_server(servers, user):
    """The values that make ``user``'s outgoing server their own to Odoo too: nothing on 18,
    which has no personal mail servers (the addon's own rules keep it to their mail)."""
    return {}


def recipient_fields(to, cc):
    """Odoo's own fields for the recipients of a logged mail (To and Cc, never Bcc): none on 18,
    where the chatter shows the addon's (SHOWS_RECIPIENTS)."""
    return {}


def record_type(record):
    """Which of RECORD_TYPES ``record`` is."""
    return record._name


def records_of(people):
    """The records the mail of ``people`` (persons found by their address) is logged on:
    ``{address: [records]}``. Each candidate still active, and its ongoing applications."""
    found = defaultdict(list)
    for candidate in people.filtered("active"):
        ongoing = candidate.applicant_ids.filtered(lambda app: app.application_status == "ongoing")
        found[candidate.email_normalized] += [candidate, *ongoing]
    return found


def in_test_mode():
    """Whether this thread runs a test (Odoo's runner, or pytest-odoo): there, nothing is committed."""
    return getattr(threading.current_thread(), "testing", False)


class unique:  # lower case: declared like a field, as odoo19.unique is called
    """A UNIQUE constraint, declared as a class attribute of a model:
    ``_role_unique = series.unique("UNIQUE(user_id, role)", "A mailbox has one Inbox.")``.
    Named ``{table}_{attribute without its underscore}`` in the database, as Odoo names them."""

    def __init__(self, definition, message):
        self.definition, self.message = definition, message

    def __set_name__(self, owner, name):
        # Before Odoo's model class reads the class's own _sql_constraints.
        owner._sql_constraints = [
            *owner.__dict__.get("_sql_constraints", []),
            (name.lstrip("_"), self.definition, self.message),
        ]


def user_groups(groups):
    """The values that give a user exactly ``groups``."""
    return {"groups_id": [Command.set(groups.ids)]}


def new_person(env, vals):
    """A new person (``partner_name``, ``email_from``, ...): a candidate."""
    return env["hr.candidate"].create(vals)


def new_application(person, vals):
    """A new application of ``person`` (``job_id``, ...)."""
    return person.env["hr.applicant"].create({"candidate_id": person.id, **vals})


def note_progress(cron, done, remaining):
    """Tell Odoo how far a scheduled run of ``cron`` got (a run its time limit stops counts as
    progress then); nothing outside a scheduled run. The caller commits."""
    cron._notify_progress(done=done, remaining=remaining)
