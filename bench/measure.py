"""The measurements: each returns seconds (or a rate), the sync's figures beside raw ones.

The sync's figures come from its own entry points (``_cron``, ``_sync``), with commits,
as a scheduled run makes them; the raw ones from imapclient/imaplib or Odoo's
``message_post``/``message_process`` alone.
"""

import imaplib
import ssl
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from unittest.mock import patch

import data
from dateutil.relativedelta import relativedelta
from markupsafe import Markup

from odoo import fields
from odoo.sql_db import Cursor

from odoo.addons.cats_mail_sync import series
from odoo.addons.cats_mail_sync.mailbox_client.header_fetch import HEADER_FIELDS
from odoo.addons.cats_mail_sync.mailbox_client.reader import batches
from odoo.addons.cats_mail_sync.models import cats_mail_sync_cycle as cycle


def _settled(env):
    """As a run starts in production (a transaction of its own, its cache empty), not after the
    benchmark's own work: what the benchmark cached goes. No forced garbage collection: nothing
    forces one before a run in production, nor before the raw baselines here, and one leaves the
    processor's caches cold for the milliseconds that follow (an idle check measured 20.9 ms after
    one, 16.6 ms without; the raw check 12.8 and 13.0 ms)."""
    env.invalidate_all()


def _timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def _last_runs(env, after_id):
    return env["cats_mail_sync.run"].sudo().search([("id", ">", after_id)])


def _last_run_id(env):
    return env["cats_mail_sync.run"].sudo().search([], order="id desc", limit=1).id or 0


# -- a whole cycle -----------------------------------------------------------


@dataclass
class Cycle:
    """One cycle over every active mailbox: wall and CPU seconds, the scheduled action's runs, the
    most mailboxes read at once, and the SQL statements sent (all, and those that insert or update)."""

    seconds: float
    cpu_seconds: float
    runs: int
    widest: int
    statements: int
    inserts: dict  # {table: INSERT statements}
    updates: int


def idle_cycle(env, mailboxes, concurrency=None):
    """One cycle as production makes it: the scheduled run, then the runs it asks for (Odoo starts
    them at once), until no mailbox is due; with the module's default settings, or
    ``concurrency`` set. Checks that it read the ``mailboxes`` expected, without error."""
    params = env["ir.config_parameter"].sudo()
    kept = params.get_param("cats_mail_sync.run_seconds")
    params.set_param("cats_mail_sync.concurrency", concurrency and str(concurrency))
    params.set_param("cats_mail_sync.run_seconds", False)
    cron = env.ref("cats_mail_sync.ir_cron_cats_mail_sync").sudo()
    began = fields.Datetime.now()
    cron.nextcall = began  # the scheduled run...
    env.cr.commit()
    sync = env["cats_mail_sync.sync"]
    counted, inserted, most = Counter(), Counter(), [0]
    execute, width = Cursor.execute, cycle.Pace.width

    def counting(cr, query, *args, **kwargs):
        text = getattr(query, "code", str(query)).lstrip()  # SQL() or text
        counted[text[:6].upper()] += 1
        if text[:6].upper() == "INSERT":
            inserted[text.split()[2].strip('"')] += 1
        return execute(cr, query, *args, **kwargs)

    def recording(pace, *args):
        found = width(pace, *args)
        most[0] = max(most[0], found)
        return found

    runs, cpu, started = 0, time.process_time(), time.perf_counter()
    with patch.object(Cursor, "execute", counting), patch.object(cycle.Pace, "width", recording):
        while not runs or sync._due_mailboxes():
            sync._cron()
            runs += 1
            # ...then those it asked for: Odoo has moved the next call on by the interval.
            cron.nextcall = began + relativedelta(**{cron.interval_type: cron.interval_number})
            env.cr.commit()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    params.set_param("cats_mail_sync.run_seconds", kept)
    env.cr.commit()
    env.invalidate_all()
    # Idle checks write no sync log line: the mailboxes say when they were last checked.
    users = env["res.users"].sudo().search([("mailbox_state", "=", "active")])
    checked = users.filtered(lambda user: user.mailbox_last_sync_at and user.mailbox_last_sync_at >= began)
    problems = set(users.filtered("mailbox_error").mapped("mailbox_error"))
    if len(checked) != mailboxes or problems:
        raise RuntimeError(f"the idle cycle read {len(checked)} of {mailboxes} mailboxes: {problems}")
    widest = most[0] or concurrency
    return Cycle(seconds, cpu_seconds, runs, widest, counted.total(), dict(inserted), counted["UPDATE"])


# -- one mailbox ---------------------------------------------------------------


