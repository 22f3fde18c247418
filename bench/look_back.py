"""Looking back at scale: an import of many contacts with many active mailboxes behind latency.

``python3 bench/look_back.py ODOO_CONF DATABASE [--mailboxes 100] [--contacts 10000] ...`` on a scratch
database with cats_mail_sync installed (it commits: recruiters, contacts, logged mail stay there).

One Dovecot with a mailbox per recruiter (Inbox and Sent with mail, a few in each from contacts of the
import), reached through the 50 ms latency proxy; every mailbox active. Scheduled runs (``_cron``, with
commits, as Odoo's cron worker runs them) are made one after the other; before each, one new mail from
a known candidate arrives in every mailbox. First runs without the import, then the import of
``--contacts`` contacts (one ORM ``create``, committed, as an import makes them), then runs until every
folder has looked back for every address. Printed per run: seconds, mailboxes read, the new mails
logged (and their latency: from arrival to the end of the run that logged them), mails logged by the
look-back, SEARCH commands and folders still looking back.
"""

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

from imapclient import IMAPClient

import odoo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cats_mail_sync" / "tests"))
import data  # noqa: E402
from latency_proxy import LatencyProxy  # noqa: E402

from harness.dovecot import Dovecot  # noqa: E402

# Of each mailbox's mail before the runs, this many are with contacts of the import (Inbox and Sent each).
WITH_IMPORTED = 3


def arguments(argv):
    parser = argparse.ArgumentParser(prog="bench/look_back.py", description=__doc__.split("\n", 1)[0])
    parser.add_argument("config")
    parser.add_argument("database")
    parser.add_argument("--mailboxes", type=int, default=100)
    parser.add_argument("--contacts", type=int, default=10000, help="contacts of the import")
    parser.add_argument("--mails", type=int, default=200, help="mails in each Inbox (and a tenth in Sent)")
    parser.add_argument("--concurrency", type=int, default=16, help="cats_mail_sync.concurrency")
    parser.add_argument("--run-seconds", type=float, default=90, help="cats_mail_sync.run_seconds")
    parser.add_argument("--round-trip", type=float, default=0.05)
    parser.add_argument("--quiet-runs", type=int, default=3, help="runs without the import")
    parser.add_argument("--max-runs", type=int, default=30)
    return parser.parse_args(argv)


def imported(number):
    return f"new{number}@import.example.org"


