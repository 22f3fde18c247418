"""Benchmark: how long a scheduled run takes for one mailbox, busy and idle.

Run by scripts/benchmark on a scratch database (the sync commits as it goes):
``benchmark_sync.py CONFIG DATABASE [MAILS] [MATCH_EVERY]``. Puts MAILS mails in a Dovecot Inbox, one
in MATCH_EVERY from a candidate, runs the sync twice (busy, then idle) and prints figures.
"""

import sys
import time
from email.message import EmailMessage
from pathlib import Path

import odoo

# The test servers (harness) ship with the addon's tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cats_mail_sync" / "tests"))
from harness.dovecot import Dovecot

RECRUITER, PASSWORD = "bench@recruit.example.test", "bench-Secret"


def mail(number, to_candidate):
    message = EmailMessage()
    message["From"] = f"c{number % 100}@pool.example.com" if to_candidate else f"stranger{number}@example.net"
    message["To"] = RECRUITER
    message["Subject"] = f"Mail {number}"
    message["Message-ID"] = f"<bench-{number}@example.net>"
    message.set_content("Hello " * 300)
    return message.as_bytes()


def main(config, database, mails="2000", match_every="10"):
    mails, match_every = int(mails), int(match_every)
    odoo.tools.config.parse_config(["-c", config, "-d", database])
    registry = odoo.modules.registry.Registry(database)
    with Dovecot({RECRUITER: PASSWORD}) as dovecot, registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        env["ir.config_parameter"].set_param("cats_mail_sync.ca_file", dovecot.ca_file)
        env["ir.config_parameter"].set_param("cats_mail_sync.allow_private_hosts", "True")
        env["hr.candidate"].create(
            [{"partner_name": f"C{i}", "email_from": f"c{i}@pool.example.com"} for i in range(100)]
        )
        user = env["res.users"].create({"name": "Bench", "login": "bench", "email": RECRUITER})
        user.write(
            {
                "mailbox_email": RECRUITER,
                "mailbox_login": RECRUITER,
                "mailbox_password": PASSWORD,
                "mailbox_imap_host": dovecot.host,
                "mailbox_imap_port": dovecot.ssl_port,
            }
        )
        user.action_mailbox_activate()
        started = time.perf_counter()
        with dovecot.client(RECRUITER) as client:
            for number in range(mails):
                client.append("INBOX", mail(number, number % match_every == 0))
        appended = time.perf_counter() - started

        queries, started = cr.sql_log_count, time.perf_counter()
        logged = env["cats_mail_sync.sync"]._sync(user)
        busy, busy_queries = time.perf_counter() - started, cr.sql_log_count - queries
        queries, started = cr.sql_log_count, time.perf_counter()
        env["cats_mail_sync.sync"]._sync(user)
        idle, idle_queries = time.perf_counter() - started, cr.sql_log_count - queries
    print(
        f"{mails} new mails, {logged} logged ({mails // match_every} expected); APPEND took {appended:.1f} s"
    )
    print(
        f"busy run: {busy:.2f} s = {mails / busy:.0f} mails/s looked at, {logged / busy:.0f} mails/s logged;"
    )
    print(f"          {busy_queries} SQL queries")
    print(f"idle run: {idle * 1000:.0f} ms, {idle_queries} SQL queries")


if __name__ == "__main__":
    main(*sys.argv[1:])