def sync(env, user):
    """Seconds of one run of ``user``'s mailbox, and its sync log line (checked for errors)."""
    after = _last_run_id(env)
    env.cr.commit()
    _settled(env)
    seconds, _ = _timed(env["cats_mail_sync.sync"]._sync, user)
    env.cr.commit()
    run = _last_runs(env, after)  # none for an idle check
    user.invalidate_recordset()
    if len(run) > 1 or run.error or user.mailbox_error:
        raise RuntimeError(f"the benchmark's run of {user.login} failed: {run.error or user.mailbox_error}")
    return seconds, run


def scan(env, user):
    """Seconds of a run that looks at every mail of ``user``'s Inbox, and how many it looked at."""
    data.rewind(user)
    seconds, run = sync(env, user)
    return seconds, run.looked_at


def idle(env, user, repeat):
    """Median seconds of a run of ``user``'s mailbox with nothing new."""
    return statistics.median(sync(env, user)[0] for _ in range(repeat))


# -- raw IMAP, no Odoo ------------------------------------------------------------


def raw_headers(host, port, ca_file, login):
    """Seconds to fetch the header fields the sync reads of every Inbox mail, in the sync's
    batches, with imapclient alone."""
    started = time.perf_counter()
    with data.connect(host, port, ca_file) as client:
        client.login(login, data.PASSWORD)
        client.select_folder("INBOX", readonly=True)
        for batch in batches(client.search(["UID", "1:*"])):
            client.fetch(batch, [HEADER_FIELDS, b"INTERNALDATE"])
    return time.perf_counter() - started


def one_fetch_per_mail(host, port, ca_file, login):
    """Seconds to read every Inbox mail as Odoo's fetchmail does: one FETCH (RFC822) per
    message (read-only here, and without fetchmail's two STOREs per message)."""
    started = time.perf_counter()
    client = imaplib.IMAP4_SSL(host, port, ssl_context=ssl.create_default_context(cafile=ca_file))
    client.login(login, data.PASSWORD)
    client.select("INBOX", readonly=True)
    _result, numbers = client.search(None, "ALL")
    for number in numbers[0].split():
        client.fetch(number, "(RFC822)")
    client.logout()
    return time.perf_counter() - started


def raw_check(host, port, ca_file, login, repeat):
    """Median seconds of the least an idle check does: connect, log in, STATUS of Inbox and
    Sent, log out."""

    def check():
        started = time.perf_counter()
        with data.connect(host, port, ca_file) as client:
            client.login(login, data.PASSWORD)
            for folder in ("INBOX", "Sent"):
                client.folder_status(folder, [b"UIDVALIDITY", b"UIDNEXT"])
        return time.perf_counter() - started

    return statistics.median(check() for _ in range(repeat))


def status_round_trip(host, port, ca_file, login, repeat):
    """Median seconds of one STATUS on an open, logged-in connection."""
    with data.connect(host, port, ca_file) as client:
        client.login(login, data.PASSWORD)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.folder_status("INBOX", [b"UIDVALIDITY", b"UIDNEXT"])
            times.append(time.perf_counter() - started)
    return statistics.median(times)


# -- logging without the sync ----------------------------------------------------


def post_loop(env, raws, targets):
    """Seconds of a bare ``message_post`` loop of the mails as the sync parses them (the parsing
    not counted), each on its candidate; rolled back afterwards."""
    logger = env["cats_mail_sync.logger"]
    parsed = [logger._parse(raw) for raw in raws]

    def post():
        for values, candidate in zip(parsed, targets, strict=True):
            candidate.with_context(mail_create_nosubscribe=True, mail_post_autofollow=False).message_post(
                body=Markup(values.get("body") or ""),
                subject=values.get("subject") or False,
                message_type="email",
                subtype_xmlid="mail.mt_note",
                author_id=candidate.partner_id.id,
                email_from=values.get("email_from") or False,
                date=values.get("date") or False,
                message_id=values["message_id"],
                attachments=values.get("attachments", []),
            )
        env.flush_all()

    _settled(env)
    seconds, _ = _timed(post)
    env.cr.rollback()
    return seconds


def process_loop(env, raws, targets):
    """Seconds of Odoo's ``message_process`` of the raw mails, each routed to its candidate (as
    fetchmail does for a server bound to a record); rolled back afterwards."""

    def process():
        threads = env["mail.thread"]
        for raw, candidate in zip(raws, targets, strict=True):
            threads.message_process(series.PERSON, raw, thread_id=candidate.id)
        env.flush_all()

    _settled(env)
    seconds, _ = _timed(process)
    env.cr.rollback()
    return seconds