def fill(dovecot, login, number, mails, contacts):
    """Inbox: ``mails`` from strangers, WITH_IMPORTED of them from contacts of the import; Sent: a tenth."""
    inbox = [data.mail(n, login) for n in range(mails - WITH_IMPORTED)]
    inbox += [
        data.mail(10**6 + k, login, sender=imported((number * 7 + k) % contacts))
        for k in range(WITH_IMPORTED)
    ]
    sent = [data.mail(2 * 10**6 + n, f"someone{n}@example.net", sender=login) for n in range(mails // 10)]
    sent += [
        data.mail(3 * 10**6 + k, imported((number * 11 + k) % contacts), sender=login)
        for k in range(WITH_IMPORTED)
    ]
    with dovecot.client(login) as client:
        client.multiappend("INBOX", inbox)
        client.multiappend("Sent", sent)


class Runs:
    """Scheduled runs over every mailbox, each after one new mail from a candidate in every mailbox."""

    def __init__(self, env, dovecot, users, candidates):
        self.env, self.dovecot, self.users, self.candidates = env, dovecot, users, candidates
        self.cron = env.ref("cats_mail_sync.ir_cron_cats_mail_sync")
        self.pending = {}  # {label: {Message-ID of a new mail not logged yet: when it arrived}}
        self.searches = 0
        real = IMAPClient.search

        def counting(client, criteria="ALL", charset=None):
            if any(key in ("FROM", "TO", "CC", "BCC") for key in criteria):
                self.searches += 1
            return real(client, criteria, charset)

        self.counting = patch.object(IMAPClient, "search", counting)

    def deliver(self, label, number):
        arrived = time.monotonic()
        pending = self.pending.setdefault(label, {})
        for user, candidate in zip(self.users, self.candidates, strict=True):
            message_id = f"<new-{label}-{number}-{user.id}@bench>"
            raw = data.mail(number, user.login, sender=candidate.email_from)
            raw = raw.replace(f"<bench-{number}-{user.login}>".encode(), message_id.encode())
            self.dovecot.append(user.login, "INBOX", raw)
            pending[message_id] = arrived

    def run(self, label, number):
        """``(seconds, latencies of the new mails it logged, mailboxes still looking back)``."""
        env, cr = self.env, self.env.cr
        self.deliver(label, number)
        self.cron.nextcall = odoo.fields.Datetime.now() - timedelta(seconds=1)  # the scheduled time
        last_run = env["cats_mail_sync.run"].search([], order="id desc", limit=1).id or 0
        self.searches = 0
        cr.commit()
        started = time.monotonic()
        with self.counting:
            env["cats_mail_sync.sync"]._cron()
        ended = time.monotonic()
        cr.commit()
        env.invalidate_all()
        runs = env["cats_mail_sync.run"].search([("id", ">", last_run)])
        pending = self.pending[label]
        cr.execute("SELECT DISTINCT message_id FROM mail_message WHERE message_id = ANY(%s)", [list(pending)])
        latencies = [ended - pending.pop(row[0]) for row in cr.fetchall()]
        waiting = env["cats_mail_sync.look_back"]._users_waiting()
        median = statistics.median(latencies or [0])
        print(
            f"    {label} run {number}: {ended - started:5.1f} s, {len(runs):3d} mailboxes read, "
            f"new mail logged {len(latencies):3d} (latency median {median:5.1f} s, "
            f"max {max(latencies or [0]):5.1f} s; {len(pending)} waiting), logged looking back "
            f"{sum(runs.mapped('logged_back')):3d}, SEARCH {self.searches:5d}, "
            f"still looking back {len(waiting)}",
            flush=True,
        )
        return ended - started, latencies, len(waiting)


def setup(env, dovecot, proxy, args):
    params = env["ir.config_parameter"].sudo()
    params.set_param("cats_mail_sync.ca_file", dovecot.ca_file)
    params.set_param("cats_mail_sync.allow_private_hosts", "True")
    params.set_param("cats_mail_sync.run_seconds", str(args.run_seconds))
    params.set_param("cats_mail_sync.concurrency", str(args.concurrency))
    for number, login in enumerate(dovecot.users):
        fill(dovecot, login, number, args.mails, args.contacts)
    users = data.recruiters(env, dovecot, list(dovecot.users), proxy.port, active=True, from_start=True)
    candidates = data.candidates(env, args.mailboxes)
    env.cr.commit()
    return Runs(env, dovecot, users, candidates)


def summary(env, args, runs, quiet, after):
    expected = args.mailboxes * WITH_IMPORTED * 2
    env.cr.execute(
        "SELECT count(DISTINCT message_id) FROM mail_message "
        "WHERE message_id LIKE '<bench-1000%' OR message_id LIKE '<bench-3000%'"
    )
    found = env.cr.fetchone()[0]
    print(
        f"==> Look-back done after {len(after)} runs, {sum(s for s, _l, _w in after):.0f} s "
        f"(runs without the import: {statistics.mean(s for s, _l, _w in quiet):.1f} s each); "
        f"mails with contacts of the import logged: {found} of {expected}"
    )
    before = [latency for _s, latencies, _w in quiet for latency in latencies]
    during = [latency for _s, latencies, _w in after for latency in latencies]
    print(
        f"    new-mail latency without the import: median {statistics.median(before):.1f} s, "
        f"max {max(before):.1f} s; during the look-back: median {statistics.median(during):.1f} s, "
        f"max {max(during):.1f} s; {len(runs.pending['import'])} new mails not logged yet"
    )


def main(argv):
    args = arguments(argv)
    odoo.tools.config.parse_config(["-c", args.config, "-d", args.database])
    logins = [data.address(f"lb{number:04d}") for number in range(args.mailboxes)]
    registry = odoo.modules.registry.Registry(args.database)
    with (
        Dovecot(dict.fromkeys(logins, data.PASSWORD)) as dovecot,
        LatencyProxy(dovecot.ssl_port, args.round_trip) as proxy,
        registry.cursor() as cr,
    ):
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        print(f"==> {args.mailboxes} mailboxes of {args.mails} mails, {args.round_trip * 1000:.0f} ms RTT")
        runs = setup(env, dovecot, proxy, args)
        print("==> Warm-up: the first run reads every mailbox's mail (all new)")
        runs.run("warm-up", 0)
        print(f"==> {args.quiet_runs} runs without the import")
        quiet = [runs.run("quiet", n) for n in range(1, args.quiet_runs + 1)]
        print(f"==> Import of {args.contacts} contacts")
        started = time.monotonic()
        env["res.partner"].create(
            [{"name": f"Imported {n}", "email": imported(n)} for n in range(args.contacts)]
        )
        cr.commit()
        queued = env["cats_mail_sync.look_back"].search_count([])
        print(f"    {time.monotonic() - started:.1f} s; {queued} addresses queued")
        after = []
        for number in range(1, args.max_runs + 1):
            after.append(runs.run("import", number))
            if not after[-1][2]:
                break
        summary(env, args, runs, quiet, after)


if __name__ == "__main__":
    main(sys.argv[1:])
